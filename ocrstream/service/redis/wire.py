"""What the OCR queue stores in Redis: a page request and a page's outcome, as JSON.

A unit's request travels from the submitting instance to whichever worker takes it; its
outcome (the :class:`~ocrstream.core.documents.Page`, or the error a client will see)
travels back. JSON rather than pickle: nothing read from the store is ever executed.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from ocrstream.core.documents import Page, page_from_json, page_to_json
from ocrstream.core.errors import OCRError
from ocrstream.engines.worker import PageRequest

__all__ = [
    "decode_outcome",
    "encode_error",
    "encode_page",
    "page_from_json",
    "page_to_json",
    "request_from_json",
    "request_to_json",
]


def request_to_json(request: PageRequest) -> bytes:
    """``request`` as JSON bytes."""
    return json.dumps(asdict(request), separators=(",", ":")).encode()


def request_from_json(data: bytes) -> PageRequest:
    """The request :func:`request_to_json` encoded.

    Raises:
        ValueError, TypeError: ``data`` is not such a request.
    """
    fields = json.loads(data)
    if not isinstance(fields, dict):
        raise ValueError("a page request is a JSON object")
    return PageRequest(
        format=str(fields["format"]),
        page_index=int(fields["page_index"]),
        dpi=float(fields["dpi"]),
        max_pixels=int(fields["max_pixels"]),
        use_text_layer=bool(fields["use_text_layer"]),
    )


def encode_page(page: Page) -> bytes:
    """The outcome "recognised as ``page``"."""
    return json.dumps({"page": page_to_json(page)}, separators=(",", ":")).encode()


def encode_error(error: OCRError) -> bytes:
    """The outcome "failed with ``error``" (its code and message)."""
    return json.dumps(
        {"error": {"code": error.code, "message": error.message}}, separators=(",", ":")
    ).encode()


def decode_outcome(data: bytes) -> Page | OCRError:
    """The page or the error that :func:`encode_page` or :func:`encode_error` encoded;
    anything unreadable is an ``ocr_failed`` error (a peer of another version)."""
    try:
        outcome = json.loads(data)
        if "page" in outcome:
            return page_from_json(outcome["page"])
        error = outcome["error"]
        return OCRError(str(error["code"]), str(error["message"]))
    except (ValueError, TypeError, KeyError) as failure:
        return OCRError("ocr_failed", f"an unreadable OCR result: {type(failure).__name__}")
