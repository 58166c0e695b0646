"""What does the Redis OCR queue cost? Dispatch rate and added latency per page.

With the fake engine (no OCR cost: a tiny PNG whose text chunk is the result), one
private redis-server on loopback, 2 worker slots (``run_redis_workers``, real
trio-parallel processes) and one :class:`~ocrstream.service.redis.ocr.RedisOCR`, all in
this process's Trio run (so the submitting and the working side share one core's worth
of event loop), measured:

1. throughput: ``--units`` pages of one job submitted at once, pages per second from the
   first enqueue to the last outcome; and the same with 20 jobs of ``--units``/20 pages;
   each ``--rounds`` times, median (and the rounds) printed;
2. latency: ``--samples`` pages one after another, each timed from ``recognize`` called
   to the page returned, p50/p99, beside the embedded
   :class:`~ocrstream.service.ocr.OCRService` (the same processes' work, no Redis) on the
   same pages; the difference is what the queue adds (enqueue, a worker's BLPOP wake-up,
   take, complete, XREAD).

The worker processes are never replaced here (OCR_MAX_TASKS_PER_WORKER far above the
pages run), as the embedded baseline's are not: at the default 500 a process would be
respawned every 500 fake pages, a second or so without that slot, which is the pool's
cost, not the queue's.

Usage: ``python benchmarks/bench_queue.py [--units 400] [--samples 300] [--rounds 3]``.
The machine is shared: rerun to see the spread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocrstream.core.config import load_settings
from ocrstream.service.ocr import open_ocr_service
from ocrstream.service.redis.ocr import RedisOCR, run_redis_ocr
from ocrstream.service.redis.worker import run_redis_workers
from tests.images import scripted_png
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["NO_REPLACEMENT", "main"]

#: OCR_MAX_TASKS_PER_WORKER for the fake-engine runs: no worker process is replaced.
NO_REPLACEMENT = 1_000_000


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _throughput(ocr: RedisOCR, units: int, jobs: int) -> float:
    data = scripted_png("x")

    async def page(job: int, index: int) -> None:
        await ocr.recognize(data, job_id=f"t{jobs}-{job}", file_index=index)

    began = trio.current_time()
    async with trio.open_nursery() as nursery:
        for index in range(units):
            nursery.start_soon(page, index % jobs, index // jobs)
    return units / (trio.current_time() - began)


async def _latencies(
    recognize: Callable[[bytes, int], Awaitable[None]], samples: int
) -> list[float]:
    data = scripted_png("x")
    times = []
    for index in range(samples):
        began = trio.current_time()
        await recognize(data, index)
        times.append((trio.current_time() - began) * 1000)
    return times


async def _run(url: str, units: int, samples: int, rounds: int) -> None:
    settings = load_settings(
        {},
        redis_url=url,
        ocr_engine="fake",
        ocr_workers=2,
        ocr_max_tasks_per_worker=NO_REPLACEMENT,
    )
    one_job: list[float] = []
    many_jobs: list[float] = []
    async with trio.open_nursery() as nursery:
        ocr: RedisOCR = await nursery.start(partial(run_redis_ocr, settings, instance_id="bench"))
        await nursery.start(partial(run_redis_workers, settings))
        await _throughput(ocr, 40, 1)  # warm both slots' processes
        for _ in range(rounds):
            one_job.append(await _throughput(ocr, units, 1))
            many_jobs.append(await _throughput(ocr, units, 20))

        async def queued(data: bytes, index: int) -> None:
            await ocr.recognize(data, job_id="lat", file_index=index)

        redis_times = await _latencies(queued, samples)
        nursery.cancel_scope.cancel()

    async with open_ocr_service(
        engine="fake", workers=2, ocr_timeout=60, max_tasks_per_worker=0, max_worker_rss=0
    ) as service:

        async def embedded(data: bytes, index: int) -> None:
            async with service.slot("lat"):
                await service.recognize(data)

        await _latencies(embedded, 20)  # warm
        embedded_times = await _latencies(embedded, samples)

    print(f"{'throughput (2 slots, fake engine)':<44} {'pages/s':>10}   rounds")
    kinds = ((f"1 job x {units} pages", one_job), (f"20 jobs x {units // 20} pages", many_jobs))
    for name, rates in kinds:
        rounds_text = " ".join(f"{rate:.0f}" for rate in rates)
        print(f"{'  ' + name:<44} {statistics.median(rates):>10.0f}   {rounds_text}")
    print()
    print(f"{'latency per page, one at a time (ms)':<44} {'p50':>8} {'p99':>8}")
    for name, times in (("Redis queue", redis_times), ("embedded OCRService", embedded_times)):
        print(f"{'  ' + name:<44} {_quantile(times, 0.5):>8.2f} {_quantile(times, 0.99):>8.2f}")
    added50 = _quantile(redis_times, 0.5) - _quantile(embedded_times, 0.5)
    added99 = _quantile(redis_times, 0.99) - _quantile(embedded_times, 0.99)
    print(f"{'  added by the queue':<44} {added50:>8.2f} {added99:>8.2f}")


def main() -> None:
    """Start a private redis-server, measure, print, stop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--units", type=int, default=400, help="pages per throughput run")
    parser.add_argument("--samples", type=int, default=300, help="pages timed one by one")
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs of each kind")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            trio.run(_run, server.url, arguments.units, arguments.samples, arguments.rounds)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
