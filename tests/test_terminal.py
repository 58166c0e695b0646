"""The terminal view folds events with the snapshot's fold and shows each file's state."""

from __future__ import annotations

from ocrstream.client.terminal import EXIT_FILE_FAILED, EXIT_OK, JobView
from ocrstream.core import events as ev
from ocrstream.core.jobs import JobRecord

JOB = "2f1d3c4b-5a69-4788-9abc-def012345678"


def _events() -> list[ev.Event]:
    return [
        ev.UploadStarted(file_count=2, total_bytes=20),
        ev.ImageReceived(file_index=0, file_name="a.png", size_bytes=10, content_type=None),
        ev.ImageReceived(file_index=1, file_name="b.png", size_bytes=10, content_type=None),
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
        ev.ImageOCRStart(file_index=0, file_name="a.png", engine="fake"),
        ev.ImageValidationStart(file_index=1, file_name="b.png"),
        ev.ImageValidationError(
            file_index=1,
            file_name="b.png",
            size_bytes=10,
            error=ev.ErrorInfo(code="not_an_image", message="not an image"),
        ),
        ev.AllImagesValidated(file_count=2, valid_count=1, invalid_count=1),
        ev.ImageOCRSuccess(
            file_index=0,
            file_name="a.png",
            text="Total 9.99",
            lines=(ev.OCRLine(text="Total 9.99", confidence=1.0, bbox=(0, 0, 3, 4)),),
            duration_ms=12.0,
        ),
        ev.ProcessingComplete(
            file_count=2,
            valid_count=1,
            invalid_count=1,
            ocr_success_count=1,
            ocr_error_count=0,
            duration_ms=20.0,
        ),
    ]


def test_states_and_details_follow_the_events() -> None:
    view, record = JobView(), JobRecord(job_id=JOB)
    seen: list[tuple[str, str]] = []
    printed = []
    for event in _events():
        envelope = record.record(event, now=0.0)
        text = view.apply(envelope)
        if text is not None:
            printed.append(text)
        if 0 in view.files:
            seen.append((view.state(0), view.detail(0)))
    assert printed == ["Total 9.99"]
    states = [state for state, _ in seen]
    assert states.index("validating") < states.index("valid") < states.index("recognising")
    assert seen[-1] == ("done", "1 lines in 12 ms")
    assert (view.state(1), view.detail(1)) == ("failed", "not an image")
    # The same per-file results as the server's snapshot.
    assert view.files == record.files
    assert view.failed_files == 1
    assert view.exit_code() == EXIT_FILE_FAILED
    assert "1 of 2 files valid" in view.summary()


def test_every_file_fine_exits_zero() -> None:
    view, record = JobView(), JobRecord(job_id=JOB)
    for event in _events()[:6] + _events()[9:]:
        view.apply(record.record(event, now=0.0))
    assert view.exit_code() == EXIT_OK
    assert view.describe(record.history[-2]) == "[0] a.png: done (1 lines in 12 ms)"
