"""Rule 1 as a pure state machine: nothing before ``upload_started``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core import events as ev
from ocrstream.core.holdback import Holdback, Tally

STARTED = ev.UploadStarted(file_count=2, total_bytes=10)
FAILED = ev.ProcessingError(error=ev.ErrorInfo(code="upload_timeout", message="no bytes"))


def _received(index: int) -> ev.Event:
    return ev.ImageReceived(
        file_index=index, file_name=f"{index}.png", size_bytes=5, content_type=None
    )


def test_per_file_events_wait_for_upload_started_then_follow_it_in_order() -> None:
    holdback = Holdback()
    assert holdback.release(_received(0)) == []
    assert holdback.release(_received(1)) == []
    assert holdback.release(STARTED) == [STARTED, _received(0), _received(1)]
    assert holdback.started
    assert holdback.release(_received(2)) == [_received(2)]


def test_an_error_before_the_body_is_complete_is_the_only_event() -> None:
    holdback = Holdback()
    assert holdback.release(_received(0)) == []
    assert holdback.release(FAILED) == [FAILED]
    assert not holdback.started


@given(st.integers(0, 6), st.integers(0, 6), st.booleans())
def test_any_mix_opens_with_upload_started_or_is_one_error(
    before: int, after: int, fails: bool
) -> None:
    holdback = Holdback()
    published: list[ev.Event] = []
    for index in range(before):
        published += holdback.release(_received(index))
    published += holdback.release(FAILED if fails else STARTED)
    for index in range(before, before + after):
        published += holdback.release(_received(index))
    if fails:
        assert published == [FAILED]
    else:
        assert published == [STARTED, *(_received(i) for i in range(before + after))]


def test_tally_announces_all_validated_once_when_the_body_and_every_result_are_in() -> None:
    tally = Tally(started_at=0.0)
    tally.validated, tally.valid = 1, 1
    assert tally.take_all_validated() is None  # the body is not complete yet
    tally.file_count = 2
    assert tally.take_all_validated() is None  # one file still being validated
    tally.validated, tally.invalid = 2, 1
    assert tally.take_all_validated() == ev.AllImagesValidated(
        file_count=2, valid_count=1, invalid_count=1
    )
    assert tally.take_all_validated() is None
