"""Example values of every event type, shared by the event and OpenAPI tests."""

from __future__ import annotations

from ocrstream.core import events as ev

__all__ = ["one_of_each"]


def one_of_each() -> list[ev.Event]:
    """At least one valid value of every event type, with optional fields both ways."""
    validation = ev.ErrorInfo(code="corrupt_image", message="truncated PNG")
    return [
        ev.UploadStarted(file_count=2, total_bytes=1234),
        ev.ImageReceived(file_index=0, file_name="a.png", size_bytes=10, content_type="image/png"),
        ev.ImageReceived(file_index=1, file_name="b", size_bytes=0, content_type=None),
        ev.ImageValidationStart(file_index=0, file_name="a.png"),
        ev.ImageValidationSuccess(
            file_index=0,
            file_name="a.png",
            size_bytes=10,
            format="PNG",
            width=3,
            height=4,
            mode="RGB",
        ),
        ev.ImageValidationError(file_index=1, file_name="b", size_bytes=0, error=validation),
        ev.AllImagesValidated(file_count=2, valid_count=1, invalid_count=1),
        ev.ImageOCRStart(file_index=0, file_name="a.png", engine="rapidocr"),
        ev.ImageOCRSuccess(
            file_index=0,
            file_name="a.png",
            text="Invoice 42",
            lines=(ev.OCRLine(text="Invoice 42", confidence=0.97, bbox=(1, 2, 30, 12)),),
            duration_ms=12.5,
        ),
        ev.ImageOCRSuccess(file_index=0, file_name="a.png", text="", lines=(), duration_ms=0.0),
        ev.ImageOCRError(
            file_index=0, file_name="a.png", error=ev.ErrorInfo(code="ocr_timeout", message="slow")
        ),
        ev.ImageValidationSuccess(
            file_index=2,
            file_name="scan.pdf",
            size_bytes=5000,
            format="PDF",
            width=1654,
            height=2339,
            mode="RGB",
            page_count=3,
        ),
        ev.ImageOCRStart(file_index=2, file_name="scan.pdf", engine="rapidocr", page_count=3),
        ev.PageOCRSuccess(
            file_index=2,
            file_name="scan.pdf",
            page_index=1,
            page_count=3,
            source="text_layer",
            width=1654,
            height=2339,
            text="Total 9.99",
            lines=(
                ev.OCRLine(text="Total 9.99", confidence=1.0, bbox=(10, 20, 300, 60), page_index=1),
            ),
            duration_ms=1.5,
        ),
        ev.ImageOCRSuccess(
            file_index=2,
            file_name="scan.pdf",
            page_count=2,
            text="a\fb",
            lines=(
                ev.OCRLine(text="a", confidence=0.5, bbox=(0, 0, 5, 5), page_index=0),
                ev.OCRLine(text="b", confidence=0.5, bbox=(0, 0, 5, 5), page_index=1),
            ),
            duration_ms=3.0,
        ),
        ev.ImageOCRError(
            file_index=2,
            file_name="scan.pdf",
            error=ev.ErrorInfo(code="ocr_failed", message="the OCR worker process died"),
            page_index=2,
        ),
        ev.ProcessingComplete(
            file_count=2,
            valid_count=1,
            invalid_count=1,
            ocr_success_count=1,
            ocr_error_count=0,
            duration_ms=40.25,
        ),
        ev.ProcessingError(error=ev.ErrorInfo(code="no_files", message="no file part")),
        ev.StreamLagged(missed=3, resume_seq=1_750_000_000_000),
    ]
