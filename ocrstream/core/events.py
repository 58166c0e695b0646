"""The SPEC's event types as frozen values, and their JSON envelope.

Every event is a frozen, slotted, keyword-only dataclass whose fields are exactly the
``data`` object of SPEC.md; ``Event`` is their union. Don't subclass them. The wire
format (one line of JSON in an SSE frame) lives in :mod:`ocrstream.core.sse`; this module
only turns values into JSON-ready dicts and back.

Events are turned into dicts field by field from a table made once per class, not with
``dataclasses.asdict`` (which recurses through ``copy.deepcopy`` and was half the cost of
encoding an event), and an envelope's JSON is made once however often it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ocrstream.core.errors import (
    OCR_ERROR_CODES,
    PROCESSING_ERROR_CODES,
    VALIDATION_ERROR_CODES,
    OCRStreamError,
)

__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "TERMINAL_TYPES",
    "AllImagesValidated",
    "ErrorInfo",
    "Event",
    "ImageOCRError",
    "ImageOCRStart",
    "ImageOCRSuccess",
    "ImageReceived",
    "ImageValidationError",
    "ImageValidationStart",
    "ImageValidationSuccess",
    "OCRLine",
    "PageOCRSuccess",
    "ProcessingComplete",
    "ProcessingError",
    "StreamLagged",
    "UploadStarted",
    "error_info",
]

_ALL_ERROR_CODES = frozenset(VALIDATION_ERROR_CODES + PROCESSING_ERROR_CODES + OCR_ERROR_CODES)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorInfo:
    """``{code, message}`` of every error event."""

    code: str
    message: str

    def __post_init__(self) -> None:
        _require(self.code in _ALL_ERROR_CODES, f"unknown error code {self.code!r}")
        _require(bool(self.message), "an error needs a message")


def error_info(error: OCRStreamError) -> ErrorInfo:
    """The ``{code, message}`` an error event carries for ``error`` (the one translation
    of an exception into an event's error)."""
    return ErrorInfo(code=error.code, message=error.message)


@dataclass(frozen=True, slots=True, kw_only=True)
class OCRLine:
    """One recognised line: text, confidence 0-1, bbox [x0, y0, x1, y1] in pixels of its
    page, and the index of that page in its file."""

    text: str
    confidence: float
    bbox: tuple[int, int, int, int]
    page_index: int = 0

    def __post_init__(self) -> None:
        _require(0.0 <= self.confidence <= 1.0, "confidence must be within 0..1")


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadStarted:
    """The whole body has arrived (always seq 0): how many files it held, and their bytes in
    all."""

    type: ClassVar[str] = "upload_started"
    file_count: int
    total_bytes: int

    def __post_init__(self) -> None:
        _require(self.file_count >= 0 and self.total_bytes >= 0, "counts are never negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageReceived:
    """File ``file_index`` has been read from the body (its declared content type as sent)."""

    type: ClassVar[str] = "image_received"
    file_index: int
    file_name: str
    size_bytes: int
    content_type: str | None

    def __post_init__(self) -> None:
        _require(self.file_index >= 0 and self.size_bytes >= 0, "indexes are never negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageValidationStart:
    """File ``file_index`` is being validated: real format, size, pixels, decodability."""

    type: ClassVar[str] = "image_validation_start"
    file_index: int
    file_name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageValidationSuccess:
    """File ``file_index`` is a valid image or document: its format judged from the bytes,
    its (first page's) size and mode, and its number of pages."""

    type: ClassVar[str] = "image_validation_success"
    file_index: int
    file_name: str
    size_bytes: int
    format: str
    width: int
    height: int
    mode: str
    page_count: int = 1

    def __post_init__(self) -> None:
        _require(self.width > 0 and self.height > 0, "a valid image has pixels")
        _require(self.page_count >= 1, "a valid file has a page")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageValidationError:
    """File ``file_index`` failed validation; ``error.code`` says why (the job goes on)."""

    type: ClassVar[str] = "image_validation_error"
    file_index: int
    file_name: str
    size_bytes: int
    error: ErrorInfo

    def __post_init__(self) -> None:
        _require(self.error.code in VALIDATION_ERROR_CODES, "not a validation error code")


@dataclass(frozen=True, slots=True, kw_only=True)
class AllImagesValidated:
    """Every file has its validation result: how many were valid and invalid."""

    type: ClassVar[str] = "all_images_validated"
    file_count: int
    valid_count: int
    invalid_count: int

    def __post_init__(self) -> None:
        _require(self.valid_count + self.invalid_count == self.file_count, "counts must add up")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOCRStart:
    """File ``file_index`` has reached an OCR worker running ``engine``."""

    type: ClassVar[str] = "image_ocr_start"
    file_index: int
    file_name: str
    engine: str
    page_count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class PageOCRSuccess:
    """Page ``page_index`` of a file of several pages is read: from its text layer
    (``source`` ``text_layer``) or by the engine (``ocr``); its raster's size, its text
    and lines (words are in the exports)."""

    type: ClassVar[str] = "page_ocr_success"
    file_index: int
    file_name: str
    page_index: int
    page_count: int
    source: str
    width: int
    height: int
    text: str
    lines: tuple[OCRLine, ...]
    duration_ms: float

    def __post_init__(self) -> None:
        _require(0 <= self.page_index < self.page_count, "page_index is within page_count")
        _require(self.source in {"ocr", "text_layer"}, "source is ocr or text_layer")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOCRSuccess:
    """File ``file_index`` was recognised: its text (lines joined by LF, pages by a form
    feed) and every page's lines with confidence, pixel boxes and page index."""

    type: ClassVar[str] = "image_ocr_success"
    file_index: int
    file_name: str
    page_count: int = 1
    text: str
    lines: tuple[OCRLine, ...]
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageOCRError:
    """File ``file_index`` could not be recognised (``ocr_failed``, ``ocr_timeout``);
    ``page_index`` is the page that failed (None when no page is to blame)."""

    type: ClassVar[str] = "image_ocr_error"
    file_index: int
    file_name: str
    error: ErrorInfo
    page_index: int | None = None

    def __post_init__(self) -> None:
        _require(self.error.code in OCR_ERROR_CODES, "not an OCR error code")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingComplete:
    """The job's terminal event when it ran to its end: the counts of each outcome and its
    duration."""

    type: ClassVar[str] = "processing_complete"
    file_count: int
    valid_count: int
    invalid_count: int
    ocr_success_count: int
    ocr_error_count: int
    duration_ms: float

    def __post_init__(self) -> None:
        _require(self.valid_count + self.invalid_count == self.file_count, "counts must add up")
        _require(
            self.ocr_success_count + self.ocr_error_count <= self.valid_count,
            "only valid files are recognised",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingError:
    """The job's terminal event when a request-level failure ended it; ``error.code`` says
    which."""

    type: ClassVar[str] = "processing_error"
    error: ErrorInfo

    def __post_init__(self) -> None:
        _require(self.error.code in PROCESSING_ERROR_CODES, "not a processing error code")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamLagged:
    """Firehose only: this reader fell behind the ring and skipped ``missed`` events; the next
    one has id ``resume_seq``."""

    type: ClassVar[str] = "stream_lagged"
    missed: int
    resume_seq: int

    def __post_init__(self) -> None:
        _require(self.missed > 0, "a lag report means something was missed")


Event = (
    UploadStarted
    | ImageReceived
    | ImageValidationStart
    | ImageValidationSuccess
    | ImageValidationError
    | AllImagesValidated
    | ImageOCRStart
    | PageOCRSuccess
    | ImageOCRSuccess
    | ImageOCRError
    | ProcessingComplete
    | ProcessingError
    | StreamLagged
)

EVENT_CLASSES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        UploadStarted,
        ImageReceived,
        ImageValidationStart,
        ImageValidationSuccess,
        ImageValidationError,
        AllImagesValidated,
        ImageOCRStart,
        PageOCRSuccess,
        ImageOCRSuccess,
        ImageOCRError,
        ProcessingComplete,
        ProcessingError,
        StreamLagged,
    )
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_CLASSES)
TERMINAL_TYPES = frozenset({ProcessingComplete.type, ProcessingError.type})
