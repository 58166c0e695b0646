"""The OCR queue on a real private redis-server: fairness, leases and takeover, results
end to end through real worker processes (fake engine), cancellation, cleanup."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING, cast

import pytest
import trio

from ocrstream.core.config import load_settings
from ocrstream.core.errors import OCRError
from ocrstream.engines.worker import PageRequest
from ocrstream.service.redis.connection import open_redis
from ocrstream.service.redis.ocr import RedisOCR, run_redis_ocr
from ocrstream.service.redis.queue import LOST_MESSAGE, NewUnit, OCRQueue, Unit, file_key
from ocrstream.service.redis.wire import (
    decode_outcome,
    encode_error,
    encode_page,
    page_from_json,
    page_to_json,
    request_from_json,
    request_to_json,
)
from ocrstream.service.redis.worker import RedisWorkers, run_redis_workers
from tests.images import scripted_png, scripted_tiff
from tests.redis_server import RedisServer, redis_server, requires_redis
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence

    import coredis

    from ocrstream.core.config import Settings

pytestmark = requires_redis
__all__ = ["redis_server"]

#: Keys that may outlive the work, each with a TTL: results streams, wake-up tokens.
_LINGERING = (b"ocrstream:results:", b"ocrstream:queue:wake", b"ocrstream:queue:workers")


def _settings(server: RedisServer, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": server.url,
        "ocr_engine": "fake",
        "ocr_workers": 2,
        "ocr_lease": 1.0,
        "ocr_timeout": 20.0,
    }
    values.update(overrides)
    return load_settings({}, **values)


async def _leftovers(client: coredis.Redis[bytes]) -> list[bytes]:
    """Keys of the queue still in Redis, but for those that merely wait to expire."""
    scan = cast("AsyncGenerator[bytes, None]", client.scan_iter(match="ocrstream:*"))
    async with contextlib.aclosing(scan) as names:
        keys = [name async for name in names]
    found = []
    for name in keys:
        if name.startswith(_LINGERING):
            assert await client.pttl(name) != -1, name  # it expires (-2: it has already)
        else:
            found.append(name)
    return found


async def _start(
    nursery: trio.Nursery, settings: Settings, *, workers: bool = True
) -> tuple[RedisOCR, RedisWorkers | None]:
    ocr: RedisOCR = await nursery.start(partial(run_redis_ocr, settings, instance_id="i1"))
    pool = await nursery.start(partial(run_redis_workers, settings)) if workers else None
    return ocr, pool


async def _enqueue_file(
    queue: OCRQueue, *, job_id: str, file: str, pages: int, uid: str = "u", data: bytes = b"bytes"
) -> None:
    """One file's ``pages`` units (uids ``<uid><index>``), its bytes sent with the first."""
    for index in range(pages):
        await queue.enqueue(
            uid=f"{uid}{index}", job_id=job_id, owner="i1", file=file, request=PageRequest(),
            data=data if index == 0 else None,
        )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


# The wire format.


def test_a_page_and_a_request_survive_the_json_round_trip() -> None:
    from ocrstream.core.documents import Line, Page, Word

    page = Page(
        page_index=2,
        source="ocr",
        width=60,
        height=20,
        dpi=None,
        text="a b",
        lines=(
            Line(
                text="a b",
                confidence=0.5,
                bbox=(0, 0, 60, 20),
                words=(
                    Word(text="a", confidence=0.5, bbox=(0, 0, 20, 20)),
                    Word(text="b", confidence=0.5, bbox=(40, 0, 60, 20)),
                ),
            ),
        ),
    )
    assert page_from_json(page_to_json(page)) == page
    assert decode_outcome(encode_page(page)) == page
    request = PageRequest(format="PDF", page_index=3, dpi=150.0, use_text_layer=False)
    assert request_from_json(request_to_json(request)) == request
    error = decode_outcome(encode_error(OCRError("ocr_timeout", "slow")))
    assert isinstance(error, OCRError)
    assert (error.code, error.message) == ("ocr_timeout", "slow")
    assert isinstance(decode_outcome(b"not json"), OCRError)


# The queue's operations, no workers.


async def test_a_one_file_job_is_taken_right_after_the_first_page_of_a_long_one(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=5, attempts=2)
        await _enqueue_file(queue, job_id="big", file="f", pages=20, uid="big")
        await queue.enqueue(
            uid="small0", job_id="small", owner="i1", file="g", request=PageRequest(), data=b"g"
        )
        assert (await queue.depth()).queued == 21
        taken = [unit.uid for unit in [await queue.take("w/0") for _ in range(4)] if unit]
        assert taken == ["big0", "small0", "big1", "big2"]
        depth = await queue.depth()
        assert (depth.queued, depth.leased) == (17, 4)
        assert await queue.cancel_job("big") == 20  # 17 queued, 3 leased
        assert await queue.cancel_job("small") == 1
        assert await queue.take("w/0") is None
        assert await _leftovers(client) == []


async def test_an_expired_lease_goes_back_to_the_front_then_fails_after_its_attempts(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=0.05, attempts=2)
        for uid in ("a", "b"):
            await queue.enqueue(
                uid=uid, job_id="j", owner="i1", file="f", request=PageRequest(), data=b"f"
            )
        first = await queue.take("w/0")
        assert first is not None
        assert (first.uid, first.attempt) == ("a", 1)
        await trio.sleep(0.1)
        reaped = await queue.reap()
        assert (reaped.requeued, reaped.failed) == (1, 0)
        assert not await queue.renew(first, "w/0")  # no longer leased
        again = await queue.take("w/1")
        assert again is not None
        assert (again.uid, again.attempt) == ("a", 2)  # the front of its job's queue
        assert not await queue.complete(first, "w/0", b"{}")  # the old holder is too late
        await trio.sleep(0.1)
        reaped = await queue.reap()
        assert (reaped.requeued, reaped.failed) == (0, 1)
        results = await queue.read_results("i1", b"0-0", block=0.1)
        assert [result.uid for result in results] == ["a"]
        lost = decode_outcome(results[0].outcome)
        assert isinstance(lost, OCRError)
        assert (lost.code, lost.message) == ("ocr_failed", LOST_MESSAGE)
        assert await queue.abandon(["b"]) == 1
        assert await _leftovers(client) == []


async def test_an_owner_keeps_its_waiting_units_alive_and_learns_of_lost_ones(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        # Refreshed every 0.25 s for 1.5 s, past its 1 s TTL: a loaded machine may stall
        # a refresh by most of a second before the unit expires (0.3 s was too tight).
        queue = OCRQueue(client, lease=5, attempts=2, ttl=1.0)
        await queue.enqueue(
            uid="a", job_id="j", owner="i1", file="ocrstream:file:j:0", request=PageRequest(),
            data=b"bytes",
        )  # fmt: skip
        for _ in range(6):
            await trio.sleep(0.25)
            missing = await queue.refresh(
                owner="i1", uids=["a", "gone"], files=["ocrstream:file:j:0"], jobs=["j"]
            )
            assert missing == {"gone"}
        unit = await queue.take("w/0")
        assert unit is not None
        assert (unit.uid, unit.data) == ("a", b"bytes")
        assert await queue.abandon(["a"]) == 1  # its file's last unit: the bytes go too
        assert await _leftovers(client) == []


async def test_a_batch_enqueue_keeps_each_jobs_order_and_the_round_robin(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=5, attempts=2)
        units = [
            NewUnit(
                uid=f"{job}{index}",
                job_id=job,
                owner="i1",
                file=f"f{job}",
                request=PageRequest(page_index=index),
                data=b"x" if index == 0 else None,
            )
            for index in range(3)
            for job in ("a", "b")
        ]
        assert await queue.enqueue_many(units[:5]) == [True] * 5  # a0 b0 a1 b1 a2
        assert await queue.enqueue_many(units[4:]) == [True, True]  # a2 again: not twice
        exchanged = await queue.exchange("w", take=10)
        assert [unit.uid for unit in exchanged.taken] == ["a0", "b0", "a1", "b1", "a2", "b2"]
        # Each file's bytes come once, with the first of its units in the round trip.
        assert [unit.data for unit in exchanged.taken] == [b"x", b"x", None, None, None, None]
        for unit in exchanged.taken:
            assert await queue.abandon([unit.uid]) == 1
        assert await _leftovers(client) == []


async def test_a_unit_whose_bytes_are_not_stored_is_refused_with_the_rest_of_its_job(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=5, attempts=2)

        def unit(uid: str, job: str, file: str, data: bytes | None = None) -> NewUnit:
            return NewUnit(
                uid=uid, job_id=job, owner="i1", file=file, request=PageRequest(), data=data
            )

        batch = [
            unit("a0", "a", "fa0"),  # its file was never stored: refused
            unit("b0", "b", "fb", b"b"),
            unit("a1", "a", "fa1", b"a1"),  # after a refused unit of its job: refused too
            unit("b1", "b", "fb"),
        ]
        assert await queue.enqueue_many(batch) == [False, True, False, True]
        assert await client.exists(["fa1"]) == 0  # a refused unit changes nothing
        again = [unit("a0", "a", "fa0", b"a0"), unit("a1", "a", "fa1", b"a1")]
        assert await queue.enqueue_many(again) == [True, True]
        taken = [(await queue.take("w")) for _ in range(4)]
        assert [unit.uid for unit in taken if unit] == ["b0", "a0", "b1", "a1"]
        assert await queue.take("w") is None
        for done in taken:
            assert done is not None
            assert await queue.complete(done, "w", b"{}")
        assert await _leftovers(client) == []


async def test_a_files_bytes_go_with_its_last_unit_whichever_way_it_ends(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=0.05, attempts=1)
        await _enqueue_file(queue, job_id="j", file="f", pages=3)
        first = await queue.take("w")
        assert first is not None
        assert await queue.complete(first, "w", b"{}")
        assert await client.get("f") == b"bytes"  # two units still read it
        assert await queue.abandon(["u1"]) == 1
        assert await client.get("f") == b"bytes"
        last = await queue.take("w")
        assert last is not None
        assert last.data == b"bytes"
        await trio.sleep(0.1)
        assert (await queue.reap()).failed == 1  # its only try's worker was lost
        assert await client.exists(["f"]) == 0
        # A file stored by a peer that does not count its units is not deleted here.
        await client.set("g", b"old")
        await queue.enqueue(uid="v", job_id="k", owner="i1", file="g", request=PageRequest())
        await client.hdel("ocrstream:queue:files:k", ["g"])
        assert await queue.abandon(["v"]) == 1
        assert await client.get("g") == b"old"
        await client.delete(["g"])
        assert await _leftovers(client) == []


async def test_complete_and_take_never_loses_nor_delivers_twice(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=5, attempts=2)
        for index in range(30):
            await queue.enqueue(
                uid=f"u{index}", job_id=f"j{index % 3}", owner="i1", file=f"f{index % 3}",
                request=PageRequest(), data=b"x",
            )  # fmt: skip
        # Two workers: each round trip completes what it holds and takes up to three.
        held: dict[str, list[Unit]] = {"w1": [], "w2": []}
        taken: list[str] = []
        for turn in range(30):
            worker = ("w1", "w2")[turn % 2]
            done = held[worker]
            exchanged = await queue.exchange(
                worker, complete=[(unit, unit.uid.encode()) for unit in done], take=3
            )
            assert exchanged.delivered == [True] * len(done)
            held[worker] = exchanged.taken
            taken += [unit.uid for unit in exchanged.taken]
        assert sorted(taken) == sorted(f"u{index}" for index in range(30))  # each once
        # An outcome from a worker that does not hold the unit is dropped; a unit handed
        # back goes to the front, its try not counted.
        await queue.enqueue(
            uid="v", job_id="k", owner="i1", file="g", request=PageRequest(), data=b"g"
        )
        [unit] = (await queue.exchange("w1", take=1)).taken
        assert (await queue.exchange("w2", complete=[(unit, b"stolen")])).delivered == [False]
        again = await queue.exchange("w1", release=[unit], take=1)
        assert [(u.uid, u.attempt) for u in again.taken] == [("v", 1)]
        assert (await queue.exchange("w1", complete=[(again.taken[0], b"v")])).delivered == [True]
        results = await queue.read_results("i1", b"0-0", block=0.1)
        outcomes = {result.uid: result.outcome for result in results}
        assert len(results) == len(outcomes) == 31
        assert outcomes["v"] == b"v"
        assert all(outcomes[f"u{index}"] == f"u{index}".encode() for index in range(30))
        assert await _leftovers(client) == []


# End to end: RedisOCR and worker slots (real trio-parallel processes, fake engine).


class _CountingQueue(OCRQueue):
    """The real queue, noting the uids of each enqueue round trip."""

    def __init__(self, client: coredis.Redis[bytes]) -> None:
        super().__init__(client, lease=1.0, attempts=2)
        self.batches: list[list[str]] = []

    async def enqueue_many(self, units: Sequence[NewUnit]) -> list[bool]:
        self.batches.append([unit.uid for unit in units])
        return await super().enqueue_many(units)


async def _queued(client: coredis.Redis[bytes], job_id: str) -> int:
    return int(await client.llen(f"ocrstream:queue:job:{job_id}"))


async def test_pages_asked_for_during_a_round_trip_go_in_the_next_and_a_cancelled_one_never(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client, trio.open_nursery() as owner:
        queue = _CountingQueue(client)
        ocr = RedisOCR(queue, engine="fake", instance_id="i1")
        await owner.start(ocr.run)
        scopes = [trio.CancelScope() for _ in range(4)]

        async def read(index: int) -> None:
            with scopes[index]:
                await ocr.recognize(scripted_png(f"p{index}"), job_id="j", file_index=index)

        async with trio.open_nursery() as pages:
            redis_server.pause()  # the first round trip waits for its answer
            try:
                pages.start_soon(read, 0)
                await wait_until(lambda: len(queue.batches) == 1, timeout=5)
                for index in (1, 2, 3):
                    pages.start_soon(read, index)
                await trio.sleep(0.05)
                scopes[2].cancel()  # still in the outbox: it leaves it, never sent
                await trio.sleep(0.05)
            finally:
                redis_server.resume()

            async def all_queued() -> bool:
                return await _queued(client, "j") == 3

            await wait_until(all_queued, timeout=5)
            assert [len(batch) for batch in queue.batches] == [1, 2]
            files = await client.hkeys("ocrstream:queue:files:j")
            assert sorted(files) == [file_key("j", index).encode() for index in (0, 1, 3)]
            for scope in scopes:
                scope.cancel()
        assert await _leftovers(client) == []
        owner.cancel_scope.cancel()


async def test_a_page_cancelled_while_its_batch_is_on_its_way_is_dropped_once_it_lands(
    redis_server: RedisServer,
) -> None:
    async with open_redis(redis_server.url) as client, trio.open_nursery() as owner:
        queue = _CountingQueue(client)
        ocr = RedisOCR(queue, engine="fake", instance_id="i1")
        await owner.start(ocr.run)
        page = trio.CancelScope()
        ended = trio.Event()

        async def read() -> None:
            with page:
                await ocr.recognize(scripted_png("late"), job_id="j", file_index=0)
            ended.set()

        async with trio.open_nursery() as pages:
            redis_server.pause()  # the batch is sent and waits for its answer
            try:
                pages.start_soon(read)
                await wait_until(lambda: bool(queue.batches), timeout=5)
                page.cancel()
                await trio.sleep(0.3)
                assert not ended.is_set()  # its clean-up waits for the answer
            finally:
                redis_server.resume()
        # The answer came (queued): the clean-up dropped the unit.
        assert len(queue.batches) == 1
        assert await _leftovers(client) == []
        owner.cancel_scope.cancel()


async def test_pages_flow_end_to_end_and_one_job_spreads_over_every_worker(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, _ = await _start(nursery, _settings(redis_server))
    page = await ocr.recognize(scripted_png("hello"), job_id="j1", file_index=0)
    assert page.text == "hello"
    pids: list[str] = []

    async def read(index: int) -> None:
        request = PageRequest(page_index=0)
        data = scripted_png(f"PID SLEEP:0.3 {index}")
        pids.append((await ocr.recognize(data, request, job_id="j2", file_index=index)).text)

    async with trio.open_nursery() as pages:
        for index in range(4):
            pages.start_soon(read, index)
    assert len({text.split()[0] for text in pids}) == 2  # both slots' processes
    async with open_redis(redis_server.url) as client:
        assert await _leftovers(client) == []


async def test_engine_errors_and_timeouts_come_back_as_ocr_errors(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, _ = await _start(nursery, _settings(redis_server, ocr_workers=1, ocr_timeout=0.5))
    # A warm worker first: OCR_TIMEOUT counts from the page's start, as embedded.
    await wait_until(lambda: ocr.statistics().capacity == 1, timeout=5)
    assert (await ocr.recognize(scripted_png("warm"), job_id="j", file_index=9)).text == "warm"
    with pytest.raises(OCRError) as failed:
        await ocr.recognize(scripted_png("FAIL"), job_id="j", file_index=0)
    assert failed.value.code == "ocr_failed"
    assert "scripted failure" in failed.value.message
    with pytest.raises(OCRError) as slow:
        await ocr.recognize(scripted_png("SLEEP:5"), job_id="j", file_index=1)
    assert slow.value.code == "ocr_timeout"


async def test_a_cancelled_page_is_killed_within_a_second_and_queued_ones_never_start(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, workers = await _start(nursery, _settings(redis_server, ocr_workers=1))
    assert workers is not None
    pid = int((await ocr.recognize(scripted_png("PID"), job_id="j0", file_index=0)).text)
    with trio.CancelScope() as job:
        async with trio.open_nursery() as pages:
            pages.start_soon(
                partial(ocr.recognize, scripted_png("SPIN:30"), job_id="j", file_index=0)
            )
            await wait_until(lambda: workers.busy == 1, timeout=5)
            for index in (1, 2):
                pages.start_soon(
                    partial(ocr.recognize, scripted_png("PID"), job_id="j", file_index=index)
                )
            await wait_until(lambda: ocr.statistics().waiting == 2, timeout=5)
            await trio.sleep(0.2)  # the worker is computing
            job.cancel()
    cancelled_at = trio.current_time()
    await wait_until(lambda: not _alive(pid), timeout=1, interval=0.01)
    assert trio.current_time() - cancelled_at < 1
    await wait_until(lambda: workers.statistics().cancelled == 1, timeout=2)
    stats = workers.statistics()
    assert (stats.done, stats.busy) == (1, 0)  # only the first PID page ever ran
    # The slot is free again, with a new process.
    page = await ocr.recognize(scripted_png("after"), job_id="j3", file_index=0)
    assert page.text == "after"
    await wait_until(lambda: workers.statistics().done == 2, timeout=2)
    async with open_redis(redis_server.url) as client:
        assert await _leftovers(client) == []


async def test_cancel_job_kills_its_pages_everywhere_and_fails_their_waiters(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, workers = await _start(nursery, _settings(redis_server, ocr_workers=1))
    assert workers is not None
    errors: list[str] = []

    async def read(index: int) -> None:
        try:
            await ocr.recognize(scripted_png("SPIN:30"), job_id="j", file_index=index)
        except OCRError as error:
            errors.append(error.message)

    async with trio.open_nursery() as pages:
        for index in range(3):
            pages.start_soon(read, index)
        await wait_until(lambda: workers.busy == 1, timeout=5)
        await ocr.cancel_job("j")
    assert errors == ["the job was cancelled"] * 3
    await wait_until(lambda: workers.busy == 0, timeout=1)
    async with open_redis(redis_server.url) as client:
        assert await _leftovers(client) == []


async def test_a_multi_page_file_is_stored_once_and_deleted_after_its_last_page(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, _ = await _start(nursery, _settings(redis_server))
    data = scripted_tiff([f"frame {index} SLEEP:0.2" for index in range(4)])
    texts: dict[int, str] = {}
    async with open_redis(redis_server.url) as client:

        async def read(index: int) -> None:
            request = PageRequest(format="TIFF", page_index=index)
            page = await ocr.recognize(data, request, job_id="j", file_index=0)
            texts[page.page_index] = page.text

        async with trio.open_nursery() as pages:
            for index in range(4):
                pages.start_soon(read, index)
            await wait_until(lambda: ocr.statistics().busy == 2, timeout=5)
            assert await client.exists([file_key("j", 0)]) == 1
        assert texts == {index: f"frame {index} SLEEP:0.2" for index in range(4)}
        assert await _leftovers(client) == []


async def test_a_one_file_job_overtakes_a_queued_twenty_file_job(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, _ = await _start(nursery, _settings(redis_server, ocr_workers=1))
    finished: list[str] = []

    async def read(job: str, index: int) -> None:
        await ocr.recognize(scripted_png("SLEEP:0.05"), job_id=job, file_index=index)
        finished.append(f"{job}{index}")

    async def all_big_pages_in_redis() -> bool:
        # Read from Redis itself: the instance's own figures are sampled once a second,
        # by which time its one slot has read several of the big job's pages.
        depth = await queue.depth()
        return depth.queued + depth.leased + len(finished) == 20

    async with open_redis(redis_server.url) as client, trio.open_nursery() as pages:
        queue = OCRQueue(client, lease=5, attempts=2)
        for index in range(20):
            pages.start_soon(read, "big", index)
        await wait_until(all_big_pages_in_redis, timeout=5, interval=0.002)
        read_before = len(finished)
        pages.start_soon(read, "small", 0)
    # Next in turn, not after the big job's pages still queued (then at least 10).
    assert read_before <= 10, finished
    assert finished.index("small0") <= read_before + 2, finished


async def test_cancelling_the_workers_owner_mid_traffic_ends_them_cleanly(
    redis_server: RedisServer,
) -> None:
    # Cancelling the owner of the Redis client also cancels coredis's connection tasks:
    # a slot's shielded take can then meet a closed connection (anyio's
    # ClosedResourceError), which is "Redis did not answer", not a crash (seen in CI).
    settings = _settings(redis_server, ocr_workers=2)
    for round_ in range(12):
        async with trio.open_nursery() as nursery:
            ocr, _ = await _start(nursery, settings)

            async def read(index: int, ocr: RedisOCR = ocr) -> None:
                with contextlib.suppress(OCRError):
                    await ocr.recognize(scripted_png("fast"), job_id="busy", file_index=index)

            for index in range(40):
                nursery.start_soon(read, index)
            await trio.sleep(0.05 + 0.02 * round_)
            nursery.cancel_scope.cancel()


async def test_pages_outliving_the_queues_owner_fail_with_ocr_failed(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    # A job still running while the app stops: its pages fail at once, not on a closed
    # client (no worker runs here, so the first page would wait for ever otherwise).
    failures: list[str] = []

    async def read(ocr: RedisOCR) -> None:
        try:
            await ocr.recognize(scripted_png("fast"), job_id="j", file_index=0)
        except OCRError as error:
            failures.append(f"{error.code}: {error}")

    async with trio.open_nursery() as owner:
        ocr = await owner.start(partial(run_redis_ocr, _settings(redis_server), instance_id="i1"))
        nursery.start_soon(read, ocr)
        await wait_until(lambda: ocr.statistics().waiting == 1, timeout=5)
        owner.cancel_scope.cancel()
    await wait_until(lambda: len(failures) == 1, timeout=5)
    await read(ocr)  # and any page asked for later
    assert failures == 2 * ["ocr_failed: this instance's OCR queue has stopped"]
