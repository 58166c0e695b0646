"""How fast does the firehose fan out, and what does an idle stream cost the server?

Measures three servers in one run, with the same client code, in this order:

- ``ocrstream serve`` (OCR engine ``none``), the service under test: the direct path,
  where the one fan-out task writes each reader's chunks straight to its socket;
- the ablation, ``benchmarks/stock_worker_server.py``: the same app, settings and
  sockets on Hypercorn's own trio worker (``worker_serve``, what stock
  ``hypercorn.trio.serve`` runs) instead of ocrstream's copy of it. The hand-off, the one
  fan-out task and its coalescing stay; with no connection stream known there are no
  direct writes, so for every reader with frames waiting the fan-out task wakes that
  reader's own task (the ASGI call serving its request), which sends everything waiting,
  as one chunk, through ASGI ``send`` (Hypercorn's h11, send lock and ``send_all``),
  then hands the reader back. That is what would remain if the direct path were removed;
- the baseline, ``benchmarks/naive_sse_server.py``: a plain Quart-Trio broadcast on
  stock ``hypercorn.trio.serve``, the way most SSE examples are written (each
  subscriber's body is an async generator waiting on a shared ``trio.Event``, yielding
  everything it has not had yet as one chunk per wake-up). Its frames have the same
  shape and about the same size as ocrstream's.

Each server is started in a subprocess on a loopback port, once per phase:

1. fan-out latency: 1,000 concurrent SSE subscribers on ``GET /api/events`` (ocrstream's
   operators' firehose; the baseline's broadcast) while 17 bursts of 6 events are
   published, one every 300 ms: for ocrstream one one-file job is uploaded per burst
   (a job publishes its 6 events in one burst), for the baseline ``POST /publish?n=6``
   publishes 6 events one after another. That is 102 events, 20 events/s on average in
   bursts of 6. A warm-up burst first proves every subscriber receives. Latency of one
   (subscriber, event) pair is the subscriber's receive time (``time.time()``) minus
   the event's ``timestamp`` field, which each server stamps when it publishes the
   event; it is truncated to the millisecond, so figures read up to 1 ms high, and the
   time a trigger request waits inside a busy server before it publishes is not in it
   (the trigger requests' own durations are printed beside it). Prints p50/p90/p99/max
   over all pairs that arrived, the events each subscriber got, the socket reads that
   carried them, the spread between the first and the last subscriber to get each
   event, and the CPU use of the server and of this client;
2. idle cost: 10,000 idle SSE streams opened 500 at a time, each confirmed by its
   ``HTTP/1.1 200``, nothing published meanwhile: ocrstream's job watchers
   (``GET /api/ocr/{job_id}/events``) on a job whose upload body is never finished, the
   baseline's same broadcast on its watcher route; prints the server's VmRSS before and
   after, in KB per stream.

Then the ratios, baseline / ocrstream (the house rule: medians, and ratios against a
baseline measured in the same run): latency p50 and p99, and KB per idle stream; and the
ablation's, ablation / ocrstream, with the decision rule's outcome: the direct path can
go if the ablation delivers every pair ocrstream did with a p99 within
``ABLATION_P99_RATIO`` (1.3x) of ocrstream's, and its idle streams stay under
``TARGET_KB_PER_STREAM`` (25 KB). The baseline may saturate: every wait is bounded (30 s
for the warm-up burst and for the window's events to arrive, 60 s to open the idle
streams) and what it delivered by then is reported (events per subscriber, pairs
measured), never a crash. ocrstream's figures (and the ablation's) are also set beside
its targets: p99 < 90 ms at 1,000 subscribers x 20 events/s, and
< 25 KB per idle stream.

The client's cyclic garbage collector is off during each measurement window
(``CLIENT_GC_OFF``; ``gc.freeze()`` then ``gc.disable()``, both undone right after):
with it on, the client's own collections over ~100k arrival records paused the whole
measuring process for tens of ms, which read as delivery latency (p99 106 ms with it on
against 34 ms off, same server). The report says so in its first lines.

Usage: ``python benchmarks/bench_fanout.py`` (or ``nox -s bench -- benchmarks/bench_fanout.py``).
Loopback only; every loop is bounded in count and time, so the script stops by itself
even against a server that answers nothing (about a minute and a half when all three
servers deliver: each is started twice, phase 1 takes ~15 s and phase 2 ~15 s per server).
"""

from __future__ import annotations

import gc
import os
import re
import resource
import socket
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import BOUNDARY, HOST, _png

from tests.e2e.served import listening_process
from tests.images import Upload, multipart_body, scripted_png

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

ADMIN_TOKEN = "bench-admin-token"
SUBSCRIBERS = 1_000
JOBS = 17
JOB_INTERVAL = 0.3
EVENTS_PER_JOB = 6
IDLE_STREAMS = 10_000
BATCH = 500
WAIT = 30.0  # bound on the warm-up burst and on the window's events reaching everyone
OPEN_BUDGET = 60.0  # bound on opening all the idle streams
TARGET_P99_MS = 90.0
TARGET_KB_PER_STREAM = 25.0
# The ablation's decision rule: the direct path can go if the ablation's p99 is at most
# this many times ocrstream's (same run) and its idle streams stay under TARGET_KB_PER_STREAM.
ABLATION_P99_RATIO = 1.3
# The client's cyclic GC, off (and everything frozen) during each measurement window:
# its collections over ~100k arrival records paused the whole measuring process for tens
# of ms and read as delivery latency (p99 106 ms with it on against 34 ms off).
CLIENT_GC_OFF = True
ENV = {
    "OCRSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
    # One fake-engine worker, for the held job (see _hold_upload); the measured uploads
    # skip OCR (?ocr=false), so they publish the same six events as with OCR off.
    "OCRSTREAM_OCR_ENGINE": "fake",
    "OCRSTREAM_OCR_WORKERS": "1",
    "OCRSTREAM_MAX_STREAMS": "20000",
    "OCRSTREAM_KEEPALIVE_INTERVAL": "3600",
    "OCRSTREAM_UPLOAD_TIMEOUT": "3600",
    "OCRSTREAM_UPLOAD_DEADLINE": "3600",
}
TIMESTAMP = b'"timestamp":"'
TIMESTAMP_LEN = len("2026-11-29T23:02:30.123Z")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|^Traceback")


@dataclass(frozen=True, slots=True)
class Target:
    """One server under test and how the client drives it."""

    name: str
    command: tuple[str, ...]  # "{port}" stands for the port
    env: dict[str, str]
    trigger: bytes  # the request that makes the server publish one burst of events
    trigger_name: str
    hold_job: bool  # idle streams watch a held upload's job (else any job id will do)
    metrics: bool  # serves /metrics with an open-streams gauge
    targets: bool  # its figures are set beside the targets


@contextmanager
def _serve(command: Sequence[str], env: dict[str, str]) -> Iterator[tuple[int, int, list[str]]]:
    """``command`` ("{port}" replaced) on a free port: (port, pid, problem lines of its log).

    The log list is filled in when the server has stopped.
    """
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "server.log"
        try:
            with listening_process(command, env={**os.environ, **env}, log=log) as server:
                yield server.port, server.pid, problems
        finally:
            for line in log.read_text(errors="replace").splitlines():
                if PROBLEM.search(line):
                    problems.append(line)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _get_blocking(port: int, path: str) -> bytes:
    """A small GET (e.g. /metrics), whole response; closes the connection."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while data := sock.recv(1 << 16):
            chunks.append(data)
    return b"".join(chunks)


def _open_streams(port: int) -> int:
    for line in _get_blocking(port, "/metrics").splitlines():
        if line.startswith(b"ocrstream_open_streams "):
            return int(float(line.split()[1]))
    return -1


def _upload_request(body: bytes) -> bytes:
    head = (
        f"POST /api/ocr?ocr=false HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def _get_request(path: str, *, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{auth}\r\n".encode()


def _targets() -> tuple[Target, Target, Target]:
    body = multipart_body([Upload(_png(), "small.png", "image/png")], BOUNDARY)
    ocrstream = Target(
        name="ocrstream (direct path)",
        command=(sys.executable, "-m", "ocrstream", "serve", "--port", "{port}"),
        env=ENV,
        trigger=_upload_request(body),
        trigger_name="upload (whole one-file job)",
        hold_job=True,
        metrics=True,
        targets=True,
    )
    ablation = replace(
        ocrstream,
        name="ablation (ocrstream on Hypercorn's own worker_serve: ASGI sends)",
        command=(sys.executable, str(Path(__file__).with_name("stock_worker_server.py")), "{port}"),
    )
    baseline = Target(
        name="baseline (stock Quart-Trio broadcast)",
        command=(sys.executable, str(Path(__file__).with_name("naive_sse_server.py")), "{port}"),
        env={},
        trigger=(
            f"POST /publish?n={EVENTS_PER_JOB} HTTP/1.1\r\nHost: {HOST}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode(),
        trigger_name=f"POST /publish?n={EVENTS_PER_JOB}",
        hold_job=False,
        metrics=False,
        targets=False,
    )
    return ocrstream, ablation, baseline


async def _connect(port: int, request: bytes) -> tuple[trio.socket.SocketType, bytes, bytes]:
    """Connect, send ``request``, read the response head: (socket, head, body so far)."""
    sock = trio.socket.socket()
    try:
        await sock.connect((HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await sock.send(request)
        buffer = b""
        with trio.fail_after(WAIT):
            while b"\r\n\r\n" not in buffer:
                data = await sock.recv(1 << 16)
                if not data:
                    raise ConnectionError(f"closed before the response head: {buffer[:80]!r}")
                buffer += data
    except BaseException:
        sock.close()
        raise
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sock.close()
        raise ConnectionError(f"refused: {head.splitlines()[0]!r}")
    return sock, head, rest


def _complete(head: bytes, body: bytes) -> bool:
    """Whether ``body`` is the whole body: its Content-Length, else the last chunk."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return body.endswith(b"\r\n0\r\n\r\n")


async def _trigger(port: int, request: bytes, durations: list[float], failures: list[str]) -> None:
    """One whole request (an upload or a publish), read to the end of its response."""
    start = time.perf_counter()
    try:
        sock, head, body = await _connect(port, request)
        with sock, trio.fail_after(WAIT):
            while not _complete(head, body):
                data = await sock.recv(1 << 16)
                if not data:
                    break
                body += data
    except (OSError, trio.TooSlowError) as error:
        failures.append(f"{type(error).__name__}: {error}")
    else:
        durations.append(time.perf_counter() - start)


@contextmanager
def _client_gc_off() -> Iterator[None]:
    """The client's cyclic GC off for the block (see ``CLIENT_GC_OFF``)."""
    if not CLIENT_GC_OFF:
        yield
        return
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _stamp(moment: float) -> bytes:
    """``moment`` as the servers stamp events; such stamps sort as bytes."""
    when = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z").encode()


# 1. Fan-out latency ------------------------------------------------------------------


@dataclass(slots=True)
class _Subscriber:
    """What one firehose reader saw: (receive time, frame id, timestamp) per event."""

    connected: bool = False
    arrivals: list[tuple[float, bytes, bytes]] = field(default_factory=list)


async def _follow(port: int, subscriber: _Subscriber) -> None:
    """Read the firehose until cancelled; parse as little as possible."""
    sock, _, buffer = await _connect(port, _get_request("/api/events", token=ADMIN_TOKEN))
    subscriber.connected = True
    arrivals = subscriber.arrivals
    with sock:
        while True:
            data = await sock.recv(1 << 16)
            now = time.time()
            if not data:
                return
            buffer += data
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                at = frame.find(TIMESTAMP)
                if at < 0:
                    continue  # a chunk trailer or a comment
                at += len(TIMESTAMP)
                ident = frame.find(b"id: ")
                ring_id = frame[ident + 4 : frame.find(b"\n", ident)] if ident >= 0 else b""
                arrivals.append((now, ring_id, frame[at : at + TIMESTAMP_LEN]))


def _all_connected(batch: list[_Subscriber]) -> bool:
    return all(subscriber.connected for subscriber in batch)


def _all_received(subscribers: list[_Subscriber], count: int, since: bytes = b"") -> bool:
    """Whether every subscriber has ``count`` events stamped at ``since`` or later."""
    return all(len(s.arrivals) >= count for s in subscribers) and all(
        sum(1 for arrival in s.arrivals if arrival[2] >= since) >= count for s in subscribers
    )


async def _wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` for up to ``seconds``: whether it came true."""
    with trio.move_on_after(seconds):
        while not predicate():
            await trio.sleep(0.01)
        return True
    return False


@dataclass(slots=True)
class FanoutResult:
    warmed: int
    latencies: list[float]
    per_subscriber: list[int]
    reads: list[int]
    spreads: list[float]
    window: float
    server_cpu: float
    client_cpu: float
    trigger_durations: list[float]
    trigger_failures: list[str]
    events_sent: int


async def _fanout(port: int, pid: int, target: Target) -> FanoutResult:
    subscribers = [_Subscriber() for _ in range(SUBSCRIBERS)]
    durations: list[float] = []
    failures: list[str] = []
    async with trio.open_nursery() as nursery:
        for first in range(0, SUBSCRIBERS, BATCH):
            batch = subscribers[first : first + BATCH]
            for subscriber in batch:
                nursery.start_soon(_follow, port, subscriber)
            if not await _wait_until(partial(_all_connected, batch), 60):
                raise RuntimeError(f"{target.name}: subscribers did not connect within 60 s")
        # Warm-up burst: every code path once, every subscriber proven to receive.
        await _trigger(port, target.trigger, [], failures)
        await _wait_until(partial(_all_received, subscribers, EVENTS_PER_JOB), WAIT)
        warmed = sum(1 for s in subscribers if len(s.arrivals) >= EVENTS_PER_JOB)
        await trio.sleep(0.5)
        for subscriber in subscribers:
            subscriber.arrivals.clear()
        # A warm-up event that arrives late is stamped before this and left out.
        since = _stamp(time.time() - 0.25)

        expected = JOBS * EVENTS_PER_JOB
        with _client_gc_off():
            cpu_server, cpu_client = _cpu_seconds(pid), time.process_time()
            start = trio.current_time()
            wall = time.perf_counter()
            async with trio.open_nursery() as triggers:
                for job in range(JOBS):
                    await trio.sleep_until(start + job * JOB_INTERVAL)
                    triggers.start_soon(_trigger, port, target.trigger, durations, failures)
            await _wait_until(partial(_all_received, subscribers, expected, since), WAIT)
            window = time.perf_counter() - wall
            server_cpu = _cpu_seconds(pid) - cpu_server
            client_cpu = time.process_time() - cpu_client
            nursery.cancel_scope.cancel()

    stamps: dict[bytes, float] = {}
    latencies: list[float] = []
    first_seen: dict[bytes, float] = {}
    last_seen: dict[bytes, float] = {}
    per_subscriber: list[int] = []
    reads: list[int] = []
    for subscriber in subscribers:
        ids: set[bytes] = set()
        times: set[float] = set()
        for now, ring_id, stamp in subscriber.arrivals:
            if stamp < since:
                continue
            sent = stamps.get(stamp)
            if sent is None:
                sent = stamps[stamp] = datetime.fromisoformat(stamp.decode()).timestamp()
            latencies.append(now - sent)
            first_seen[ring_id] = min(first_seen.get(ring_id, now), now)
            last_seen[ring_id] = max(last_seen.get(ring_id, now), now)
            ids.add(ring_id)
            times.add(now)
        per_subscriber.append(len(ids))
        reads.append(len(times))
    return FanoutResult(
        warmed=warmed,
        latencies=latencies,
        per_subscriber=per_subscriber,
        reads=reads,
        spreads=[last_seen[key] - first_seen[key] for key in first_seen],
        window=window,
        server_cpu=server_cpu / window,
        client_cpu=client_cpu / window,
        trigger_durations=durations,
        trigger_failures=failures,
        events_sent=expected,
    )


# 2. Idle cost ------------------------------------------------------------------------


@dataclass(slots=True)
class IdleResult:
    opened: int
    rss_before: int
    rss_after: int
    server_gauge: int | None
    stopped_by: str
    open_seconds: float
    rss_steps: list[tuple[int, int]]


async def _hold_upload(port: int) -> tuple[trio.socket.SocketType, str]:
    """A job that stays running: its one file's OCR sleeps for an hour in the fake engine
    (the upload's head, with its Location, comes once the body is in)."""
    body = multipart_body([Upload(scripted_png("SLEEP:3600"), "held.png", "image/png")], BOUNDARY)
    head = (
        f"POST /api/ocr HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock, response_head, _ = await _connect(port, head + body)
    for line in response_head.split(b"\r\n"):
        if line.lower().startswith(b"location:"):
            return sock, line.split(b"/api/ocr/", 1)[1].strip().decode()
    sock.close()
    raise RuntimeError("the upload's response has no Location")


@asynccontextmanager
async def _job_to_watch(port: int, target: Target) -> AsyncIterator[str]:
    """A job id whose watcher stream stays idle: a held upload's, or any for the baseline."""
    if not target.hold_job:
        yield "idle-job"
        return
    held, job_id = await _hold_upload(port)
    with held:
        yield job_id


async def _idle(port: int, pid: int, target: Target) -> IdleResult:
    streams: list[trio.socket.SocketType] = []
    failures: list[str] = []
    async with _job_to_watch(port, target) as job_id:
        request = _get_request(f"/api/ocr/{job_id}/events")

        async def open_one() -> None:
            try:
                sock, _, _ = await _connect(port, request)
            except (OSError, trio.TooSlowError) as error:
                failures.append(f"{type(error).__name__}: {error}")
            else:
                streams.append(sock)

        try:
            # Warm-up: the watcher path once, then closed again.
            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(open_one)
            for sock in streams:
                sock.close()
            streams.clear()
            await trio.sleep(1)
            rss_before = _rss_kb(pid)
            steps: list[tuple[int, int]] = []
            started = time.perf_counter()
            deadline = trio.current_time() + OPEN_BUDGET
            while len(streams) < IDLE_STREAMS and not failures:
                with trio.move_on_at(deadline) as scope:
                    async with trio.open_nursery() as nursery:
                        for _ in range(min(BATCH, IDLE_STREAMS - len(streams))):
                            nursery.start_soon(open_one)
                steps.append((len(streams), _rss_kb(pid)))
                if scope.cancelled_caught:
                    failures.append(f"not all open within {OPEN_BUDGET:.0f} s")
            open_seconds = time.perf_counter() - started
            await trio.sleep(1)
            rss_after = _rss_kb(pid)
            gauge = await trio.to_thread.run_sync(_open_streams, port) if target.metrics else None
        finally:
            for sock in streams:
                sock.close()
    stopped_by = failures[0] if failures else ""
    if len(failures) > 1:
        stopped_by += f" (and {len(failures) - 1} more failures)"
    return IdleResult(
        opened=len(streams),
        rss_before=rss_before,
        rss_after=rss_after,
        server_gauge=gauge,
        stopped_by=stopped_by,
        open_seconds=open_seconds,
        rss_steps=steps,
    )


# Report ------------------------------------------------------------------------------


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _median_max(values: list[float]) -> str:
    if not values:
        return "none"
    return f"median {statistics.median(values) * 1000:.1f} ms  max {max(values) * 1000:.1f} ms"


@dataclass(slots=True)
class Summary:
    """What the ratios need of one server: latency p50/p99 (ms) and KB per idle stream."""

    p50: float | None
    p99: float | None
    kb: float | None
    pairs: int


def _report_fanout(target: Target, fanout: FanoutResult) -> tuple[float | None, float | None]:
    ms = [value * 1000 for value in fanout.latencies]
    counts = fanout.per_subscriber
    full = sum(1 for count in counts if count == fanout.events_sent)
    print(
        f"   1. fan-out, {SUBSCRIBERS} subscribers on GET /api/events, "
        f"{JOBS} x {target.trigger_name}"
    )
    if fanout.warmed < SUBSCRIBERS:
        print(
            f"      warm-up burst reached only {fanout.warmed}/{SUBSCRIBERS} subscribers "
            f"within {WAIT:.0f} s (its late events are left out of the window)"
        )
    p50 = p99 = None
    if len(ms) < 2:
        print(f"      no events delivered within {WAIT:.0f} s of the last trigger")
    else:
        p50, p99 = _pct(ms, 50), _pct(ms, 99)
        print(
            f"      latency over {len(ms)} of {SUBSCRIBERS * fanout.events_sent} "
            f"(subscriber, event) pairs: p50 {p50:7.1f} ms  p90 {_pct(ms, 90):7.1f} ms  "
            f"p99 {p99:7.1f} ms  max {max(ms):7.1f} ms"
        )
    print(
        f"      events per subscriber: min {min(counts)}  median {statistics.median(counts):.0f}  "
        f"max {max(counts)} of {fanout.events_sent}; {full}/{SUBSCRIBERS} got all"
    )
    median_reads = statistics.median(fanout.reads)
    if median_reads:
        print(
            f"      socket reads carrying events, per subscriber: median {median_reads:.0f} "
            f"({statistics.median(counts) / median_reads:.1f} events per read)"
        )
    print(f"      first-to-last subscriber spread per event: {_median_max(fanout.spreads)}")
    answered = len(fanout.trigger_durations)
    print(
        f"      trigger requests answered {answered}/{JOBS}: "
        f"{_median_max(fanout.trigger_durations)}"
    )
    if fanout.trigger_failures:
        print(f"      trigger failures: {len(fanout.trigger_failures)}, first: ")
        print(f"        {fanout.trigger_failures[0]}")
    print(
        f"      CPU over the {fanout.window:.1f} s window: server "
        f"{fanout.server_cpu * 100:.0f}%  client {fanout.client_cpu * 100:.0f}% (of one core)"
    )
    if target.targets:
        verdict = "meets" if p99 is not None and p99 < TARGET_P99_MS else "MISSES"
        shown = f"{p99:.1f} ms" if p99 is not None else "nothing delivered"
        print(f"      target p99 < {TARGET_P99_MS:.0f} ms: {verdict} ({shown})")
    return p50, p99


def _report_idle(target: Target, idle: IdleResult) -> float | None:
    gauge = "" if idle.server_gauge is None else f" (server gauge {idle.server_gauge})"
    print(f"   2. idle cost, watcher streams (GET /api/ocr/{{job_id}}/events){gauge}")
    print(
        f"      streams open {idle.opened} of {IDLE_STREAMS}, "
        f"opened in {idle.open_seconds:.1f} s, {BATCH} at a time"
    )
    if idle.stopped_by:
        print(f"      stopped by: {idle.stopped_by}")
    print(
        f"      server VmRSS before {idle.rss_before / 1024:.1f} MiB  "
        f"after {idle.rss_after / 1024:.1f} MiB"
    )
    half = len(idle.rss_steps) // 2
    if half:
        (n1, r1), (n2, r2) = idle.rss_steps[half - 1], idle.rss_steps[-1]
        if n2 > n1:
            print(f"      second half alone: {(r2 - r1) / (n2 - n1):.1f} KB/stream")
    if not idle.opened:
        print("      per stream: no stream opened")
        return None
    kb = (idle.rss_after - idle.rss_before) / idle.opened
    line = f"      per stream {kb:.1f} KB"
    if target.targets:
        verdict = "meets" if kb < TARGET_KB_PER_STREAM else "MISSES"
        line += f"; target < {TARGET_KB_PER_STREAM:.0f} KB: {verdict}"
    print(line)
    return kb


def _ratio(baseline: float | None, ours: float | None) -> str:
    if baseline is None or ours is None or ours <= 0:
        return "n/a"
    return f"{baseline / ours:.1f}x"


def _report_ratios(title: str, name: str, other: Summary, ours: Summary) -> None:
    """``other`` / ocrstream: latency p50 and p99, KB per idle stream."""
    print(title)
    print(f"   latency p50 {_ratio(other.p50, ours.p50)}  p99 {_ratio(other.p99, ours.p99)}")
    if other.pairs < ours.pairs:
        print(
            f"   (the {name} delivered {other.pairs} pairs to ocrstream's {ours.pairs}; "
            "its percentiles cover only what arrived)"
        )
    print(f"   KB per idle stream {_ratio(other.kb, ours.kb)}")


def _report_decision(ours: Summary, ablation: Summary) -> None:
    """What the ablation's decision rule makes of the ablation against the direct path."""
    p99, ablation_p99, kb = ours.p99, ablation.p99, ablation.kb
    if p99 is None or ablation_p99 is None or kb is None:
        print("   decision: n/a (a figure is missing)")
        return
    close = ablation_p99 <= ABLATION_P99_RATIO * p99 and ablation.pairs >= ours.pairs
    small = kb < TARGET_KB_PER_STREAM
    print(
        f"   decision (every pair, p99 within {ABLATION_P99_RATIO}x: {'yes' if close else 'no'}; "
        f"idle under {TARGET_KB_PER_STREAM:.0f} KB: {'yes' if small else 'no'}): "
        + ("the direct path can be removed" if close and small else "keep the direct path")
    )


def _raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main() -> None:
    began = time.perf_counter()
    soft, _ = _raise_fd_limit()
    print(
        "ocrstream fan-out benchmark, with an ablation (the same app on Hypercorn's own worker,\n"
        f"no direct writes) and against a stock Quart-Trio broadcast ({os.cpu_count()} CPUs, "
        f"RLIMIT_NOFILE {soft} for this process and the servers)"
    )
    print(
        f"   {JOBS} bursts of {EVENTS_PER_JOB} events one every {JOB_INTERVAL * 1000:.0f} ms = "
        f"{JOBS * EVENTS_PER_JOB} events ({EVENTS_PER_JOB / JOB_INTERVAL:.0f} events/s on "
        "average)\n   latency = receive time - the event's timestamp, stamped when the server "
        "publishes it (a trigger's\n   wait inside a busy server before it publishes is not in it)"
    )
    if CLIENT_GC_OFF:
        print(
            "   client GC: off during each measurement window (CLIENT_GC_OFF: gc.freeze, "
            "gc.disable): with it on,\n   the client's own collections over ~100k arrival "
            "records paused it for tens of ms and read as latency\n"
        )
    else:
        print("   client GC: ON during the windows; its pauses count as latency\n")

    summaries: list[Summary] = []
    for target in _targets():
        with _serve(target.command, target.env) as (port, pid, fanout_log):
            fanout = trio.run(_fanout, port, pid, target)
        with _serve(target.command, target.env) as (port, pid, idle_log):
            idle = trio.run(_idle, port, pid, target)
        print(f"{target.name}")
        p50, p99 = _report_fanout(target, fanout)
        kb = _report_idle(target, idle)
        for name, log in (("fan-out", fanout_log), ("idle", idle_log)):
            if log:
                print(f"      server log ({name}): {len(log)} warning/error lines, first:")
                print(f"        {log[0]}")
        print()
        summaries.append(Summary(p50, p99, kb, len(fanout.latencies)))

    ours, ablation, baseline = summaries
    _report_ratios(
        "ratios, baseline / ocrstream (how many times lower ocrstream is):",
        "baseline",
        baseline,
        ours,
    )
    _report_ratios(
        "ratios, ablation / ocrstream (how many times higher without the direct path):",
        "ablation",
        ablation,
        ours,
    )
    _report_decision(ours, ablation)
    print(f"\n(ran {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
