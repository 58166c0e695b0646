"""How fast does the firehose fan out, and what does an idle stream cost the server?

Starts ``ocrstream serve`` in a subprocess on a loopback port (OCR engine ``none``) and
measures, in one run:

1. fan-out latency: 1,000 concurrent SSE subscribers on ``GET /api/events`` (the
   operators' firehose) while one-file jobs are uploaded, one every 300 ms. Each job
   publishes its 6 events in one burst, so the firehose carries 20 events/s on average
   in bursts of 6 (17 jobs = 102 events). Latency of one (subscriber, event) pair is the
   subscriber's receive time (``time.time()``) minus the event's ``timestamp`` field;
   that field is truncated to the millisecond, so figures read up to 1 ms high. Prints
   p50/p99/max over all pairs, the events each subscriber got, the spread between the
   first and the last subscriber to get each event, and the CPU use of both processes;
2. idle cost: 10,000 idle watcher streams (``GET /api/ocr/{job_id}/events``) on a job
   whose upload body is never finished, opened 500 at a time, each confirmed by its
   ``HTTP/1.1 200``; prints the server's VmRSS before and after, in KB per stream.

A baseline on the job-watcher route (1,000 watchers of one job fed at 20 events/s) is
not measured: a job publishes nothing until its whole body has arrived, so no single
job emits a steady stream. The figures are printed beside the targets instead:
p99 < 90 ms at 1,000 subscribers x 20 events/s, and < 25 KB per idle stream.

Usage: ``python benchmarks/bench_fanout.py`` (or ``nox -s bench -- benchmarks/bench_fanout.py``).
Loopback only; every loop is bounded in count and time and the script stops by itself
(about a minute).
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import BOUNDARY, HOST, _free_port, _png, _wait_port

from tests.images import Upload, multipart_body

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ADMIN_TOKEN = "bench-admin-token"
SUBSCRIBERS = 1_000
JOBS = 17
JOB_INTERVAL = 0.3
EVENTS_PER_JOB = 6
IDLE_STREAMS = 10_000
BATCH = 500
TARGET_P99_MS = 90.0
TARGET_KB_PER_STREAM = 25.0
ENV = {
    "OCRSTREAM_ADMIN_TOKEN": ADMIN_TOKEN,
    "OCRSTREAM_OCR_ENGINE": "none",
    "OCRSTREAM_MAX_STREAMS": "20000",
    "OCRSTREAM_KEEPALIVE_INTERVAL": "3600",
    "OCRSTREAM_UPLOAD_TIMEOUT": "3600",
    "OCRSTREAM_UPLOAD_DEADLINE": "3600",
}
TIMESTAMP = b'"timestamp":"'
TIMESTAMP_LEN = len("2026-11-29T23:02:30.123Z")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def _serve(env: dict[str, str]) -> Iterator[tuple[int, int, list[str]]]:
    """``ocrstream serve`` on a free port: (port, pid, warning/error lines of its log).

    The log list is filled in when the server has stopped.
    """
    port = _free_port()
    problems: list[str] = []
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            (sys.executable, "-m", "ocrstream", "serve", "--port", str(port)),
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            _wait_port(port)
            yield port, process.pid, problems
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.seek(0)
            for line in log.read().decode(errors="replace").splitlines():
                if " WARNING " in line or " ERROR " in line:
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
        f"POST /api/ocr HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def _get_request(path: str, *, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{auth}\r\n".encode()


async def _connect(port: int, request: bytes) -> tuple[trio.socket.SocketType, bytes, bytes]:
    """Connect, send ``request``, read the response head: (socket, head, body so far)."""
    sock = trio.socket.socket()
    try:
        await sock.connect((HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await sock.send(request)
        buffer = b""
        with trio.fail_after(30):
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


async def _upload(port: int, request: bytes, durations: list[float]) -> None:
    """One whole upload, read to the end of its chunked stream."""
    start = time.perf_counter()
    sock, _, body = await _connect(port, request)
    with sock, trio.fail_after(30):
        while not body.endswith(b"\r\n0\r\n\r\n"):
            data = await sock.recv(1 << 16)
            if not data:
                break
            body += data
    durations.append(time.perf_counter() - start)


# 1. Fan-out latency ------------------------------------------------------------------


@dataclass(slots=True)
class _Subscriber:
    """What one firehose reader saw: (receive time, ring id, timestamp) per event."""

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


async def _wait_until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    with trio.move_on_after(seconds) as scope:
        while not predicate():
            await trio.sleep(0.01)
    if scope.cancelled_caught:
        raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")


@dataclass(slots=True)
class FanoutResult:
    latencies: list[float]
    per_subscriber: list[int]
    reads: list[int]
    spreads: list[float]
    window: float
    server_cpu: float
    client_cpu: float
    upload_durations: list[float]
    events_sent: int


async def _fanout(port: int, pid: int) -> FanoutResult:
    body = multipart_body([Upload(_png(), "small.png", "image/png")], BOUNDARY)
    request = _upload_request(body)
    subscribers = [_Subscriber() for _ in range(SUBSCRIBERS)]
    durations: list[float] = []
    async with trio.open_nursery() as nursery:
        for first in range(0, SUBSCRIBERS, BATCH):
            batch = subscribers[first : first + BATCH]
            for subscriber in batch:
                nursery.start_soon(_follow, port, subscriber)
            await _wait_until(partial(_all_connected, batch), 60, "subscribers to connect")
        # Warm-up burst: every code path once, every subscriber proven to receive.
        await _upload(port, request, [])
        await _wait_until(
            lambda: all(len(s.arrivals) >= EVENTS_PER_JOB for s in subscribers),
            30,
            "the warm-up burst to reach every subscriber",
        )
        await trio.sleep(0.5)
        for subscriber in subscribers:
            subscriber.arrivals.clear()

        expected = JOBS * EVENTS_PER_JOB
        cpu_server, cpu_client = _cpu_seconds(pid), time.process_time()
        start = trio.current_time()
        wall = time.perf_counter()
        async with trio.open_nursery() as uploads:
            for job in range(JOBS):
                await trio.sleep_until(start + job * JOB_INTERVAL)
                uploads.start_soon(_upload, port, request, durations)
        with trio.move_on_after(30):
            while not all(len(s.arrivals) >= expected for s in subscribers):
                await trio.sleep(0.01)
        window = time.perf_counter() - wall
        server_cpu = _cpu_seconds(pid) - cpu_server
        client_cpu = time.process_time() - cpu_client
        nursery.cancel_scope.cancel()

    stamps: dict[bytes, float] = {}
    latencies: list[float] = []
    first_seen: dict[bytes, float] = {}
    last_seen: dict[bytes, float] = {}
    for subscriber in subscribers:
        for now, ring_id, stamp in subscriber.arrivals:
            sent = stamps.get(stamp)
            if sent is None:
                sent = stamps[stamp] = datetime.fromisoformat(stamp.decode()).timestamp()
            latencies.append(now - sent)
            first_seen[ring_id] = min(first_seen.get(ring_id, now), now)
            last_seen[ring_id] = max(last_seen.get(ring_id, now), now)
    return FanoutResult(
        latencies=latencies,
        per_subscriber=[len({a[1] for a in s.arrivals}) for s in subscribers],
        reads=[len({a[0] for a in s.arrivals}) for s in subscribers],
        spreads=[last_seen[key] - first_seen[key] for key in first_seen],
        window=window,
        server_cpu=server_cpu / window,
        client_cpu=client_cpu / window,
        upload_durations=durations,
        events_sent=expected,
    )


# 2. Idle cost ------------------------------------------------------------------------


@dataclass(slots=True)
class IdleResult:
    opened: int
    rss_before: int
    rss_after: int
    server_gauge: int
    stopped_by: str
    open_seconds: float
    rss_steps: list[tuple[int, int]]


async def _hold_upload(port: int) -> tuple[trio.socket.SocketType, str]:
    """Start an upload and never finish its body: a job that stays running."""
    part = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="files"; filename="held.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    head = (
        f"POST /api/ocr HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {1_000_000}\r\n\r\n"
    ).encode()
    sock, response_head, _ = await _connect(port, head + part + _png()[:20])
    for line in response_head.split(b"\r\n"):
        if line.lower().startswith(b"location:"):
            return sock, line.split(b"/api/ocr/", 1)[1].strip().decode()
    sock.close()
    raise RuntimeError("the upload's response has no Location")


async def _idle(port: int, pid: int) -> IdleResult:
    held, job_id = await _hold_upload(port)
    request = _get_request(f"/api/ocr/{job_id}/events")
    streams: list[trio.socket.SocketType] = []
    failures: list[str] = []

    async def open_one() -> None:
        try:
            sock, _, _ = await _connect(port, request)
        except (OSError, ConnectionError, trio.TooSlowError) as error:
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
        while len(streams) < IDLE_STREAMS and not failures:
            with trio.move_on_after(60):
                async with trio.open_nursery() as nursery:
                    for _ in range(min(BATCH, IDLE_STREAMS - len(streams))):
                        nursery.start_soon(open_one)
            steps.append((len(streams), _rss_kb(pid)))
            if len(steps) > IDLE_STREAMS // BATCH + 2:
                failures.append("batches did not complete in time")
        open_seconds = time.perf_counter() - started
        await trio.sleep(1)
        rss_after = _rss_kb(pid)
        gauge = await trio.to_thread.run_sync(_open_streams, port)
    finally:
        for sock in streams:
            sock.close()
        held.close()
    stopped_by = failures[0] if failures else ""
    if failures and len(failures) > 1:
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


def _raise_fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def main() -> None:
    soft, _ = _raise_fd_limit()
    print(
        f"ocrstream fan-out benchmark ({os.cpu_count()} CPUs, RLIMIT_NOFILE {soft} "
        "for this process and the server)\n"
    )
    with _serve(ENV) as (port, pid, fanout_log):
        fanout = trio.run(_fanout, port, pid)
    with _serve(ENV) as (port, pid, idle_log):
        idle = trio.run(_idle, port, pid)

    ms = [value * 1000 for value in fanout.latencies]
    p99 = _pct(ms, 99)
    counts = fanout.per_subscriber
    full = sum(1 for count in counts if count == fanout.events_sent)
    print(
        f"1. firehose fan-out: {SUBSCRIBERS} subscribers on GET /api/events, {JOBS} one-file "
        f"jobs one every {JOB_INTERVAL * 1000:.0f} ms"
    )
    print(
        f"   = {fanout.events_sent} events in bursts of {EVENTS_PER_JOB} "
        f"({EVENTS_PER_JOB / JOB_INTERVAL:.0f} events/s on average)"
    )
    print(
        f"   latency over {len(ms)} (subscriber, event) pairs: p50 {_pct(ms, 50):7.1f} ms  "
        f"p90 {_pct(ms, 90):7.1f} ms  p99 {p99:7.1f} ms  max {max(ms):7.1f} ms"
    )
    print(
        f"   events per subscriber: min {min(counts)}  median {statistics.median(counts):.0f}  "
        f"max {max(counts)} of {fanout.events_sent}; {full}/{SUBSCRIBERS} got all"
    )
    print(
        f"   socket reads carrying events, per subscriber: median "
        f"{statistics.median(fanout.reads):.0f} for {fanout.events_sent} events "
        f"({fanout.events_sent / statistics.median(fanout.reads):.1f} events per read)"
    )
    spreads = [value * 1000 for value in fanout.spreads]
    print(
        "   first-to-last subscriber spread per event: "
        f"median {statistics.median(spreads):.1f} ms  max {max(spreads):.1f} ms"
    )
    uploads = [value * 1000 for value in fanout.upload_durations]
    print(
        f"   upload (whole job, HTTP) median {statistics.median(uploads):.1f} ms  "
        f"max {max(uploads):.1f} ms"
    )
    print(
        f"   CPU over the {fanout.window:.1f} s window: server {fanout.server_cpu * 100:.0f}%  "
        f"client {fanout.client_cpu * 100:.0f}% (of one core)"
    )
    verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
    print(f"   target p99 < {TARGET_P99_MS:.0f} ms: {verdict} ({p99:.1f} ms)\n")

    print("2. idle cost: watcher streams on one running job (body never finished)")
    kb = (idle.rss_after - idle.rss_before) / idle.opened if idle.opened else float("nan")
    print(
        f"   streams open {idle.opened} of {IDLE_STREAMS} (server gauge {idle.server_gauge}), "
        f"opened in {idle.open_seconds:.1f} s, {BATCH} at a time"
    )
    if idle.stopped_by:
        print(f"   stopped by: {idle.stopped_by}")
    print(
        f"   server VmRSS before {idle.rss_before / 1024:.1f} MiB  "
        f"after {idle.rss_after / 1024:.1f} MiB"
    )
    half = len(idle.rss_steps) // 2
    if half:
        (n1, r1), (n2, r2) = idle.rss_steps[half - 1], idle.rss_steps[-1]
        if n2 > n1:
            print(f"   second half alone: {(r2 - r1) / (n2 - n1):.1f} KB/stream")
    verdict = "meets" if kb < TARGET_KB_PER_STREAM else "MISSES"
    print(f"   per stream {kb:.1f} KB; target < {TARGET_KB_PER_STREAM:.0f} KB: {verdict}")
    for name, log in (("fan-out", fanout_log), ("idle", idle_log)):
        if log:
            print(f"\n   server log ({name}): {len(log)} warning/error lines, first: {log[0]}")


if __name__ == "__main__":
    main()
