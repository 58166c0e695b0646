from __future__ import annotations

import trio
import trio.testing

from ocrstream.core import events as ev
from ocrstream.service.memory.registry import JobRegistry


def _started() -> ev.UploadStarted:
    return ev.UploadStarted(file_count=1, total_bytes=1)


def _done() -> ev.ProcessingError:
    return ev.ProcessingError(error=ev.ErrorInfo(code="no_files", message="m"))


async def test_subscribers_get_every_event_once_in_order() -> None:
    registry = JobRegistry(result_ttl=10)
    handle = registry.create()
    received: list[int] = []

    async def reader() -> None:
        with registry.subscribe(handle) as subscription:
            while not subscription.exhausted:
                await subscription.wait_available()
                received.extend(e.seq for e in subscription.take_nowait() if e.seq is not None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.statistics().subscribers == 1
        handle.publish(_started())
        handle.publish(
            ev.ImageReceived(file_index=0, file_name="a", size_bytes=1, content_type=None)
        )
        await trio.testing.wait_all_tasks_blocked()
        handle.publish(_done())
    assert received == [0, 1, 2]
    assert registry.statistics().subscribers == 0


async def test_late_subscriber_replays_from_after_its_cursor() -> None:
    registry = JobRegistry(result_ttl=10)
    handle = registry.create()
    handle.publish(_started())
    handle.publish(_done())
    with registry.subscribe(handle, after=0) as subscription:
        assert [e.seq for e in subscription.take_nowait()] == [1]
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
    published: list[ev.Envelope] = []
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
        assert handle.subscriber_count == 1
        subscription.close()
        assert handle.subscriber_count == 0
    subscription.close()
    assert handle.subscriber_count == 0
