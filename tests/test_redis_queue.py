"""The OCR queue on a real private redis-server: fairness, leases and takeover, results
end to end through real worker processes (fake engine), cancellation, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from ocrstream.core.config import load_settings
from ocrstream.core.errors import OCRError
from ocrstream.engines.worker import PageRequest
from ocrstream.service.redis.connection import open_redis
from ocrstream.service.redis.ocr import RedisOCR, run_redis_ocr
from ocrstream.service.redis.queue import LOST_MESSAGE, OCRQueue
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
from tests.images import scripted_png
from tests.redis_server import RedisServer, redis_server, requires_redis
from tests.waiting import wait_until

if TYPE_CHECKING:
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
    found = []
    async for name in client.scan_iter(match="ocrstream:*"):
        if name.startswith(_LINGERING):
            assert await client.pttl(name) > 0, name
        else:
            found.append(name)
    return found


async def _start(
    nursery: trio.Nursery, settings: Settings, *, workers: bool = True
) -> tuple[RedisOCR, RedisWorkers | None]:
    ocr: RedisOCR = await nursery.start(partial(run_redis_ocr, settings, instance_id="i1"))
    pool = await nursery.start(partial(run_redis_workers, settings)) if workers else None
    return ocr, pool


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
        for index in range(20):
            await queue.enqueue(
                uid=f"big{index}", job_id="big", owner="i1", file="f", request=PageRequest()
            )
        await queue.enqueue(uid="small0", job_id="small", owner="i1", file="f", request=PageRequest())
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
            await queue.enqueue(uid=uid, job_id="j", owner="i1", file="f", request=PageRequest())
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
