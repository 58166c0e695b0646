from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ocrstream.core import events as ev
from ocrstream.core.envelope import Envelope, parse_envelope
from tests.samples import one_of_each


def _envelope(event: ev.Event, seq: int | None = 3) -> Envelope:
    return Envelope(
        event=event,
        job_id=None if seq is None else "job-1",
        seq=seq,
        timestamp=datetime(2026, 11, 29, 12, 0, 1, 234567, tzinfo=UTC),
    )


def test_envelope_has_the_spec_shape() -> None:
    envelope = _envelope(ev.UploadStarted(file_count=2, total_bytes=10))
    assert json.loads(envelope.to_json()) == {
        "type": "upload_started",
        "timestamp": "2026-11-29T12:00:01.234Z",
        "job_id": "job-1",
        "seq": 3,
        "data": {"file_count": 2, "total_bytes": 10},
    }


def test_nested_values_serialise_as_json_objects() -> None:
    success = ev.ImageOCRSuccess(
        file_index=0,
        file_name="a.png",
        text="Total 12.00",
        lines=(ev.OCRLine(text="Total 12.00", confidence=0.98, bbox=(1, 2, 30, 12)),),
        duration_ms=12.5,
    )
    data = json.loads(_envelope(success).to_json())["data"]
    assert data["lines"] == [
        {"text": "Total 12.00", "confidence": 0.98, "bbox": [1, 2, 30, 12], "page_index": 0}
    ]
    error = ev.ImageValidationError(
        file_index=1,
        file_name="b",
        size_bytes=0,
        error=ev.ErrorInfo(code="empty_file", message="empty"),
    )
    assert json.loads(_envelope(error).to_json())["data"]["error"] == {
        "code": "empty_file",
        "message": "empty",
    }


def test_json_is_one_line_whatever_the_text() -> None:
    received = ev.ImageReceived(
        file_index=0, file_name='a"\r\nb\u2028.png', size_bytes=1, content_type="x\ny"
    )
    text = _envelope(received).to_json()
    assert "\n" not in text
    assert "\r" not in text
    assert json.loads(text)["data"]["file_name"] == 'a"\r\nb\u2028.png'


@pytest.mark.parametrize(
    "build",
    [
        lambda: ev.AllImagesValidated(file_count=2, valid_count=1, invalid_count=0),
        lambda: ev.ErrorInfo(code="nope", message="x"),
        lambda: ev.ProcessingError(error=ev.ErrorInfo(code="empty_file", message="x")),
        lambda: ev.ImageOCRError(
            file_index=0, file_name="a", error=ev.ErrorInfo(code="no_files", message="x")
        ),
        lambda: ev.OCRLine(text="x", confidence=1.5, bbox=(0, 0, 1, 1)),
        lambda: ev.StreamLagged(missed=0, resume_seq=1),
        lambda: ev.ImageReceived(file_index=-1, file_name="a", size_bytes=0, content_type=None),
    ],
)
def test_invalid_events_are_refused(build: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        build()  # type: ignore[operator]


def test_events_are_frozen() -> None:
    event = ev.UploadStarted(file_count=1, total_bytes=1)
    with pytest.raises(AttributeError):
        event.file_count = 2  # type: ignore[misc]


def test_stream_lagged_has_no_job() -> None:
    lagged = _envelope(ev.StreamLagged(missed=5, resume_seq=100), seq=None)
    document = json.loads(lagged.to_json())
    assert document["job_id"] is None
    assert document["seq"] is None
    with pytest.raises(ValueError, match="stream_lagged has no job"):
        Envelope(event=ev.StreamLagged(missed=1, resume_seq=1), job_id="j", seq=0)


def test_terminal_types() -> None:
    assert {"processing_complete", "processing_error"} == ev.TERMINAL_TYPES
    assert _envelope(
        ev.ProcessingError(error=ev.ErrorInfo(code="no_files", message="x"))
    ).is_terminal
    assert not _envelope(ev.UploadStarted(file_count=1, total_bytes=1)).is_terminal


def test_parse_envelope_round_trips_every_type() -> None:
    samples = one_of_each()
    assert {sample.type for sample in samples} == set(ev.EVENT_TYPES)
    for sample in samples:
        lagged = isinstance(sample, ev.StreamLagged)
        envelope = _envelope(sample, seq=None if lagged else 3)
        again = parse_envelope(json.loads(envelope.to_json()))
        assert again.event == sample
        assert again.seq == envelope.seq
        assert again.job_id == envelope.job_id


def test_parse_envelope_refuses_unknown_types() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        parse_envelope({"type": "nope", "data": {}})


def test_the_json_is_the_field_by_field_document_in_declaration_order() -> None:
    # orjson writes the event dataclasses itself: the same document, keys in the
    # events' field order, as the field-by-field dicts (to_dict) give.
    for sample in one_of_each():
        lagged = isinstance(sample, ev.StreamLagged)
        envelope = _envelope(sample, seq=None if lagged else 3)
        expected = json.dumps(envelope.to_dict(), ensure_ascii=False, separators=(",", ":"))
        assert envelope.to_json() == expected
        assert envelope.json_bytes() == expected.encode()


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 29, 23, 2, 30, 123999, tzinfo=UTC), "2026-11-29T23:02:30.123Z"),
        (datetime(9, 1, 2, 3, 4, 5, 0, tzinfo=UTC), "0009-01-02T03:04:05.000Z"),
        (
            datetime.fromisoformat("2026-11-30T01:00:00.5+02:00"),
            "2026-11-29T23:00:00.500Z",
        ),
    ],
)
def test_timestamps_are_rfc3339_utc_with_milliseconds(moment: datetime, text: str) -> None:
    from ocrstream.core.envelope import format_timestamp

    assert format_timestamp(moment) == text
    assert format_timestamp(moment) == moment.astimezone(UTC).isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")
