from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import orjson
import trio
import trio.testing

from ocrstream.core import envelope as envelope_module
from ocrstream.core import events as ev
from ocrstream.core.sse import encode_event
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobHandle, JobRegistry, RegistryStatistics
from tests.cursors import take_envelopes
from tests.sse_reading import SSEDecoder, SSEMessage

if TYPE_CHECKING:
    import pytest

    from ocrstream.core.envelope import Envelope


def _started() -> ev.UploadStarted:
    return ev.UploadStarted(file_count=1, total_bytes=1)


def _done() -> ev.ProcessingError:
    return ev.ProcessingError(error=ev.ErrorInfo(code="no_files", message="m"))


async def test_readers_get_every_event_once_in_order() -> None:
    registry = JobRegistry(result_ttl=10)
    handle = registry.create()
    received: list[int] = []

    async def reader() -> None:
        with registry.subscribe(handle) as subscription:
            while not subscription.exhausted:
                await subscription.wait_available()
                received.extend(e.seq for e in take_envelopes(subscription) if e.seq is not None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.statistics().readers == 1
        handle.publish(_started())
        handle.publish(
            ev.ImageReceived(file_index=0, file_name="a", size_bytes=1, content_type=None)
        )
        await trio.testing.wait_all_tasks_blocked()
        handle.publish(_done())
    assert received == [0, 1, 2]
    assert registry.statistics().readers == 0


async def test_a_late_reader_replays_from_after_its_position() -> None:
    registry = JobRegistry(result_ttl=10)
    handle = registry.create()
    handle.publish(_started())
    handle.publish(_done())
    with registry.subscribe(handle, after=0) as subscription:
        assert [e.seq for e in take_envelopes(subscription)] == [1]
        assert subscription.exhausted


async def test_finished_jobs_expire_after_the_ttl(autojump_clock: trio.testing.MockClock) -> None:
    registry = JobRegistry(result_ttl=5)
    handle = registry.create()
    handle.publish(_done())
    await trio.sleep(4.9)
    assert registry.get(handle.job_id) is handle
    await trio.sleep(0.2)
    assert registry.get(handle.job_id) is None


async def test_retained_jobs_are_capped() -> None:
    registry = JobRegistry(result_ttl=1000, max_retained=3)
    handles = [registry.create() for _ in range(5)]
    for handle in handles:
        handle.publish(_done())
    registry.expire()
    assert [registry.get(h.job_id) is not None for h in handles] == [False, False, True, True, True]


async def test_running_jobs_never_expire(autojump_clock: trio.testing.MockClock) -> None:
    registry = JobRegistry(result_ttl=1)
    handle = registry.create()
    await trio.sleep(100)
    assert registry.get(handle.job_id) is handle
    assert registry.running() == [handle]


async def test_end_with_error_is_idempotent_and_publishes_once() -> None:
    published: list[Envelope] = []
    registry = JobRegistry(result_ttl=1, on_publish=(published.append,))
    handle = registry.create()
    assert handle.end_with_error("shutting_down", "bye") is not None
    assert handle.end_with_error("internal_error", "again") is None
    assert [envelope.type for envelope in published] == ["processing_error"]
    await registry.wait_none_running()


async def test_a_subscription_counts_out_once_however_often_it_is_closed() -> None:
    registry = JobRegistry(result_ttl=1)
    handle = registry.create()
    with registry.subscribe(handle) as subscription:
        assert handle.reader_count == 1
        subscription.close()
        assert handle.reader_count == 0
    subscription.close()
    assert handle.reader_count == 0


def _finish(registry: JobRegistry) -> JobHandle:
    handle = registry.create()
    handle.publish(_done())
    return handle


async def test_expiry_by_ttl_over_100_000_jobs(mock_clock: trio.testing.MockClock) -> None:
    # One job finishes every millisecond; each create() expires what is due, in O(1)
    # amortised (the scan over every retained job this replaces made this test quadratic).
    registry = JobRegistry(result_ttl=30, max_retained=1_000_000)
    ids = []
    for _ in range(100_000):
        ids.append(_finish(registry).job_id)
        mock_clock.jump(0.001)
    # 100 s of jobs: those that finished in the last 30 s (at most) are still there.
    registry.expire()
    statistics = registry.statistics()
    assert 29_990 <= statistics.jobs <= 30_000
    assert statistics.running_jobs == 0
    kept = [registry.get(job_id) is not None for job_id in ids]
    assert kept == sorted(kept), "the oldest go first"
    mock_clock.jump(30)
    assert registry.get(ids[-1]) is None
    assert registry.statistics().jobs == 0


async def test_expiry_by_cap_over_100_000_jobs() -> None:
    registry = JobRegistry(result_ttl=10**9, max_retained=10_000)
    ids = [_finish(registry).job_id for _ in range(100_000)]
    running = registry.create()
    registry.expire()
    assert registry.statistics().jobs == 10_001, "the cap counts finished jobs only"
    assert all(registry.get(job_id) is None for job_id in ids[:-10_000])
    assert all(registry.get(job_id) is not None for job_id in ids[-10_000:])
    assert registry.running() == [running]


async def test_a_watched_job_is_not_dropped_mid_read(mock_clock: trio.testing.MockClock) -> None:
    registry = JobRegistry(result_ttl=5, max_retained=2)
    watched = registry.create()
    watched.publish(_started())
    with registry.subscribe(watched) as reader:
        assert reader.take_frames().startswith(b"id: 0\n")
        watched.publish(_done())
        mock_clock.jump(60)  # past its TTL, and three more jobs push it past the cap
        others = [_finish(registry) for _ in range(3)]
        assert registry.get(watched.job_id) is watched, "kept while it is read"
        assert reader.take_frames().startswith(b"id: 1\nevent: processing_error\n")
        assert reader.exhausted
        assert [registry.get(h.job_id) is not None for h in others] == [False, True, True]
    assert registry.get(watched.job_id) is None, "dropped when its last reader left"
    assert registry.statistics() == RegistryStatistics(jobs=2, running_jobs=0, readers=0)


async def test_one_encoding_serves_the_job_and_the_firehose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodings: list[object] = []

    def counting(document: object) -> bytes:
        encodings.append(document)
        return orjson.dumps(document)

    monkeypatch.setattr(envelope_module, "orjson", SimpleNamespace(dumps=counting))
    ring = Broadcaster(10, first_id=500)
    registry = JobRegistry(result_ttl=10, on_publish=(ring.publish,))
    handle = registry.create()
    with registry.subscribe(handle) as job_reader, ring.subscribe() as ring_reader:
        envelope = handle.publish(_started())
        job_frame, ring_frame = job_reader.take_frames(), ring_reader.take_frames()
    assert len(encodings) == 1, "one JSON encoding for both streams"
    job_id, _, job_rest = job_frame.partition(b"\n")
    ring_id, _, ring_rest = ring_frame.partition(b"\n")
    assert (job_id, ring_id) == (b"id: 0", b"id: 500")
    assert job_rest == ring_rest == encode_event(envelope), "the same data bytes, byte-exact"
    assert job_rest.startswith(b'event: upload_started\ndata: {"type":"upload_started"')
    assert SSEDecoder().feed(job_frame) == [SSEMessage("upload_started", envelope.to_json(), "0")]
