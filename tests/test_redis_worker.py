"""``ocrstream worker`` against a real private redis-server: a worker process killed
mid-page (the page moves on after OCR_LEASE, or fails after OCR_ATTEMPTS), a graceful
stop, Redis going away and coming back, ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from ocrstream.cli import main
from ocrstream.core.errors import OCRError
from ocrstream.engines.worker import PageRequest
from ocrstream.http.worker_http import serve_worker_http
from ocrstream.service.redis import exchange
from ocrstream.service.redis.connection import open_redis
from ocrstream.service.redis.queue import LOST_MESSAGE, NewUnit, OCRQueue
from ocrstream.service.redis.wire import decode_outcome
from ocrstream.service.redis.worker import run_redis_workers
from tests.images import scripted_png
from tests.redis_server import RedisServer, redis_server, requires_redis
from tests.test_redis_queue import _leftovers, _settings, _start
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ocrstream.service.redis.ocr import RedisOCR

pytestmark = requires_redis
__all__ = ["redis_server"]

_ROOT = Path(__file__).resolve().parent.parent


def _spawn_worker(
    server: RedisServer, *arguments: str, **variables: str
) -> subprocess.Popen[bytes]:
    """``ocrstream worker`` in a process of its own; its log goes to the server's directory."""
    env = {
        **os.environ,
        "PYTHONPATH": str(_ROOT),
        "OCRSTREAM_REDIS_URL": server.url,
        "OCRSTREAM_OCR_ENGINE": "fake",
        "OCRSTREAM_OCR_LEASE": "1",
        "OCRSTREAM_OCR_WORKERS": "1",
        **variables,
    }
    with (server.directory / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ocrstream", "worker", *arguments],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


@contextlib.contextmanager
def _coredis_leaks_quiet() -> Iterator[None]:
    """Quiet, and collect at the end, what coredis 6.9 leaks while Redis is away: each
    failed connection attempt leaves its anyio memory streams unclosed (seen with a bare
    PING to a stopped server); they would warn at some later garbage collection."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unclosed <MemoryObject", ResourceWarning)
        yield
        gc.collect()


def _descendants(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = [int(child) for child in children]
    return found + [grandchild for child in found for grandchild in _descendants(child)]


def _kill_machine(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and its engine processes at once, as a machine dying would."""
    doomed = [process.pid, *_descendants(process.pid)]
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=5)


async def _held_by_subprocess(
    server: RedisServer, nursery: trio.Nursery, *, attempts: int
) -> tuple[RedisOCR, subprocess.Popen[bytes], list[object]]:
    """A page held by a worker subprocess; the in-test instance waits for it."""
    settings = _settings(server, ocr_workers=1, ocr_attempts=attempts)
    ocr, _ = await _start(nursery, settings, workers=False)
    process = _spawn_worker(server, OCRSTREAM_OCR_ATTEMPTS=str(attempts))
    outcome: list[object] = []

    async def read() -> None:
        try:
            page = await ocr.recognize(scripted_png("SLEEP:2 survived"), job_id="j", file_index=0)
            outcome.append(page.text)
        except OCRError as error:
            outcome.append(error)

    await wait_until(lambda: ocr.statistics().capacity == 1, timeout=15, what="worker up")
    nursery.start_soon(read)
    await wait_until(lambda: ocr.statistics().busy == 1, timeout=5, what="page taken")
    return ocr, process, outcome


async def test_a_page_whose_worker_was_killed_completes_on_another_after_the_lease(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, process, outcome = await _held_by_subprocess(redis_server, nursery, attempts=2)
    _kill_machine(process)
    killed_at = trio.current_time()
    await nursery.start(partial(run_redis_workers, _settings(redis_server, ocr_workers=1)))
    await wait_until(lambda: bool(outcome), timeout=10)
    assert outcome == ["SLEEP:2 survived"]
    assert 1 <= trio.current_time() - killed_at < 6  # the lease, a reap, 2 s of work
    del ocr


async def test_a_page_whose_last_try_was_lost_fails_with_ocr_failed(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    _, process, outcome = await _held_by_subprocess(redis_server, nursery, attempts=1)
    _kill_machine(process)
    await wait_until(lambda: bool(outcome), timeout=5)
    error = outcome[0]
    assert isinstance(error, OCRError)
    assert (error.code, error.message) == ("ocr_failed", LOST_MESSAGE)


async def test_sigterm_lets_the_held_page_finish_then_the_worker_leaves(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, _ = await _start(nursery, _settings(redis_server, ocr_workers=1), workers=False)
    process = _spawn_worker(redis_server)
    await wait_until(lambda: ocr.statistics().capacity == 1, timeout=15, what="worker up")
    texts: list[str] = []

    async def read() -> None:
        page = await ocr.recognize(scripted_png("SLEEP:1 done"), job_id="j", file_index=0)
        texts.append(page.text)

    async with trio.open_nursery() as pages:
        pages.start_soon(read)
        await wait_until(lambda: ocr.statistics().busy == 1, timeout=5)
        process.send_signal(signal.SIGTERM)
    assert texts == ["SLEEP:1 done"]
    assert await trio.to_thread.run_sync(partial(process.wait, timeout=10)) == 0
    log = (redis_server.directory / "worker.log").read_text()
    assert "received SIGTERM" in log
    assert redis_server.url not in log or "@" not in redis_server.url
    await wait_until(lambda: ocr.statistics().capacity == 0, timeout=3)


async def test_past_the_grace_a_stopping_worker_hands_its_page_back_without_using_a_try(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    settings = _settings(redis_server, ocr_workers=1, ocr_attempts=1)
    ocr, _ = await _start(nursery, settings, workers=False)
    process = _spawn_worker(redis_server, "--stop-grace", "0.3", OCRSTREAM_OCR_ATTEMPTS="1")
    await wait_until(lambda: ocr.statistics().capacity == 1, timeout=15, what="worker up")
    texts: list[str] = []

    async def read() -> None:
        page = await ocr.recognize(scripted_png("SLEEP:1.5 again"), job_id="j", file_index=0)
        texts.append(page.text)

    async with trio.open_nursery() as pages:
        pages.start_soon(read)
        await wait_until(lambda: ocr.statistics().busy == 1, timeout=5)
        process.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(partial(process.wait, timeout=10)) == 0
        handed_back_at = trio.current_time()
        await nursery.start(partial(run_redis_workers, settings))
    # Taken again at once (not after OCR_LEASE), and OCR_ATTEMPTS=1 still allowed it.
    assert texts == ["SLEEP:1.5 again"]
    assert trio.current_time() - handed_back_at < 1.5 + 2


async def test_a_unit_taken_ahead_goes_back_to_the_queue_when_the_one_before_it_is_long(
    redis_server: RedisServer, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind short units a worker takes units ahead of its slots; one left waiting behind
    # a long unit goes back (its try not counted) and another worker reads it at once.
    # "Short" is made 0.5 s here (20 ms in service): on a loaded machine one fake page's
    # process call can pass 20 ms, and the worker would rightly stop taking ahead.
    monkeypatch.setattr(exchange, "_AHEAD_WAIT", 0.5)
    # And the slot starts the long unit a while after it was taken, as on a loaded
    # machine: the round trip that hands "short" back must not take it again (it did).
    next_unit = exchange.Exchange.next_unit

    async def late_start(self: exchange.Exchange) -> exchange.Held | None:
        held = await next_unit(self)
        if held is not None and held.unit.uid == "long":
            await trio.sleep(0.25)
            held.started = trio.current_time()
        return held

    monkeypatch.setattr(exchange.Exchange, "next_unit", late_start)
    settings = _settings(redis_server, ocr_workers=1, ocr_attempts=1)
    first = await nursery.start(partial(run_redis_workers, settings))
    async with open_redis(redis_server.url) as client:
        queue = OCRQueue(client, lease=1.0, attempts=1)
        after = b"0-0"

        async def outcomes(count: int) -> list[str]:
            nonlocal after
            texts: list[str] = []
            with trio.fail_after(10):
                while len(texts) < count:
                    for result in await queue.read_results("me", after, block=0.5):
                        after = result.entry_id
                        page = decode_outcome(result.outcome)
                        assert not isinstance(page, OCRError), page
                        texts.append(page.text)
            return texts

        def unit(uid: str, text: str) -> NewUnit:
            return NewUnit(
                uid=uid, job_id="j", owner="me", file=f"f{uid}", request=PageRequest(),
                data=scripted_png(text),
            )  # fmt: skip

        await queue.enqueue_many([unit(f"w{index}", "quick") for index in range(10)])
        assert await outcomes(10) == ["quick"] * 10
        await queue.enqueue_many([unit("long", "SLEEP:4 long"), unit("short", "short")])
        await wait_until(lambda: first.statistics().handed_back == 1, timeout=5)
        depth = await queue.depth()
        assert (depth.queued, depth.leased) == (1, 1)
        second = await nursery.start(partial(run_redis_workers, settings))
        assert await outcomes(2) == ["short", "SLEEP:4 long"]
        # (counted once the worker has the answer to the round trip that handed it over)
        await wait_until(lambda: first.statistics().done == 11, timeout=2)
        assert second.statistics().done == 1
        assert await _leftovers(client) == []


async def test_workers_ride_out_a_redis_restart_without_spinning(
    redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    ocr, workers = await _start(nursery, _settings(redis_server))
    assert workers is not None
    assert (await ocr.recognize(scripted_png("before"), job_id="j", file_index=0)).text == "before"
    with _coredis_leaks_quiet():
        redis_server.stop()
        await trio.sleep(1.5)
        errors = workers.statistics().store_errors
        assert 0 < errors < 60  # backing off, not spinning
        redis_server.start()  # empty: nothing persists
        with trio.fail_after(10):
            page = await ocr.recognize(scripted_png("after"), job_id="j2", file_index=0)
    assert page.text == "after"


async def test_metrics_and_healthz(redis_server: RedisServer, nursery: trio.Nursery) -> None:
    ocr, workers = await _start(nursery, _settings(redis_server, ocr_workers=1))
    assert workers is not None
    await ocr.recognize(scripted_png("one"), job_id="j", file_index=0)
    port = await nursery.start(serve_worker_http, 0, workers)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text
        assert "ocrstream_queue_units_queued 0.0" in text
        assert "ocrstream_worker_units_done_total 1.0" in text
        assert "ocrstream_worker_leases_taken_over_total 0.0" in text
        assert "ocrstream_worker_units_handed_back_total 0.0" in text
        assert "ocrstream_queue_store_up 1.0" in text
        assert (await client.get("/nope")).status_code == 404
        with _coredis_leaks_quiet():
            redis_server.pause()
            try:
                down = await client.get("/metrics", timeout=5)
                health = await client.get("/healthz")
            finally:
                redis_server.resume()
        assert "ocrstream_queue_store_up 0.0" in down.text
        assert health.status_code == 200
    assert await _leftovers(workers.queue.client) == []


def test_worker_without_redis_url_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OCRSTREAM_REDIS_URL", raising=False)
    assert main(["worker"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "OCRSTREAM_REDIS_URL" in error


def test_worker_help_names_the_metrics_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--help"])
    assert "--metrics-port" in capsys.readouterr().out
