"""What do several instances sharing one Redis cost? OCR, queue, cross-instance watchers.

Starts its own redis-server (``tests/redis_server.py``), ``ocrstream serve`` instances and
``ocrstream worker`` processes on loopback, and stops every one of them by its PID (also on
Ctrl-C). Four measurements, each against a baseline measured in the same run:

1. OCR images/s, real engine (rapidocr by default): ``--images`` invoice images
   (``tests/invoices.py``) uploaded as one job, from the first request byte to
   ``processing_complete``. Local: one ``ocrstream serve`` with OCR_WORKERS=2 and no
   Redis. Redis: one ``ocrstream serve`` with REDIS_URL and OCR_WORKERS=0 beside one
   ``ocrstream worker`` with OCR_WORKERS=2 (the same total). Both are up at once and
   warmed by one discarded job; their reps alternate (local, Redis, local, ...) so
   outside load hits both alike. Medians of ``--reps``; goal: ratio Redis/local >= 0.9.
2. Queue overhead with the fake engine at zero cost (a tiny PNG whose text chunk is the
   result): a :class:`~ocrstream.service.redis.ocr.RedisOCR` in this process submits, an
   ``ocrstream worker`` process with 2 and then 8 slots recognises (its engine processes
   never replaced, as the embedded baseline's: see ``bench_queue.py``). Units/s for
   ``--units`` pages of one job and of 20 jobs submitted at once, each ``--rounds``
   times, medians (goal >= 1,000/s: the "dispatch" figure); the latency of one page at a
   time (``--samples``), p50/p99, beside the embedded ``OCRService`` (2 processes, no
   Redis) on the same pages: the difference is what the queue adds. Where the time goes:
   Redis commands per unit (``INFO commandstats`` around the throughput runs), the CPU of
   this process, the worker and redis-server during the 20-job runs.
3. Cross-instance watch latency: instances A and B (fake engine, REDIS_URL, ADMIN_TOKEN);
   one-file jobs uploaded on A (``?ocr=false``: 6 events each); one process reads the
   firehose (``GET /api/events``) of both. Each event's envelope timestamp has ms
   precision only, so the figure is, per event, the first receipt on B minus the first
   receipt on A (same clock), p50/p99: what the hop through Redis adds to a watcher of
   another instance. Idle (one reader on each) and loaded (4. running: 500 readers on
   each). Goal p99 < 10 ms idle, < 50 ms loaded.
4. Fan-out split: ``bench_fanout.py``'s ocrstream leg (17 bursts of 6 events, 300 ms
   apart, latency = receipt - envelope timestamp over every (reader, event) pair) with
   its 1,000 readers split 500 on A and 500 on B, every job uploaded on A (B's readers
   get only other-instance events: the hard case); the baseline, same run: 1,000
   readers on one ``ocrstream serve`` without Redis. Goal: no worse than one instance.
   Also, to tell the Redis path's cost from the split's: the same 1,000 readers on one
   instance with REDIS_URL (every firehose event through Redis, no second instance); and per
   server, the chunks its fan-out wrote per reader per job (``/metrics``: a job's six
   events in one write, or spread over several, each of which the client reads apart).

The client's cyclic GC is off during each fan-out window (as in ``bench_fanout.py``).

Usage: ``python benchmarks/bench_cluster.py [--engine rapidocr] [--images 12] [--reps 3]
[--units 400] [--rounds 3] [--samples 300] [--readers 1000] [--parts ocr,queue,watch]``
(``--parts queue``: the dispatch figures alone, about a minute). Loopback only; every
wait is bounded; about 4-5 minutes on 2 CPUs. No asserts on timing: figures and goals are
printed.
"""

from __future__ import annotations

import os

# Before numpy/onnxruntime/rapidocr load anywhere in this process (or its children).
os.environ.update({"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})

import argparse
import socket
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_fanout import ENV as FANOUT_ENV
from bench_fanout import (
    EVENTS_PER_JOB,
    WAIT,
    _all_connected,
    _all_received,
    _client_gc_off,
    _cpu_seconds,
    _follow,
    _get_blocking,
    _raise_fd_limit,
    _stamp,
    _Subscriber,
    _trigger,
    _upload_request,
    _wait_until,
)
from bench_ocr import _body, _job
from bench_queue import NO_REPLACEMENT, _latencies, _quantile, _throughput
from bench_stream import BOUNDARY, HOST, _png, _request

from ocrstream.core.config import load_settings
from ocrstream.service.ocr import open_ocr_service
from ocrstream.service.redis.ocr import RedisOCR, run_redis_ocr
from tests.e2e.served import listening_process
from tests.images import Upload, multipart_body
from tests.invoices import invoice_set
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["main"]

BURSTS = 17
BURST_INTERVAL = 0.3
IDLE_JOBS = 60
IDLE_INTERVAL = 0.15
OCR_TIMEOUT_ENV = {"OCRSTREAM_OCR_TIMEOUT": "300", "OCRSTREAM_UPLOAD_TIMEOUT": "300"}


def _env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without its OCRSTREAM_* variables, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCRSTREAM_")}
    env.update(settings)
    return env


@contextmanager
def _serve(settings: dict[str, str], scratch: Path, name: str) -> Iterator[tuple[int, int]]:
    """``ocrstream serve`` on a free loopback port: (port, pid); stopped by its PID."""
    command = [sys.executable, "-m", "ocrstream", "serve", "--host", HOST, "--port", "{port}"]
    with listening_process(command, env=_env(settings), log=scratch / f"{name}.log") as server:
        yield server.port, server.pid


@contextmanager
def _worker(settings: dict[str, str], scratch: Path, name: str) -> Iterator[int]:
    """``ocrstream worker`` (its metrics port proves its slots run): its pid."""
    command = [sys.executable, "-m", "ocrstream", "worker", "--metrics-port", "{port}"]
    with listening_process(command, env=_env(settings), log=scratch / f"{name}.log") as worker:
        yield worker.pid


def _problems(scratch: Path) -> list[str]:
    """Warning/error lines of every server log in ``scratch``."""
    found = []
    for log in sorted(scratch.glob("*.log")):
        if log.name == "redis.log":
            continue
        for line in log.read_text(errors="replace").splitlines():
            if any(word in line for word in ("WARNING", "ERROR", "CRITICAL", "Traceback")):
                found.append(f"{log.stem}: {line}")
    return found


# 1. OCR images/s --------------------------------------------------------------------


@dataclass(slots=True)
class OCRResult:
    local: list[float]
    redis: list[float]


def _ocr(url: str, scratch: Path, engine: str, images: int, reps: int) -> OCRResult:
    invoices = invoice_set(images)
    body = _body([(invoice.data, invoice.format) for invoice in invoices])
    common = {"OCRSTREAM_OCR_ENGINE": engine, **OCR_TIMEOUT_ENV}
    local_env = {**common, "OCRSTREAM_OCR_WORKERS": "2"}
    front_env = {**common, "OCRSTREAM_REDIS_URL": url, "OCRSTREAM_OCR_WORKERS": "0"}
    worker_env = {**common, "OCRSTREAM_REDIS_URL": url, "OCRSTREAM_OCR_WORKERS": "2"}
    result = OCRResult([], [])
    with (
        _serve(local_env, scratch, "ocr-local") as (local, _),
        _serve(front_env, scratch, "ocr-front") as (front, _),
        _worker(worker_env, scratch, "ocr-worker"),
    ):
        requests = {local: _request(local, body), front: _request(front, body)}
        for port in (local, front):
            _job(port, requests[port])  # warm-up: every worker has recognised images
        for _ in range(reps):
            for port, rates in ((local, result.local), (front, result.redis)):
                start, end, _ = _job(port, requests[port])
                rates.append(images / (end - start))
    return result


# 2. Queue overhead ------------------------------------------------------------------


def _commandstats(port: int) -> dict[str, tuple[int, int]]:
    """``INFO commandstats``: command -> (calls, total usec)."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while True:
            data += sock.recv(1 << 16)
            head, _, rest = data.partition(b"\r\n")
            if head.startswith(b"$") and len(rest) >= int(head[1:]):
                break
    stats = {}
    for line in rest.decode().splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, _, values = line[len("cmdstat_") :].partition(":")
        fields = dict(item.split("=", 1) for item in values.split(","))
        stats[name] = (int(fields["calls"]), int(fields["usec"]))
    return stats


@dataclass(slots=True)
class QueueResult:
    slots: int
    one_job: list[float]
    many_jobs: list[float]
    latencies: list[float]
    commands: dict[str, tuple[float, float]]  # command -> (calls per unit, usec per unit)
    cpu: dict[str, float]  # process -> share of one core during the 20-job runs


async def _queue_leg(
    url: str,
    redis: RedisServer,
    redis_pid: int,
    worker_pid: int,
    slots: int,
    units: int,
    rounds: int,
    samples: int,
) -> QueueResult:
    settings = load_settings({}, redis_url=url, ocr_engine="fake", ocr_workers=0)
    one_job: list[float] = []
    many_jobs: list[float] = []
    wall = 0.0
    spent = [0.0, 0.0, 0.0]
    pids = (os.getpid(), worker_pid, redis_pid)
    async with trio.open_nursery() as nursery:
        ocr: RedisOCR = await nursery.start(partial(run_redis_ocr, settings, instance_id="bench"))
        await _throughput(ocr, 20 * slots, 1)  # warm every slot's process
        before = _commandstats(redis.port)
        for _ in range(rounds):
            one_job.append(await _throughput(ocr, units, 1))
            cpu = [_cpu_seconds(pid) for pid in pids]
            began = time.perf_counter()
            many_jobs.append(await _throughput(ocr, units, 20))
            wall += time.perf_counter() - began
            spent = [s + _cpu_seconds(pid) - c for s, pid, c in zip(spent, pids, cpu, strict=True)]
        stats = _commandstats(redis.port)

        async def queued(data: bytes, index: int) -> None:
            await ocr.recognize(data, job_id=f"lat{slots}", file_index=index)

        latencies = await _latencies(queued, samples)
        nursery.cancel_scope.cancel()
    commands = {}
    done = 2 * units * rounds
    for name, (calls, usec) in stats.items():
        calls -= before.get(name, (0, 0))[0]
        usec -= before.get(name, (0, 0))[1]
        if calls > 0 and name not in ("info",):
            commands[name] = (calls / done, usec / done)
    shares = dict(
        zip(
            ("this process (submitter)", "ocrstream worker", "redis-server"),
            (seconds / wall for seconds in spent),
            strict=True,
        )
    )
    return QueueResult(slots, one_job, many_jobs, latencies, commands, shares)


async def _embedded(samples: int) -> list[float]:
    async with open_ocr_service(
        engine="fake", workers=2, ocr_timeout=60, max_tasks_per_worker=0, max_worker_rss=0
    ) as service:

        async def embedded(data: bytes, index: int) -> None:
            del index
            async with service.slot("lat"):
                await service.recognize(data)

        await _latencies(embedded, 20)  # warm
        return await _latencies(embedded, samples)


def _queue(
    redis: RedisServer, redis_pid: int, scratch: Path, units: int, rounds: int, samples: int
) -> tuple[list[QueueResult], list[float]]:
    results = []
    for slots in (2, 8):
        env = {
            "OCRSTREAM_REDIS_URL": redis.url,
            "OCRSTREAM_OCR_ENGINE": "fake",
            "OCRSTREAM_OCR_WORKERS": str(slots),
            "OCRSTREAM_OCR_MAX_TASKS_PER_WORKER": str(NO_REPLACEMENT),
        }
        with _worker(env, scratch, f"queue-worker-{slots}") as pid:
            leg = partial(
                _queue_leg, redis.url, redis, redis_pid, pid, slots, units, rounds, samples
            )
            results.append(trio.run(leg))
    return results, trio.run(_embedded, samples)


# 3 and 4. Watchers across instances -------------------------------------------------


@dataclass(slots=True)
class WatchResult:
    """Per side (one list of readers per port), what each reader saw."""

    sides: list[list[_Subscriber]]
    since: bytes
    window: float
    cpu: list[float]  # share of one core, per server, during the window
    writes: list[float]  # chunks written per reader per job, per server, during the window


async def _watch(
    ports: list[int], pids: list[int], readers: list[int], jobs: int, interval: float
) -> WatchResult:
    """``readers[i]`` firehose readers on ``ports[i]``; ``jobs`` one-file jobs uploaded on
    ``ports[0]``, one every ``interval`` s, after a warm-up job."""
    sides = [[_Subscriber() for _ in range(count)] for count in readers]
    everyone = [subscriber for side in sides for subscriber in side]
    trigger = _upload_request(multipart_body([Upload(_png(), "small.png", "image/png")], BOUNDARY))
    failures: list[str] = []
    async with trio.open_nursery() as nursery:
        for port, side in zip(ports, sides, strict=True):
            for first in range(0, len(side), 500):
                batch = side[first : first + 500]
                for subscriber in batch:
                    nursery.start_soon(_follow, port, subscriber)
                if not await _wait_until(partial(_all_connected, batch), 60):
                    raise RuntimeError("firehose readers did not connect within 60 s")
        await _trigger(ports[0], trigger, [], failures)
        if not await _wait_until(partial(_all_received, everyone, EVENTS_PER_JOB), WAIT):
            raise RuntimeError("the warm-up job did not reach every reader")
        await trio.sleep(0.5)
        for subscriber in everyone:
            subscriber.arrivals.clear()
        since = _stamp(time.time() - 0.25)
        with _client_gc_off():
            cpu_before = [_cpu_seconds(pid) for pid in pids]
            writes_before = [_chunks_written(port) for port in ports]
            wall = time.perf_counter()
            start = trio.current_time()
            async with trio.open_nursery() as triggers:
                for job in range(jobs):
                    await trio.sleep_until(start + job * interval)
                    triggers.start_soon(_trigger, ports[0], trigger, [], failures)
            expected = jobs * EVENTS_PER_JOB
            await _wait_until(partial(_all_received, everyone, expected, since), WAIT)
            window = time.perf_counter() - wall
            cpu = [
                (_cpu_seconds(pid) - b) / window for pid, b in zip(pids, cpu_before, strict=True)
            ]
            writes = [
                (_chunks_written(port) - before) / max(1, len(side)) / jobs
                for port, side, before in zip(ports, sides, writes_before, strict=True)
            ]
            nursery.cancel_scope.cancel()
    if failures:
        print(f"   ({len(failures)} upload failures, first: {failures[0]})")
    return WatchResult(sides, since, window, cpu, writes)


def _chunks_written(port: int) -> float:
    """The fan-out's chunks written straight to watchers' sockets so far (``/metrics``)."""
    for line in _get_blocking(port, "/metrics").splitlines():
        if line.startswith(b"ocrstream_watcher_chunks_written "):
            return float(line.split()[1])
    return float("nan")


def _latencies_ms(side: list[_Subscriber], since: bytes) -> list[float]:
    """Receipt - envelope timestamp, ms, over every (reader, event) pair."""
    from datetime import datetime

    cache: dict[bytes, float] = {}
    values = []
    for subscriber in side:
        for now, _, stamp in subscriber.arrivals:
            if stamp < since:
                continue
            sent = cache.get(stamp)
            if sent is None:
                sent = cache[stamp] = datetime.fromisoformat(stamp.decode()).timestamp()
            values.append((now - sent) * 1000)
    return values


def _first_receipts(side: list[_Subscriber], since: bytes) -> dict[bytes, float]:
    """Firehose id -> the first receipt of that event on this side."""
    first: dict[bytes, float] = {}
    for subscriber in side:
        for now, ring_id, stamp in subscriber.arrivals:
            if stamp >= since and now < first.get(ring_id, float("inf")):
                first[ring_id] = now
    return first


def _hop_ms(result: WatchResult) -> tuple[list[float], int]:
    """Per event: first receipt on B - first receipt on A (ms); and events missing on B."""
    on_a = _first_receipts(result.sides[0], result.since)
    on_b = _first_receipts(result.sides[1], result.since)
    hops = [(on_b[ident] - at) * 1000 for ident, at in on_a.items() if ident in on_b]
    return hops, len(on_a) - len(hops)


# Report -----------------------------------------------------------------------------


def _pq(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a (too few)"
    return f"p50 {_quantile(values, 0.5):7.2f} ms  p99 {_quantile(values, 0.99):7.2f} ms"


def _cell(value: tuple[float, float]) -> str:
    return f"{value[0]:.2f} / {value[1]:.0f} us"


def _sum(values: Iterable[tuple[float, float]]) -> tuple[float, float]:
    values = list(values)
    return sum(v[0] for v in values), sum(v[1] for v in values)


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def _report_ocr(result: OCRResult, engine: str, images: int, reps: int) -> None:
    local, redis = statistics.median(result.local), statistics.median(result.redis)
    print(
        f"1. OCR throughput, engine {engine}, {images} invoice images as one job, "
        f"images/s, median of {reps}"
    )
    print(
        f"   local pool (serve, OCR_WORKERS=2)              {local:8.2f}   "
        f"reps {' '.join(f'{v:.2f}' for v in result.local)}"
    )
    print(
        f"   Redis queue (serve 0 + worker OCR_WORKERS=2)   {redis:8.2f}   "
        f"reps {' '.join(f'{v:.2f}' for v in result.redis)}"
    )
    ratio = redis / local
    print(f"   ratio Redis/local {ratio:.2f}; goal >= 0.9: {_verdict(ratio >= 0.9)}\n")


def _report_queue(results: list[QueueResult], embedded: list[float], units: int) -> None:
    print(
        "2. queue overhead, fake engine at zero cost, submitter in this process, "
        "ocrstream worker process"
    )
    print(f"   {'':<36}" + "".join(f"{f'{r.slots} slots':>16}" for r in results))
    for name, rates in (
        (f"units/s, 1 job x {units}", [r.one_job for r in results]),
        (f"units/s, 20 jobs x {units // 20}", [r.many_jobs for r in results]),
    ):
        print(f"   {name:<36}" + "".join(f"{statistics.median(v):>16.0f}" for v in rates))
        spread = (" ".join(f"{rate:.0f}" for rate in v) for v in rates)
        print(f"   {'  (rounds)':<36}" + "".join(f"{text:>16}" for text in spread))
    two = results[0]
    best = max(statistics.median(two.one_job), statistics.median(two.many_jobs))
    print(f"   goal >= 1,000 units/s with 2 slots: {_verdict(best >= 1000)} (median {best:.0f})")
    print("   latency, one unit at a time:")
    for r in results:
        print(f"     Redis queue, {r.slots} slots          {_pq(r.latencies)}")
    print(f"     embedded OCRService, 2 procs   {_pq(embedded)}")
    for r in results:
        added50 = _quantile(r.latencies, 0.5) - _quantile(embedded, 0.5)
        added99 = _quantile(r.latencies, 0.99) - _quantile(embedded, 0.99)
        print(
            f"     added by the queue ({r.slots} slots)   "
            f"p50 {added50:7.2f} ms  p99 {added99:7.2f} ms"
        )
    print("   where the time goes: Redis commands per unit (calls, server usec)")
    names = sorted(
        {name for r in results for name in r.commands},
        key=lambda n: -results[-1].commands.get(n, (0, 0))[0],
    )
    for name in names:
        cells = "".join(f"{_cell(r.commands.get(name, (0.0, 0.0))):>22}" for r in results)
        print(f"     {name:<34}{cells}")
    totals = "".join(f"{_cell(_sum(r.commands.values())):>22}" for r in results)
    print(f"     {'all':<34}{totals}")
    print("   CPU during the 20-job runs (share of one core):")
    for who in results[0].cpu:
        print(f"     {who:<34}" + "".join(f"{r.cpu[who] * 100:>21.0f}%" for r in results))
    print()


def _report_watch(
    idle: WatchResult, split: WatchResult, single: WatchResult, on_redis: WatchResult
) -> None:
    hop_idle, missing_idle = _hop_ms(idle)
    hop_loaded, missing_loaded = _hop_ms(split)
    n_a, n_b = len(split.sides[0]), len(split.sides[1])
    print(
        "3. cross-instance watch latency: first receipt on B - first receipt on A, per "
        "event uploaded on A"
    )
    p99_idle = _quantile(hop_idle, 0.99) if len(hop_idle) > 1 else float("inf")
    p99_loaded = _quantile(hop_loaded, 0.99) if len(hop_loaded) > 1 else float("inf")
    print(
        f"   idle (1 reader each), {len(hop_idle)} events      {_pq(hop_idle)}  "
        f"max {max(hop_idle, default=0):.2f} ms; goal p99 < 10 ms: {_verdict(p99_idle < 10)}"
    )
    print(
        f"   loaded ({n_a}+{n_b} readers), {len(hop_loaded)} events  {_pq(hop_loaded)}  "
        f"max {max(hop_loaded, default=0):.2f} ms; goal p99 < 50 ms: "
        f"{_verdict(p99_loaded < 50)}"
    )
    if missing_idle or missing_loaded:
        print(f"   events seen on A but never on B: idle {missing_idle}, loaded {missing_loaded}")
    stamp_b = _latencies_ms(idle.sides[1], idle.since)
    stamp_a = _latencies_ms(idle.sides[0], idle.since)
    print(
        f"   idle, receipt - envelope timestamp (ms precision): on A {_pq(stamp_a)};"
        f" on B {_pq(stamp_b)}\n"
    )

    print(
        f"4. fan-out, {BURSTS} bursts of {EVENTS_PER_JOB} events {BURST_INTERVAL * 1000:.0f} ms "
        "apart, latency = receipt - envelope timestamp, all (reader, event) pairs"
    )
    one = _latencies_ms(single.sides[0], single.since)
    on_a = _latencies_ms(split.sides[0], split.since)
    on_b = _latencies_ms(split.sides[1], split.since)
    both = on_a + on_b
    expected = BURSTS * EVENTS_PER_JOB
    print(
        f"   one instance, {len(single.sides[0])} readers, no Redis  {_pq(one)}  "
        f"({len(one)}/{len(single.sides[0]) * expected} pairs, server CPU "
        f"{single.cpu[0] * 100:.0f}%, {single.writes[0]:.2f} writes per reader per job)"
    )
    print(
        f"   two instances, {n_a} on A + {n_b} on B  {_pq(both)}  "
        f"({len(both)}/{(n_a + n_b) * expected} pairs, CPU A {split.cpu[0] * 100:.0f}% "
        f"B {split.cpu[1] * 100:.0f}%; writes per reader per job A {split.writes[0]:.2f} "
        f"B {split.writes[1]:.2f})"
    )
    print(f"     readers on A (the uploads' instance)  {_pq(on_a)}")
    print(f"     readers on B (every event remote)     {_pq(on_b)}")
    redis_one = _latencies_ms(on_redis.sides[0], on_redis.since)
    print(
        f"   where it goes: one instance on Redis, {len(on_redis.sides[0])} readers  "
        f"{_pq(redis_one)}  (server CPU {on_redis.cpu[0] * 100:.0f}%, "
        f"{on_redis.writes[0]:.2f} writes per reader per job)"
    )
    if len(one) > 1 and len(both) > 1:
        r50 = _quantile(both, 0.5) / _quantile(one, 0.5)
        r99 = _quantile(both, 0.99) / _quantile(one, 0.99)
        print(
            f"   ratio two instances / one: p50 {r50:.2f}x  p99 {r99:.2f}x; goal no worse "
            f"(<= 1.0): {_verdict(r50 <= 1.0 and r99 <= 1.0)}"
        )
    print()


def main() -> None:
    """Start redis-server, instances and workers, measure, print, stop every one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--engine", choices=("rapidocr", "tesseract"), default="rapidocr")
    parser.add_argument("--images", type=int, default=12, help="invoice images in the OCR job")
    parser.add_argument("--reps", type=int, default=3, help="OCR repetitions per side")
    parser.add_argument("--units", type=int, default=400, help="pages per queue throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="queue throughput runs of each kind")
    parser.add_argument("--samples", type=int, default=300, help="pages timed one by one")
    parser.add_argument("--readers", type=int, default=1000, help="fan-out readers in all")
    parser.add_argument(
        "--parts", default="ocr,queue,watch", help="which to run: ocr, queue, watch (3 and 4)"
    )
    arguments = parser.parse_args()
    parts = set(arguments.parts.split(","))
    began = time.perf_counter()
    soft, _ = _raise_fd_limit()
    print(
        f"ocrstream cluster benchmark ({os.cpu_count()} CPUs, RLIMIT_NOFILE {soft}); "
        "medians; ratios against baselines of this run\n"
    )
    with tempfile.TemporaryDirectory() as directory, ExitStack() as stack:
        scratch = Path(directory)
        redis = RedisServer(scratch)
        redis.start()
        stack.callback(redis.stop)
        redis_pid = redis._process.pid if redis._process else 0

        if "ocr" in parts:
            ocr = _ocr(redis.url, scratch, arguments.engine, arguments.images, arguments.reps)
            _report_ocr(ocr, arguments.engine, arguments.images, arguments.reps)
        if "queue" in parts:
            queue, embedded = _queue(
                redis, redis_pid, scratch, arguments.units, arguments.rounds, arguments.samples
            )
            _report_queue(queue, embedded, arguments.units)
        if "watch" in parts:
            _watch_parts(redis, scratch, arguments.readers)
        problems = _problems(scratch)
    if problems:
        print(f"server logs: {len(problems)} warning/error lines, first: {problems[0]}")
    print(f"(ran {time.perf_counter() - began:.0f} s)")


def _watch_parts(redis: RedisServer, scratch: Path, readers: int) -> None:
    """Measurements 3 and 4: watchers across instances, then the fan-out split."""
    half = readers // 2
    cluster_env = {**FANOUT_ENV, "OCRSTREAM_REDIS_URL": redis.url}
    with (
        _serve(cluster_env, scratch, "watch-a") as (port_a, pid_a),
        _serve(cluster_env, scratch, "watch-b") as (port_b, pid_b),
    ):
        ports, pids = [port_a, port_b], [pid_a, pid_b]
        idle = trio.run(_watch, ports, pids, [1, 1], IDLE_JOBS, IDLE_INTERVAL)
    with (
        _serve(cluster_env, scratch, "split-a") as (port_a, pid_a),
        _serve(cluster_env, scratch, "split-b") as (port_b, pid_b),
    ):
        ports, pids = [port_a, port_b], [pid_a, pid_b]
        split = trio.run(_watch, ports, pids, [half, readers - half], BURSTS, BURST_INTERVAL)
    with _serve(dict(FANOUT_ENV), scratch, "single") as (port, pid):
        single = trio.run(_watch, [port], [pid], [readers], BURSTS, BURST_INTERVAL)
    with _serve(cluster_env, scratch, "single-on-redis") as (port, pid):
        on_redis = trio.run(_watch, [port], [pid], [readers], BURSTS, BURST_INTERVAL)
    _report_watch(idle, split, single, on_redis)


if __name__ == "__main__":
    main()
