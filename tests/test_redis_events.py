"""The shared event log (job streams and the firehose) against a real redis-server: a
batch of appends is one call of the PUBLISH script, in order, idempotent on retry; the
store's tasks on a failure that is not Redis's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ocrstream.core.config import load_settings
from ocrstream.core.events import UploadStarted
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobRegistry
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


async def test_a_bug_in_a_store_task_is_logged_with_its_traceback_once_and_retried(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A failure that is not Redis's (here: the replication's own code raising) is a bug:
    # logged at ERROR with its traceback, not as "the store failed" once, and not again
    # at every retry; the event still reaches Redis once the bug is gone.
    failures = [RuntimeError("a bug in building the appends")] * 3
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
        append = store._append

        async def buggy_append(batch: list[Envelope]) -> list[int]:
            if failures:
                raise failures.pop()
            return await append(batch)

        store._append = buggy_append  # type: ignore[method-assign]
        await nursery.start(store.run)
        handle = local.create()
        with caplog.at_level(logging.WARNING, logger="ocrstream.service.redis.store"):
            handle.publish(UploadStarted(file_count=1, total_bytes=1))
            await wait_until(lambda: handle.job_id in store._announced, timeout=10)
        assert [seq for seq, _ in await store.log.history(handle.job_id)] == [0]
        nursery.cancel_scope.cancel()
    assert failures == []
    bugs = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(bugs) == 1, caplog.records
    assert bugs[0].exc_info is not None
    assert bugs[0].exc_info[0] is RuntimeError
    assert not [r for r in caplog.records if "failed:" in r.getMessage()], "no store failure"
