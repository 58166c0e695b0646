"""What the routes read from the current request's headers and query.

Each function reads Quart's request global and either returns a plain value or raises
the :class:`~ocrstream.core.errors.RequestRefused` that the request earns.
"""

from __future__ import annotations

import hmac

from python_multipart.multipart import parse_options_header
from quart import request

from ocrstream.core.errors import BadQuery, ContentTooLarge, UnsupportedMediaType

__all__ = [
    "OCR_OFF",
    "bearer_ok",
    "content_length",
    "last_event_id",
    "multipart_boundary",
    "ocr_requested",
    "pdf_text_requested",
]

#: ``?ocr=`` values that skip OCR for one request.
OCR_OFF = frozenset({"false", "0", "no", "off"})


def bearer_ok(expected: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <expected>`` (constant time)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8"))


def last_event_id() -> int | None:
    """The seq to resume after: ``Last-Event-ID`` or ``?last_event_id=`` (None if absent
    or not a non-negative integer)."""
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def multipart_boundary() -> bytes:
    """The multipart boundary of the body.

    Raises:
        UnsupportedMediaType: not ``multipart/form-data``, or no boundary.
    """
    content_type = request.headers.get("Content-Type", "")
    kind, options = parse_options_header(content_type.encode("latin-1"))
    if kind.lower() != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"the body must be multipart/form-data, not {content_type or 'untyped'}"
        )
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise UnsupportedMediaType("the multipart/form-data Content-Type names no boundary")
    return boundary


def content_length(limit: int) -> int | None:
    """The declared body length (None when absent or unreadable).

    Raises:
        ContentTooLarge: it is over ``limit`` (MAX_REQUEST_SIZE).
    """
    raw = request.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError:
        return None
    if length > limit:
        raise ContentTooLarge(
            f"Content-Length {length} is over the limit of {limit} bytes (MAX_REQUEST_SIZE)"
        )
    return length


def ocr_requested() -> bool:
    """False when the request says ``?ocr=false`` (or ``0``, ``no``, ``off``)."""
    return request.args.get("ocr", "true").strip().lower() not in OCR_OFF


def pdf_text_requested() -> str | None:
    """The request's ``?pdf_text=`` (``auto`` or ``ocr``), None when absent.

    Raises:
        BadQuery: any other value.
    """
    value = request.args.get("pdf_text")
    if value is None:
        return None
    if value not in {"auto", "ocr"}:
        raise BadQuery(f"pdf_text must be auto or ocr, not {value[:40]!r}")
    return value
