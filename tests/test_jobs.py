from __future__ import annotations

import pytest

from ocrstream.core import events as ev
from ocrstream.core.jobs import JobClosedError, JobRecord, JobStatus


def _error(code: str) -> ev.ProcessingError:
    return ev.ProcessingError(error=ev.ErrorInfo(code=code, message="m"))


def test_seq_counts_from_zero_and_history_replays() -> None:
    record = JobRecord(job_id="j")
    first = record.record(ev.UploadStarted(file_count=1, total_bytes=1), now=0)
    second = record.record(
        ev.ImageReceived(file_index=0, file_name="a", size_bytes=1, content_type=None), now=0
    )
    assert (first.seq, second.seq) == (0, 1)
    assert record.events_after(None) == [first, second]
    assert record.events_after(0) == [second]
    assert record.events_after(1) == []
    assert record.events_after(50) == []
    assert record.events_after(-5) == [first, second]


def test_nothing_follows_the_terminal_event() -> None:
    record = JobRecord(job_id="j")
    record.record(_error("no_files"), now=4.0)
    assert record.finished_at == 4.0
    with pytest.raises(JobClosedError):
        record.record(ev.UploadStarted(file_count=1, total_bytes=1), now=5)
    assert record.fail(_error("internal_error"), now=6) is None
    assert len(record.history) == 1


@pytest.mark.parametrize(
    ("terminal", "status"),
    [
        (
            ev.ProcessingComplete(
                file_count=0,
                valid_count=0,
                invalid_count=0,
                ocr_success_count=0,
                ocr_error_count=0,
                duration_ms=1,
            ),
            JobStatus.COMPLETE,
        ),
        (_error("malformed_request"), JobStatus.FAILED),
        (_error("client_disconnected"), JobStatus.CANCELLED),
        (_error("shutting_down"), JobStatus.CANCELLED),
    ],
)
def test_status_follows_the_terminal_event(terminal: ev.Event, status: JobStatus) -> None:
    record = JobRecord(job_id="j")
    assert record.snapshot()["status"] == "running"
    record.record(terminal, now=0)
    assert record.status is status
    assert record.snapshot()["status"] == str(status)


def test_snapshot_gathers_per_file_results() -> None:
    record = JobRecord(job_id="j")
    record.record(ev.UploadStarted(file_count=2, total_bytes=3), now=0)
    for index in (0, 1):
        record.record(
            ev.ImageReceived(
                file_index=index, file_name=f"f{index}", size_bytes=1, content_type="image/png"
            ),
            now=0,
        )
    record.record(
        ev.ImageValidationSuccess(
            file_index=0, file_name="f0", size_bytes=1, format="PNG", width=2, height=3, mode="RGB"
        ),
        now=0,
    )
    record.record(
        ev.ImageValidationError(
            file_index=1,
            file_name="f1",
            size_bytes=1,
            error=ev.ErrorInfo(code="not_an_image", message="no"),
        ),
        now=0,
    )
    record.record(
        ev.ImageOCRSuccess(
            file_index=0,
            file_name="f0",
            text="hi",
            lines=(ev.OCRLine(text="hi", confidence=0.9, bbox=(0, 0, 2, 3)),),
            duration_ms=5,
        ),
        now=0,
    )
    snapshot = record.snapshot()
    files = snapshot["files"]
    assert isinstance(files, list)
    assert files[0]["format"] == "PNG"
    assert files[0]["text"] == "hi"
    assert files[0]["lines"] == [
        {"text": "hi", "confidence": 0.9, "bbox": [0, 0, 2, 3], "page_index": 0}
    ]
    assert files[1]["error"] == {"code": "not_an_image", "message": "no"}
    assert snapshot["job_id"] == "j"
    assert str(snapshot["created_at"]).endswith("Z")
