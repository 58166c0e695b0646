from __future__ import annotations

import json
import os
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.config import Settings, load_settings
from ocrstream.core.validation import INLINE_MAX_BYTES, INLINE_MAX_PIXELS
from ocrstream.service.memory.registry import JobHandle, JobRegistry
from ocrstream.service.pipeline import JobOptions, run_job
from tests.images import Upload, make_image, multipart_body, noisy_png
from tests.ordering import check_stream
from tests.strategies import MAX_FILE_SIZE, MAX_FILES, expected_outcome, file_mixes

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

BOUNDARY = "ocrstream-test-boundary"


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "max_files": MAX_FILES,
        "max_file_size": MAX_FILE_SIZE,
        "max_parts": 30,
        "upload_timeout": 5,
        "upload_deadline": 60,
        "validation_threads": 2,
    }
    values.update(overrides)
    return load_settings({}, **values)


async def _pieces(body: bytes, piece: int) -> AsyncGenerator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start : start + piece]
        await trio.lowlevel.checkpoint()


def _history(handle: JobHandle) -> list[dict[str, Any]]:
    return [json.loads(envelope.to_json()) for envelope in handle.record.history]


async def _run(
    body: bytes,
    *,
    piece: int = 4096,
    settings: Settings | None = None,
    content_length: int | None = None,
) -> tuple[JobHandle, list[dict[str, Any]]]:
    registry = JobRegistry(result_ttl=60)
    handle = registry.create()
    await run_job(
        handle,
        _pieces(body, piece),
        options=JobOptions(boundary=BOUNDARY.encode(), content_length=content_length),
        settings=settings or _settings(),
        limiter=trio.CapacityLimiter(2),
    )
    return handle, _history(handle)


@given(mix=file_mixes(), piece=st.integers(min_value=1, max_value=70_000))
async def test_ordering_rules_hold_for_any_mix_of_files(mix: list[Any], piece: int) -> None:
    parts = [Upload(f.data, f"{f.kind}-{i}.bin") for i, f in enumerate(mix)]
    body = multipart_body(parts, BOUNDARY)
    handle, events = await _run(body, piece=max(piece, 64), content_length=len(body))
    outcome = check_stream(events)
    assert outcome.terminal == "processing_complete", events[-1]
    assert outcome.file_count == len(mix)
    for index, file in enumerate(mix):
        assert outcome.outcomes[index] == expected_outcome(index, file), (index, file.kind)
    assert events[0]["data"]["total_bytes"] == sum(len(f.data) for f in mix)
    assert handle.record.snapshot()["status"] == "complete"


async def test_a_body_with_no_file_parts_is_no_files() -> None:
    _, events = await _run(multipart_body([Upload(b"just a field", None, None, "note")], BOUNDARY))
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "no_files"


@pytest.mark.parametrize(
    ("body", "code", "overrides"),
    [
        (b"--nope\r\n\r\n", "malformed_request", {}),
        (multipart_body([Upload(make_image(), "a.png")], BOUNDARY)[:-10], "malformed_request", {}),
        (
            multipart_body([Upload(make_image(), f"{i}.png") for i in range(4)], BOUNDARY),
            "too_many_parts",
            {"max_parts": 3},
        ),
        (
            multipart_body([Upload(b"x" * 20_000, "a.png")], BOUNDARY),
            "request_too_large",
            {"max_request_size": 10_000},
        ),
    ],
    ids=["framing", "unterminated", "parts", "size"],
)
async def test_request_failures_before_the_body_completes_are_the_only_event(
    body: bytes, code: str, overrides: dict[str, object]
) -> None:
    # Files that completed before the failure were already validated: none of it shows.
    _, events = await _run(body, piece=512, settings=_settings(**overrides))
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == code
    check_stream(events)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _start_job(
    nursery: trio.Nursery, handle: JobHandle, chunks: AsyncGenerator[bytes], settings: Settings
) -> None:
    """Run a job in ``nursery`` (so the test can cancel it) on a body of unknown length."""
    options = JobOptions(boundary=BOUNDARY.encode(), content_length=None)
    nursery.start_soon(
        partial(
            run_job,
            handle,
            chunks,
            options=options,
            settings=settings,
            limiter=trio.CapacityLimiter(1),
        )
    )


async def test_cancellation_ends_the_job_and_frees_the_spools() -> None:
    # A file big enough to roll its spool over to a temporary file on disk.
    body = multipart_body([Upload(b"x" * 400_000, "a.png"), Upload(b"y" * 10, "b.png")], BOUNDARY)
    gate = trio.Event()

    async def stalls_after_first_file() -> AsyncGenerator[bytes]:
        yield body[:-200]  # first file complete, second still open
        await gate.wait()

    registry = JobRegistry(result_ttl=60)
    handle = registry.create()
    before = _open_fds()
    chunks = stalls_after_first_file()
    async with trio.open_nursery() as nursery:
        _start_job(nursery, handle, chunks, _settings(max_file_size=10**6))
        await trio.testing.wait_all_tasks_blocked()
        assert _open_fds() > before, "the big file spooled to disk"
        nursery.cancel_scope.cancel()
    await chunks.aclose()
    assert _open_fds() == before
    events = _history(handle)
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "client_disconnected"
    assert handle.record.snapshot()["status"] == "cancelled"


async def test_shutdown_cancel_reports_shutting_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    never = trio.Event()

    async def silent() -> AsyncGenerator[bytes]:
        await never.wait()
        yield b""

    registry = JobRegistry(result_ttl=60)
    handle = registry.create()
    chunks = silent()
    async with trio.open_nursery() as nursery:
        _start_job(nursery, handle, chunks, _settings(upload_timeout=1000, upload_deadline=1000))
        await trio.sleep(1)
        handle.cancel("shutting_down")
    await chunks.aclose()
    assert handle.record.history[-1].to_dict()["data"] == {
        "error": {
            "code": "shutting_down",
            "message": "the server is shutting down; the job was cancelled",
        }
    }


async def test_a_bug_ends_the_job_with_internal_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ocrstream.service.pipeline.inspect_image", broken)
    monkeypatch.setattr("ocrstream.service.pipeline.inspect_small_image", broken)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    handle, events = await _run(body)
    assert events[-1]["type"] == "processing_error"
    assert events[-1]["data"]["error"]["code"] == "internal_error"
    assert "boom" not in events[-1]["data"]["error"]["message"], "no internals leak to clients"
    assert "boom" in caplog.text
    check_stream(events)
    assert handle.done.is_set()


def _comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events without what differs between two runs of the same job."""
    kept = []
    for event in events:
        data = {key: value for key, value in event["data"].items() if key != "duration_ms"}
        kept.append({"type": event["type"], "seq": event["seq"], "data": data})
    return kept


async def test_small_images_are_validated_inline_and_large_ones_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hops: list[object] = []
    to_thread = trio.to_thread.run_sync

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", counted)
    small = make_image("PNG", (24, 24))
    large = noisy_png((120, 120))
    assert len(small) <= INLINE_MAX_BYTES < len(large)
    bodies = [multipart_body([Upload(data, "a.png")], BOUNDARY) for data in (small, large)]
    _, small_inline = await _run(bodies[0])
    assert hops == [], "no thread hop for a small image"
    _, large_threaded = await _run(bodies[1])
    assert len(hops) == 1, "one hop for a large one"
    # Each image the other way round gives the very same events.
    monkeypatch.setattr("ocrstream.core.validation.INLINE_MAX_BYTES", 0)
    _, small_threaded = await _run(bodies[0])
    assert len(hops) == 2
    monkeypatch.setattr("ocrstream.core.validation.INLINE_MAX_BYTES", 1 << 20)
    monkeypatch.setitem(INLINE_MAX_PIXELS, "PNG", 1 << 20)
    _, large_inline = await _run(bodies[1])
    assert len(hops) == 2
    assert _comparable(small_inline) == _comparable(small_threaded)
    assert _comparable(large_inline) == _comparable(large_threaded)
    for events, side in ((small_inline, 24), (large_inline, 120)):
        (success,) = (e for e in events if e["type"] == "image_validation_success")
        assert (success["data"]["width"], success["data"]["format"]) == (side, "PNG")


class _TaskSteps(trio.abc.Instrument):
    """Counts the steps each task takes, by the task's function name."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name.rsplit(".", 1)[-1]] += 1


async def test_a_tasks_events_reach_the_sequencer_without_a_trip_through_the_scheduler_each() -> (
    None
):
    # Three small images in one piece, OCR off: each file's task validates inline and
    # sends its three events without yielding (one step each), and the sequencer
    # records the job's twelve events in a few batches, not one wake-up per event
    # (with a yield per event: 10 steps for the three file tasks, 8 for the sequencer).
    body = multipart_body(
        [Upload(make_image("PNG", (16, 16)), f"a{i}.png") for i in range(3)], BOUNDARY
    )
    counter = _TaskSteps()
    trio.lowlevel.add_instrument(counter)
    try:
        _, events = await _run(body, piece=len(body))
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert len(events) == 12
    assert check_stream(events).terminal == "processing_complete"
    assert counter.steps["_check_file"] == 3, counter.steps
    assert counter.steps["_sequence"] <= 4, counter.steps


def test_files_read_inline_are_those_the_intake_keeps_in_memory() -> None:
    # The pipeline reads a file of up to INLINE_MAX_BYTES on the loop's thread: only
    # because such a spool never moves to disk.
    from ocrstream.core.validation import INLINE_MAX_BYTES
    from ocrstream.service.intake import SPOOL_THRESHOLD

    assert INLINE_MAX_BYTES <= SPOOL_THRESHOLD
