"""The one place errors become HTTP: RFC 9457 problem documents and JSON bodies.

A :class:`~ocrstream.core.errors.RequestRefused` raised anywhere before a stream starts
becomes ``application/problem+json`` here (``type`` about:blank, ``title`` the status
phrase, ``status``, ``detail``, and the error's ``code``); after a stream has started,
errors are events instead (see :mod:`ocrstream.service.pipeline`).
"""

from __future__ import annotations

import json
from http import HTTPStatus

from quart import Response

from ocrstream.core.errors import RequestRefused, ServiceBusy, Unauthorized

__all__ = ["json_bytes", "json_response", "no_content", "problem", "problem_response"]


def json_bytes(document: object) -> bytes:
    """``document`` as compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(document: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(json_bytes(document), status=status, content_type="application/json")


def no_content(headers: dict[str, str] | None = None) -> Response:
    """A 204: no body, so neither ``Content-Type`` nor ``Content-Length`` (RFC 9110 8.6)."""
    response = Response(b"", status=204, headers=headers or {})
    response.headers.pop("Content-Type", None)
    response.headers.pop("Content-Length", None)
    return response


def problem_response(status: int, detail: str, code: str | None) -> Response:
    """An RFC 9457 problem document (``type`` about:blank, ``title`` the status phrase)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code is not None:
        body["code"] = code
    return Response(json_bytes(body), status=status, content_type="application/problem+json")


def problem(error: RequestRefused) -> Response:
    """The problem document of a refusal, with the headers its status calls for."""
    response = problem_response(error.status_hint, error.message, error.code)
    if isinstance(error, ServiceBusy):
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="ocrstream"'
    return response
