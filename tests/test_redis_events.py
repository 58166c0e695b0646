"""The shared event log (job streams and the firehose) against a real redis-server: a
batch of appends is one call of the PUBLISH script, in order, idempotent on retry; a
job's burst of events replicated in one append; the store's tasks on a failure that is
not Redis's."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ocrstream.core.config import load_settings
from ocrstream.core.events import (
    Event,
    ImageReceived,
    ImageValidationStart,
    ProcessingComplete,
    UploadStarted,
)
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobRegistry
from ocrstream.service.redis import store as store_module
from ocrstream.service.redis.connection import key, open_redis
from ocrstream.service.redis.events import (
    Append,
    RedisEventLog,
    firehose_key,
    job_events_key,
    job_key,
    job_results_key,
    running_key,
)
from ocrstream.service.redis.store import RedisStore
from tests.redis_server import RedisServer, redis_server, requires_redis
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    import coredis
    import pytest

    from ocrstream.core.envelope import Envelope

pytestmark = requires_redis
__all__ = ["redis_server"]

CREATED = "2026-12-01T10:00:00+00:00"


def _append(job_id: str, seq: int, *, terminal: bool = False, owner: str = "me") -> Append:
    return Append(job_id, seq, f"data: {job_id} {seq}\n\n".encode(), terminal, owner, CREATED)


async def test_a_batch_of_appends_is_one_call_in_order_and_a_retry_adds_nothing(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        log = RedisEventLog(client, event_buffer=100, result_ttl=60)
        batch = [_append("a", 0), _append("b", 0), _append("a", 1), _append("b", 1)]
        ids = await log.append_many(batch)
        assert ids == list(range(ids[0], ids[0] + 4)), "one numbering, one apart"
        assert await log.history("a") == [(0, b"data: a 0\n\n"), (1, b"data: a 1\n\n")]
        assert await log.history("b", after=0) == [(1, b"data: b 1\n\n")]
        firehose = await log.firehose_after(None)
        assert [(e.ring_id, e.job_id, e.seq) for e in firehose] == [
            (ids[0], "a", 0),
            (ids[1], "b", 0),
            (ids[2], "a", 1),
            (ids[3], "b", 1),
        ]
        assert await client.smembers(running_key("me")) == {b"a", b"b"}
        assert await log.created_at("a") == CREATED
        # A retry of a batch that landed (its answer lost) is taken once; the new event
        # after it gets the next id.
        calls_before = await _calls(client, "evalsha")
        again = await log.append_many([*batch[2:], _append("a", 2)])
        assert again == [0, 0, ids[3] + 1]
        # One command: no SCRIPT EXISTS before it (a coredis pipeline of a script sends
        # one, a second round trip for every append).
        assert await _calls(client, "evalsha") == calls_before + 1
        assert await _calls(client, "script|exists") == 0
        assert await log.last_seq("a") == 2
        assert len(await log.firehose_after(None)) == 5
        assert await log.append_many([]) == []


async def test_a_terminal_append_sets_the_jobs_keys_to_expire(redis_server: RedisServer) -> None:
    async with open_redis(redis_server.url) as client:
        log = RedisEventLog(client, event_buffer=100, result_ttl=30)
        await log.keep_result("j", 0, "doc", b"{}")
        await log.append_many([_append("j", 0), _append("j", 1, terminal=True)])
        assert await client.smembers(running_key("me")) == set()
        for name in (job_events_key("j"), job_key("j"), job_results_key("j")):
            assert 0 < await client.pttl(name) <= 30_000, name
        assert 0 < await client.pttl(key("job", "j", "doc", 0)) <= 30_000


async def test_the_firehose_keeps_event_buffer_entries(redis_server: RedisServer) -> None:
    async with open_redis(redis_server.url) as client:
        log = RedisEventLog(client, event_buffer=5, result_ttl=60)
        ids = await log.append_many([_append("j", seq) for seq in range(12)])
        assert await client.xlen(firehose_key()) == 5
        assert [entry.ring_id for entry in await log.firehose_after(None)] == ids[-5:]
        with trio.fail_after(5):
            assert [e.seq for e in await log.firehose_after(ids[-3])] == [10, 11]


async def _calls(client: coredis.Redis[bytes], command: str) -> int:
    stats: dict[str, Any] = dict(await client.info("commandstats"))
    entry = stats.get(f"cmdstat_{command}")
    return 0 if entry is None else int(entry["calls"])


@asynccontextmanager
async def _replicating_store(
    redis_server: RedisServer,
    append: Callable[
        [Callable[[list[Envelope]], Awaitable[list[int]]], list[Envelope]], Awaitable[list[int]]
    ],
) -> AsyncIterator[tuple[RedisStore, JobRegistry]]:
    """A running store whose jobs are ``local``'s, each batch of its replication going
    through ``append(real_append, batch)``; stopped on leaving."""
    store: RedisStore | None = None

    def replicate(envelope: Envelope) -> None:
        assert store is not None
        store.replicate(envelope)

    local = JobRegistry(result_ttl=60, on_publish=(replicate,))
    async with open_redis(redis_server.url) as client, trio.open_nursery() as nursery:
        store = RedisStore(
            client,
            load_settings({}, redis_url=redis_server.url),
            local=local,
            mirrors=JobRegistry(result_ttl=60),
            broadcaster=Broadcaster(100),
            changed=lambda _job: None,
        )
        real_append = store._append

        async def spied(batch: list[Envelope]) -> list[int]:
            return await append(real_append, batch)

        store._append = spied  # type: ignore[method-assign]
        await nursery.start(store.run)
        yield store, local
        nursery.cancel_scope.cancel()


def _burst(file_index: int) -> list[Event]:
    return [
        ImageReceived(file_index=file_index, file_name="a.png", size_bytes=1, content_type=None),
        ImageValidationStart(file_index=file_index, file_name="a.png"),
    ]


_COMPLETE = ProcessingComplete(
    file_count=1,
    valid_count=1,
    invalid_count=0,
    ocr_success_count=0,
    ocr_error_count=0,
    duration_ms=1.0,
)


async def test_a_jobs_burst_over_several_ticks_is_replicated_in_one_append(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small job publishes its events over a few scheduler ticks (the sequencer's
    # batches, the files nursery closing); replicated as they come, the terminal one
    # went in an append of its own, so every instance's firehose readers got two writes
    # for one job. Long gathering windows here, so a slow machine cannot split it.
    monkeypatch.setattr(store_module, "GATHER_QUIET", 0.5)
    monkeypatch.setattr(store_module, "GATHER_MAX", 5.0)
    batches: list[list[tuple[str | None, int | None]]] = []

    async def append(real: Any, batch: list[Envelope]) -> list[int]:
        batches.append([(envelope.job_id, envelope.seq) for envelope in batch])
        return list(await real(batch))

    async with _replicating_store(redis_server, append) as (store, local):
        handle = local.create()
        with trio.fail_after(10):
            handle.publish(UploadStarted(file_count=1, total_bytes=1))
            for event in _burst(0):
                await trio.sleep(0.01)  # the next tick, and then some
                handle.publish(event)
            await trio.sleep(0.05)  # well inside GATHER_QUIET
            handle.publish(_COMPLETE)
            await wait_until(lambda: bool(batches), timeout=10)
        assert batches == [[(handle.job_id, seq) for seq in range(4)]]
        assert [seq for seq, _ in await store.log.history(handle.job_id)] == [0, 1, 2, 3]


async def test_an_event_with_nothing_after_it_is_replicated_once_quiet_and_a_steady_stream_by_max(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gathering never holds a running job's events until its end: a lone event goes
    # after GATHER_QUIET, and events that keep coming go at least every GATHER_MAX.
    monkeypatch.setattr(store_module, "GATHER_QUIET", 0.1)
    monkeypatch.setattr(store_module, "GATHER_MAX", 0.3)
    batches: list[tuple[float, list[int | None]]] = []

    async def append(real: Any, batch: list[Envelope]) -> list[int]:
        batches.append((trio.current_time(), [envelope.seq for envelope in batch]))
        return list(await real(batch))

    async with _replicating_store(redis_server, append) as (store, local):
        handle = local.create()
        with trio.fail_after(20):
            published = trio.current_time()
            handle.publish(UploadStarted(file_count=20, total_bytes=1))
            await wait_until(lambda: bool(batches), timeout=10)
            assert batches[0][0] - published >= 0.1
            assert batches[0][1] == [0]
            assert not handle.record.finished
            for index in range(20):  # 20 events 50 ms apart: 1 s, never quiet for 0.1 s
                handle.publish(ImageValidationStart(file_index=index, file_name="a.png"))
                await trio.sleep(0.05)
            await wait_until(lambda: sum(len(seqs) for _, seqs in batches) == 21, timeout=10)
        in_order = [seq for _, seqs in batches for seq in seqs]
        assert in_order == list(range(21))
        assert len(batches) >= 3, "GATHER_MAX bounds each batch of a steady stream"
        assert [seq for seq, _ in await store.log.history(handle.job_id)] == in_order


async def test_a_bug_in_a_store_task_is_logged_with_its_traceback_once_and_retried(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A failure that is not Redis's (here: the replication's own code raising) is a bug:
    # logged at ERROR with its traceback, not as "the store failed" once, and not again
    # at every retry; the event still reaches Redis once the bug is gone.
    failures = [RuntimeError("a bug in building the appends")] * 3

    async def buggy_append(real: Any, batch: list[Envelope]) -> list[int]:
        if failures:
            raise failures.pop()
        return list(await real(batch))

    async with _replicating_store(redis_server, buggy_append) as (store, local):
        handle = local.create()
        with caplog.at_level(logging.WARNING, logger="ocrstream.service.redis.store"):
            handle.publish(UploadStarted(file_count=1, total_bytes=1))
            await wait_until(lambda: handle.job_id in store._announced, timeout=10)
        assert [seq for seq, _ in await store.log.history(handle.job_id)] == [0]
    assert failures == []
    bugs = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(bugs) == 1, caplog.records
    assert bugs[0].exc_info is not None
    assert bugs[0].exc_info[0] is RuntimeError
    assert not [r for r in caplog.records if "failed:" in r.getMessage()], "no store failure"
