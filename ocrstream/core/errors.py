"""The one error tree of ocrstream.

Core code raises these; they are translated at two boundaries only: refusals into
RFC 9457 problem responses (``http/problems.py``), the rest into the SPEC's error
events through :func:`ocrstream.core.events.error_info`. The exceptions are named for
what went wrong, the events for what the client is told, so no name is both::

    OCRStreamError                      abstract; carries ``code`` and ``status_hint``
    ├── ConfigError                     an OCRSTREAM_* variable is invalid (start-up)
    │   └── EngineUnavailable           the chosen OCR engine cannot run here
    ├── RequestRefused                  answered before any stream starts
    │   ├── BadQuery                    400 a query parameter has a value it cannot take
    │   ├── Unauthorized                401 missing or wrong bearer token
    │   ├── CrossOriginRefused          403 a browser's POST from an origin not allowed
    │   ├── NotFound                    404 unknown job, or a disabled route
    │   ├── ResultNotReady              409 the file is still being worked on
    │   ├── ResultUnavailable           422 the file failed (its own error code)
    │   ├── ExportFailed                500 the searchable PDF could not be made
    │   ├── ContentTooLarge             413 Content-Length over MAX_REQUEST_SIZE
    │   ├── UnsupportedMediaType        415 not multipart/form-data, or no boundary
    │   └── ServiceBusy                 503 MAX_STREAMS streams already open
    ├── UploadFailed                    ends a job with ``processing_error``
    │   ├── MalformedRequest            malformed_request
    │   ├── RequestTooLarge             request_too_large
    │   ├── TooManyParts                too_many_parts
    │   ├── UploadTimeout               upload_timeout
    │   └── NoFiles                     no_files
    ├── InvalidImage                    one file fails validation (``image_validation_error``)
    └── OCRError                        one file fails OCR (``image_ocr_error``)

Processing errors that are not raised by code (``client_disconnected``,
``shutting_down``, ``internal_error``) are reasons a job is ended from outside; their
codes are listed in :data:`PROCESSING_ERROR_CODES`.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "OCR_ERROR_CODES",
    "PROCESSING_ERROR_CODES",
    "VALIDATION_ERROR_CODES",
    "BadQuery",
    "ConfigError",
    "ContentTooLarge",
    "CrossOriginRefused",
    "EngineUnavailable",
    "ExportFailed",
    "InvalidImage",
    "MalformedRequest",
    "NoFiles",
    "NotFound",
    "OCRError",
    "OCRStreamError",
    "RequestRefused",
    "RequestTooLarge",
    "ResultNotReady",
    "ResultUnavailable",
    "ServiceBusy",
    "TooManyParts",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadFailed",
    "UploadTimeout",
]

VALIDATION_ERROR_CODES = (
    "empty_file",
    "file_too_large",
    "too_many_files",
    "not_an_image",
    "unsupported_format",
    "corrupt_image",
    "image_too_large",
    "too_many_pages",
    "encrypted_document",
)
PROCESSING_ERROR_CODES = (
    "malformed_request",
    "request_too_large",
    "too_many_parts",
    "upload_timeout",
    "no_files",
    "client_disconnected",
    "shutting_down",
    "instance_lost",
    "store_unavailable",
    "internal_error",
)
OCR_ERROR_CODES = ("ocr_failed", "ocr_timeout")


class OCRStreamError(Exception):
    """Base of every ocrstream error; abstract, so raise a subclass.

    Attributes:
        code: the machine-readable code (SPEC error code or a problem slug).
        status_hint: the HTTP status this error maps to at the boundary.
        message: what was wrong and, where there is one, the limit.
    """

    code: ClassVar[str] = ""
    status_hint: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        if type(self) in _ABSTRACT:
            raise TypeError(f"{type(self).__name__} is abstract; raise a subclass")
        super().__init__(message)
        self.message = message


class ConfigError(OCRStreamError):
    """An ``OCRSTREAM_*`` variable is invalid; start-up stops with this one line."""

    code = "invalid_config"
    status_hint = 500


class EngineUnavailable(ConfigError):
    """The chosen OCR engine cannot run here (its binary or model is missing)."""

    code = "engine_unavailable"


class RequestRefused(OCRStreamError):
    """A request answered with a problem document before any stream starts.

    Its ``title`` is the status's phrase (RFC 9457), rendered in ``http/problems.py``.
    """


class BadQuery(RequestRefused):
    """A query parameter has a value it cannot take (``pdf_text``, ``format``)."""

    code = "bad_query"
    status_hint = 400


class Unauthorized(RequestRefused):
    """The bearer token is missing or wrong."""

    code = "unauthorized"
    status_hint = 401


class CrossOriginRefused(RequestRefused):
    """A browser sent a POST from another site whose origin is not in CORS_ORIGINS."""

    code = "cross_origin_refused"
    status_hint = 403


class NotFound(RequestRefused):
    """No such job (or it expired), or the route is disabled."""

    code = "not_found"
    status_hint = 404


class ResultNotReady(RequestRefused):
    """The file has no result yet: it is still being worked on (or never will be)."""

    code = "not_ready"
    status_hint = 409


class ResultUnavailable(RequestRefused):
    """The file failed validation or OCR; ``code`` is its error's code."""

    status_hint = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]  # per-instance refinement of the ClassVar


class ExportFailed(RequestRefused):
    """A recognised file's export could not be made (its worker failed, or its bytes are
    gone)."""

    code = "export_failed"
    status_hint = 500


class ContentTooLarge(RequestRefused):
    """The declared Content-Length is over MAX_REQUEST_SIZE."""

    code = "content_too_large"
    status_hint = 413


class UnsupportedMediaType(RequestRefused):
    """The body is not multipart/form-data, or it names no boundary."""

    code = "unsupported_media_type"
    status_hint = 415


class ServiceBusy(RequestRefused):
    """MAX_STREAMS streams are open; the client should retry later.

    Attributes:
        retry_after: seconds the client should wait, for the ``Retry-After`` header.
    """

    code = "service_busy"
    status_hint = 503

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UploadFailed(OCRStreamError):
    """A request-level failure: the job ends with one ``processing_error`` event."""

    status_hint = 422


class MalformedRequest(UploadFailed):
    """Bad multipart framing, a short body, or an over-long header or field."""

    code = "malformed_request"
    status_hint = 400


class RequestTooLarge(UploadFailed):
    """The body passed MAX_REQUEST_SIZE while it was read."""

    code = "request_too_large"
    status_hint = 413


class TooManyParts(UploadFailed):
    """The body has more than MAX_PARTS parts."""

    code = "too_many_parts"
    status_hint = 413


class UploadTimeout(UploadFailed):
    """No body bytes for UPLOAD_TIMEOUT, or the body not complete by UPLOAD_DEADLINE."""

    code = "upload_timeout"
    status_hint = 408


class NoFiles(UploadFailed):
    """The body is well formed but has no part with a filename."""

    code = "no_files"
    status_hint = 422


class InvalidImage(OCRStreamError):
    """One file failed validation.

    Attributes:
        code: one of :data:`VALIDATION_ERROR_CODES`.
    """

    status_hint = 422

    def __init__(self, code: str, message: str) -> None:
        if code not in VALIDATION_ERROR_CODES:
            raise ValueError(f"unknown validation error code {code!r}")
        super().__init__(message)
        self.code = code  # type: ignore[misc]  # per-instance refinement of the ClassVar

    def __reduce__(self) -> tuple[type[InvalidImage], tuple[str, str], dict[str, object]]:
        # Raised in worker processes and pickled back: rebuilt from (code, message), as
        # the default (from ``args``, the message alone) would not call ``__init__`` right.
        return type(self), (self.code, self.message), dict(self.__dict__)


class OCRError(OCRStreamError):
    """One file failed OCR.

    Attributes:
        code: one of :data:`OCR_ERROR_CODES`.
    """

    status_hint = 500

    def __init__(self, code: str, message: str) -> None:
        if code not in OCR_ERROR_CODES:
            raise ValueError(f"unknown OCR error code {code!r}")
        super().__init__(message)
        self.code = code  # type: ignore[misc]

    def __reduce__(self) -> tuple[type[OCRError], tuple[str, str], dict[str, object]]:
        # As InvalidImage: it comes back from worker processes.
        return type(self), (self.code, self.message), dict(self.__dict__)


_ABSTRACT: frozenset[type[OCRStreamError]] = frozenset(
    {OCRStreamError, RequestRefused, UploadFailed}
)
