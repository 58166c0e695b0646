"""The upload path at steady state: fresh, and after 10,000 and 100,000 jobs.

Two servers run side by side for the whole run, each in its own subprocess on a
loopback port, driven by the same client code, their turns rotated round by round:

- ``ocrstream serve`` (the measured uploads skip OCR, ``?ocr=false``: validation decodes
  every image; the fake engine is there for the idle phase's held upload);
- the baseline, ``benchmarks/naive_sse_server.py``'s ``POST /api/ocr``: stock
  Quart-Trio on stock ``hypercorn.trio`` that reads the whole multipart body with
  ``await request.files`` and yields the same events, one frame per chunk, decoding
  nothing.

Each server is measured fresh, then after a preload to 10,000 jobs, then to 100,000
(the jobs of the measurements count towards the preload). Preload jobs are real uploads
over HTTP (a 1x1 PNG, ``?ocr=false``) from 16 clients per server on keep-alive
connections, both servers at once, so the registry holds real finished jobs (10,000 at
most: its cap). In each phase, ROUNDS
rounds, the two servers' order alternating, each round measuring:

1. throughput: CLIENTS clients, each on a new connection per job, post a 2 KB PNG
   and read the stream to its end, JOBS_PER_ROUND jobs in all: jobs/s (wall clock) and
   the server's CPU (user + system, all threads, from /proc) per job;
2. time to first event: TTFE_RUNS uploads of a 100 KB PNG one after another, from the
   first byte sent to the first ``event:`` line received: p50 and p99 over all rounds.

Fresh, also what a request costs either stack without the upload's work: rounds of
JOBS_PER_ROUND trivial JSON GETs (ocrstream ``/healthz``, the baseline ``/gc``) from
CLIENTS clients, a new connection each: server CPU ms per request, and the ratio.

The longest pause of each server's cyclic garbage collector is read after each phase
(ocrstream: ``/metrics``; baseline: ``/gc``; both time collections with
``gc.callbacks``): the largest histogram bucket with a pause in the phase, and the
longest seen so far, preloads included, by the wall clock (what every stream waited)
and in the collecting thread's CPU time (the collector's own work: on a machine shared
with other work, the wall clock also counts time the OS ran something else). Those
are the pauses that start in the middle of work; ocrstream's scheduled quiet-time full
collections are reported apart. Fresh and at the 10,000-job point, each server in
turn:

3. fan-out: 1,000 firehose readers (``GET /api/events``) while 17 one-file jobs are
   uploaded 300 ms apart (bench_fanout.py's phase 1, its client, its baseline
   broadcast): latency p50/p99 from publish to receipt;

and at the 10,000-job point:

4. the collector under a big heap: 5,000 idle watcher streams held open (ocrstream: on
   a held upload's job; baseline: its broadcast) while IDLE_JOBS (3,000) jobs run as
   in 1: the longest pause in that window (a round of 400 jobs may see no full
   collection at all).

Usage: ``python benchmarks/bench_upload.py [--rounds 5] [--preload 10000,100000]``
(or ``nox -s bench -- benchmarks/bench_upload.py``): about 10 minutes on 2 cores, 7 of
them the preload to 100,000 jobs (``--preload 10000``: about 3). Loopback only; every
wait is bounded, the servers are stopped (SIGTERM, then SIGKILL) when it ends.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import random
import socket
import statistics
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import ENV as FANOUT_ENV
from bench_fanout import _fanout, _hold_upload, _pct, _raise_fd_limit, _targets
from bench_stream import BOUNDARY, HOST

from ocrstream.service.collector import PAUSE_BUCKETS
from tests.chunked import dechunk
from tests.e2e.served import listening_process
from tests.images import Upload, multipart_body

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CLIENTS = 8
JOBS_PER_ROUND = 400
TTFE_RUNS = 40
ROUNDS = 5
PRELOAD_CLIENTS = 16
IDLE_STREAMS = 5_000
#: Jobs run while the idle streams are open: enough for the old generation to fill up
#: (before this issue, a full collection came every few thousand jobs at this heap).
IDLE_JOBS = 3_000
TIMEOUT = 30.0  # seconds any one socket operation may take
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ENV = {
    **FANOUT_ENV,
    "OCRSTREAM_MAX_STREAMS": "20000",
    "OCRSTREAM_VALIDATION_THREADS": "2",
}
END = b"\r\n0\r\n\r\n"


@dataclass(slots=True)
class Server:
    """One server under test, and what the run measured of it."""

    name: str
    port: int
    pid: int
    naive: bool
    jobs_done: int = 0
    results: dict[str, Phase] = field(default_factory=dict)


@dataclass(slots=True)
class Phase:
    """One server's figures in one phase."""

    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    first_event: list[float] = field(default_factory=list)
    longest_gc: float = 0.0
    longest_gc_cpu: float = 0.0
    scheduled_gc: float = 0.0
    phase_gc_bucket: float | None = None
    fanout_p50: float | None = None
    fanout_p99: float | None = None
    idle_gc_bucket: float | None = None
    idle_gc_exact: float | None = None  # when the window's longest is the longest so far
    idle_gc_cpu: float | None = None  # the same, in CPU time
    idle_streams: int = 0
    idle_figures: tuple[float, float] = (0.0, 0.0)


def _png(size: tuple[int, int], *, noise: bool = False) -> bytes:
    if noise:
        rng = random.Random(size[0])
        image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, "white")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _upload(body: bytes, *, query: str = "", keep_alive: bool = True) -> bytes:
    close = "" if keep_alive else "Connection: close\r\n"
    head = (
        f"POST /api/ocr{query} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n{close}\r\n"
    ).encode()
    return head + body


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class _ClosedIdle(ConnectionError):
    """A keep-alive connection was closed before any byte of the response (both stacks
    close a connection after 1,000 requests: Hypercorn's keep_alive_max_requests)."""


def _read_stream(sock: socket.socket, *, first_event: bool = False) -> float:
    """Read one 200 streamed response to its last chunk: when its first event came
    (``time.perf_counter()``; 0.0 unless ``first_event``).

    Raises:
        ConnectionError: not a 200, or closed before the last chunk.
    """
    tail = b""
    seen = 0.0
    head = True
    while True:
        data = sock.recv(1 << 16)
        if not data:
            if head:
                raise _ClosedIdle("closed before the response")
            raise ConnectionError("closed before the last chunk")
        if head:
            if not data.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"refused: {data[:60]!r}")
            head = False
        if first_event and not seen and b"\nevent: " in tail + data:
            seen = time.perf_counter()
        tail = (tail + data)[-16:]
        if tail.endswith(END):
            return seen


def _share_jobs(jobs: int, clients: int, client: Callable[[Callable[[], bool]], None]) -> None:
    """Run ``client(take)`` in ``clients`` threads, each doing one job per ``take()`` that
    returns True, ``jobs`` in all; raises the first failure (and stops the others)."""
    remaining = [jobs]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or failures:
                return False
            remaining[0] -= 1
            return True

    def run() -> None:
        try:
            client(take)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed") from failures[0]


def _run_clients(port: int, request: bytes, jobs: int, clients: int, *, keep_alive: bool) -> None:
    """``jobs`` uploads of ``request`` from ``clients`` threads; raises the first failure."""

    def client(take: Callable[[], bool]) -> None:
        sock: socket.socket | None = None
        try:
            while take():
                if sock is None:
                    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    sock.sendall(request)
                    _read_stream(sock)
                except (_ClosedIdle, BrokenPipeError, ConnectionResetError):
                    if not keep_alive:
                        raise
                    sock.close()  # the server ended the keep-alive: the job again, anew
                    sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sock.sendall(request)
                    _read_stream(sock)
                if not keep_alive:
                    sock.close()
                    sock = None
        finally:
            if sock is not None:
                sock.close()

    _share_jobs(jobs, clients, client)


def _throughput(server: Server, request: bytes, jobs: int = JOBS_PER_ROUND) -> tuple[float, float]:
    """(jobs/s, server CPU ms per job) for one round of ``jobs``."""
    cpu = _cpu_seconds(server.pid)
    start = time.perf_counter()
    _run_clients(server.port, request, jobs, CLIENTS, keep_alive=False)
    wall = time.perf_counter() - start
    used = _cpu_seconds(server.pid) - cpu
    server.jobs_done += jobs
    return jobs / wall, used * 1000 / jobs


def _first_events(server: Server, request: bytes, runs: int) -> list[float]:
    """Seconds from the first byte sent to the first event received, per upload."""
    times = []
    for _ in range(runs):
        with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start = time.perf_counter()
            sock.sendall(request)
            seen = _read_stream(sock, first_event=True)
        times.append(seen - start)
    server.jobs_done += runs
    return times


def _preload(server: Server, request: bytes, total: int) -> float:
    """Post tiny jobs until the server has run ``total``: the seconds it took."""
    start = time.perf_counter()
    missing = total - server.jobs_done
    if missing > 0:
        _run_clients(server.port, request, missing, PRELOAD_CLIENTS, keep_alive=True)
        server.jobs_done = total
    return time.perf_counter() - start


def _preload_all(servers: list[Server], request: bytes, total: int) -> float:
    """:func:`_preload` on every server at once: the seconds it took."""
    start = time.perf_counter()
    failures: list[BaseException] = []

    def preload(server: Server) -> None:
        try:
            _preload(server, request, total)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=preload, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("a preload failed") from failures[0]
    return time.perf_counter() - start


def _http_get(port: int, path: str) -> bytes:
    """A small GET's whole body (by its Content-Length or its last chunk)."""
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        buffer = b""
        while True:
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError(f"GET {path}: closed early")
            buffer += data
            head, found, body = buffer.partition(b"\r\n\r\n")
            if not found:
                continue
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:") and len(body) >= int(line.split(b":")[1]):
                    return body
            if body.endswith(END):
                return dechunk(body)


@dataclass(frozen=True, slots=True)
class Pauses:
    """A server's collector pauses so far, those started by allocations (in the middle of
    work): the longest, counts per bucket; and the longest of ocrstream's scheduled
    quiet-time collections (none for the baseline)."""

    longest: float
    longest_cpu: float
    buckets: tuple[int, ...]
    scheduled_longest: float = 0.0

    def worst_bucket_since(self, earlier: Pauses) -> float | None:
        """The upper bound of the largest bucket that got a pause since ``earlier``
        (inf: over the last bound; None: no pause at all)."""
        bounds = (*PAUSE_BUCKETS, float("inf"))
        worst = None
        for bound, now, then in zip(bounds, self.buckets, earlier.buckets, strict=True):
            if now > then:
                worst = bound
        return worst


def _labels(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.replace('"', "").split(",") if item)


def _pauses(server: Server) -> Pauses:
    if server.naive:
        document = json.loads(_http_get(server.port, "/gc"))
        return Pauses(document["longest"], document["longest_cpu"], tuple(document["buckets"]))
    cumulative = [0] * (len(PAUSE_BUCKETS) + 1)
    longest = {"allocation": 0.0, "scheduled": 0.0}
    longest_cpu = 0.0
    bounds = [repr(bound) for bound in PAUSE_BUCKETS] + ["+Inf"]
    for line in _http_get(server.port, "/metrics").decode().splitlines():
        name, _, rest = line.partition("{")
        labels_text, _, value = rest.partition("} ")
        if name == "ocrstream_gc_longest_pause_seconds":
            longest[_labels(labels_text)["trigger"]] = float(value)
        elif name == "ocrstream_gc_longest_pause_cpu_seconds":
            if _labels(labels_text)["trigger"] == "allocation":
                longest_cpu = float(value)
        elif name == "ocrstream_gc_pause_seconds_bucket":
            labels = _labels(labels_text)
            if labels["trigger"] == "allocation":
                cumulative[bounds.index(labels["le"])] += int(float(value))
    counts = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
    return Pauses(longest["allocation"], longest_cpu, tuple(counts), longest["scheduled"])


async def _idle_round(
    server: Server, request: bytes
) -> tuple[int, Pauses, Pauses, tuple[float, float]]:
    """Hold IDLE_STREAMS idle watcher streams open while IDLE_JOBS jobs run: (streams
    open, pauses before, pauses after, (jobs/s, CPU ms/job) meanwhile)."""
    streams: list[trio.socket.SocketType] = []
    held: trio.socket.SocketType | None = None
    if server.naive:
        path = "/api/ocr/idle-job/events"
    else:
        held, job_id = await _hold_upload(server.port)
        path = f"/api/ocr/{job_id}/events"
    get = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    failures: list[str] = []

    async def open_one() -> None:
        sock = trio.socket.socket()
        try:
            await sock.connect((HOST, server.port))
            await sock.send(get)
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                data = await sock.recv(4096)
                if not data:
                    raise ConnectionError(f"closed before the head ({buffer[:40]!r})")
                buffer += data
            if not buffer.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"refused: {buffer[:40]!r}")
        except (OSError, ConnectionError) as error:
            sock.close()
            failures.append(f"{type(error).__name__}: {error}")
            return
        streams.append(sock)

    try:
        with trio.move_on_after(120):
            while len(streams) < IDLE_STREAMS and len(failures) < 100:
                async with trio.open_nursery() as nursery:
                    for _ in range(min(500, IDLE_STREAMS - len(streams))):
                        nursery.start_soon(open_one)
        if failures:
            print(f"   {server.name}: {len(failures)} streams failed to open, first: {failures[0]}")
        before = await trio.to_thread.run_sync(_pauses, server)
        figures = await trio.to_thread.run_sync(_throughput, server, request, IDLE_JOBS)
        after = await trio.to_thread.run_sync(_pauses, server)
    finally:
        for sock in streams:
            sock.close()
        if held is not None:
            held.close()
    return len(streams), before, after, figures


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds == float("inf"):
        return f"> {PAUSE_BUCKETS[-1] * 1000:g} ms"
    return f"{seconds * 1000:.1f} ms"


def _bucket(bound: float | None) -> str:
    if bound is None:
        return "no pause"
    if bound == float("inf"):
        return f"> {PAUSE_BUCKETS[-1] * 1000:g} ms"
    return f"<= {bound * 1000:g} ms"


@contextmanager
def _servers() -> Iterator[list[Server]]:
    naive_script = Path(__file__).with_name("naive_sse_server.py")
    commands: tuple[tuple[str, tuple[str, ...], dict[str, str], bool], ...] = (
        ("ocrstream", (sys.executable, "-m", "ocrstream", "serve", "--port", "{port}"), ENV, False),
        ("naive Quart-Trio", (sys.executable, str(naive_script), "{port}"), {}, True),
    )
    with ExitStack() as stack:
        servers = []
        for name, command, env, naive in commands:
            process = stack.enter_context(
                listening_process(command, env={**os.environ, **env}, log=None)
            )
            servers.append(Server(name=name, port=process.port, pid=process.pid, naive=naive))
        yield servers


def _phase(servers: list[Server], label: str, rounds: int, small: bytes, large: bytes) -> None:
    before = {server.name: _pauses(server) for server in servers}
    for server in servers:
        server.results[label] = Phase()
    for turn in range(rounds):
        order = servers if turn % 2 == 0 else list(reversed(servers))
        for server in order:
            phase = server.results[label]
            rate, cpu = _throughput(server, small)
            phase.rates.append(rate)
            phase.cpu_ms.append(cpu)
            phase.first_event.extend(_first_events(server, large, TTFE_RUNS))
    for server in servers:
        now = _pauses(server)
        phase = server.results[label]
        phase.longest_gc = now.longest
        phase.longest_gc_cpu = now.longest_cpu
        phase.scheduled_gc = now.scheduled_longest
        phase.phase_gc_bucket = now.worst_bucket_since(before[server.name])


def _report(servers: list[Server], labels: list[str]) -> None:
    ours, naive = servers
    print()
    header = f"{'phase':>8} {'server':<18} {'jobs/s':>8} {'CPU ms/job':>10} "
    header += f"{'1st event p50':>13} {'p99':>8} {'GC in phase':>12} {'GC longest so far':>22}"
    print(header)
    for label in labels:
        for server in servers:
            phase = server.results[label]
            p50 = statistics.median(phase.first_event)
            p99 = _pct(phase.first_event, 99)
            print(
                f"{label:>8} {server.name:<18} {statistics.median(phase.rates):8.0f} "
                f"{statistics.median(phase.cpu_ms):10.2f} {p50 * 1000:10.2f} ms "
                f"{p99 * 1000:5.2f} ms {_bucket(phase.phase_gc_bucket):>12} "
                f"{_ms(phase.longest_gc):>9} (CPU {_ms(phase.longest_gc_cpu)})"
            )
    scheduled = [ours.results[label].scheduled_gc for label in labels]
    print(
        "   GC: pauses started by allocations, in the middle of work; ocrstream's scheduled "
        f"quiet-time full collections apart: longest so far {', '.join(map(_ms, scheduled))}"
    )
    print("\nratios, ocrstream / naive (jobs/s: higher is better; the others: lower is better)")
    for label in labels:
        print(f"{label:>8}  {_ratios(ours.results[label], naive.results[label])}")
    print("\nocrstream against its own fresh figures (goal: within 10%)")
    for label in labels[1:]:
        print(f"{label:>8}  {_ratios(ours.results[label], ours.results[labels[0]])}")


def _ratios(a: Phase, b: Phase) -> str:
    def ratio(x: list[float], y: list[float]) -> float:
        return statistics.median(x) / statistics.median(y)

    p99 = _pct(a.first_event, 99) / _pct(b.first_event, 99)
    return (
        f"jobs/s {ratio(a.rates, b.rates):.2f}  CPU/job {ratio(a.cpu_ms, b.cpu_ms):.2f}  "
        f"first event p50 {ratio(a.first_event, b.first_event):.2f}  p99 {p99:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--preload", default="10000,100000", help="job totals, comma-separated")
    arguments = parser.parse_args()
    preloads = [int(total) for total in arguments.preload.split(",") if total]
    began = time.perf_counter()
    soft, _ = _raise_fd_limit()
    small_png = _png((24, 24), noise=True)
    large_png = _png((184, 184), noise=True)
    # OCR off (?ocr=false), as the baseline has none: the server's fake engine is there
    # for the idle phase's held upload only.
    small = _upload(
        multipart_body([Upload(small_png, "small.png", "image/png")], BOUNDARY), query="?ocr=false"
    )
    large = _upload(
        multipart_body([Upload(large_png, "large.png", "image/png")], BOUNDARY), query="?ocr=false"
    )
    tiny = _upload(
        multipart_body([Upload(_png((1, 1)), "tiny.png", "image/png")], BOUNDARY),
        query="?ocr=false",
    )
    print(
        f"upload path benchmark ({os.cpu_count()} CPUs, RLIMIT_NOFILE {soft}): ocrstream and a "
        f"naive Quart-Trio upload endpoint side by side\n   {arguments.rounds} rounds per phase, "
        f"order rotated; a round = {JOBS_PER_ROUND} jobs of a {len(small_png)} B PNG from "
        f"{CLIENTS} clients (new connection each), then {TTFE_RUNS} uploads of a "
        f"{len(large_png) // 1024} KB PNG one at a time"
    )
    labels = ["fresh", *(f"{total // 1000}k" for total in preloads)]
    with _servers() as servers:
        for server in servers:  # warm-up: every path once
            _run_clients(server.port, small, 50, CLIENTS, keep_alive=False)
            _first_events(server, large, 5)
            server.jobs_done = 55 + 5
        _phase(servers, "fresh", arguments.rounds, small, large)
        bare = _bare_requests(servers, arguments.rounds)
        for server in servers:
            _fan_out(server, "fresh")
        for total, label in zip(preloads, labels[1:], strict=True):
            # Both at once, each from its own clients: a server uses one core for
            # Python, and this machine has two, so the preload takes half as long.
            seconds = _preload_all(servers, tiny, total)
            print(f"   preloaded both servers to {total} jobs in {seconds:.0f} s", flush=True)
            _phase(servers, label, arguments.rounds, small, large)
            if total == 10_000:
                for server in servers:
                    _fan_out(server, label)
                    _idle_streams(server, label, small)
    _report(servers, labels)
    _report_bare(servers, bare)
    print("\nfan-out: 1,000 firehose readers, 17 one-file jobs 300 ms apart")
    for server in servers:
        figures = [
            f"{label} p50 {_ms(server.results[label].fanout_p50)} "
            f"p99 {_ms(server.results[label].fanout_p99)}"
            for label in labels
            if server.results[label].fanout_p99 is not None
        ]
        print(f"   {server.name:<18} " + ";  ".join(figures))
    if any(total == 10_000 for total in preloads):
        print(
            f"\nat 10k jobs: the collector with {IDLE_STREAMS} idle streams open while "
            f"{IDLE_JOBS} jobs run"
        )
        for server in servers:
            phase = server.results["10k"]
            exact = "" if phase.idle_gc_exact is None else f" ({_ms(phase.idle_gc_exact)})"
            if phase.idle_gc_cpu is not None:
                exact += f", the longest so far in CPU time {_ms(phase.idle_gc_cpu)}"
            rate, cpu = phase.idle_figures
            print(
                f"   {server.name:<18} {phase.idle_streams} streams open: {rate:.0f} jobs/s, "
                f"{cpu:.2f} ms CPU/job, longest GC pause {_bucket(phase.idle_gc_bucket)}{exact}"
            )
    print(f"\n(ran {time.perf_counter() - began:.0f} s)")


#: A trivial JSON GET on each server: what a request costs either stack without the
#: upload's work (ocrstream's health check; the baseline's collector figures).
BARE_PATHS = {False: "/healthz", True: "/gc"}


def _bare_requests(servers: list[Server], rounds: int) -> dict[str, list[float]]:
    """Server CPU ms per trivial GET, JOBS_PER_ROUND per round from CLIENTS clients, each
    on a new connection (as the upload rounds), the servers' order alternating."""
    cpu_ms: dict[str, list[float]] = {server.name: [] for server in servers}
    for turn in range(rounds):
        for server in servers if turn % 2 == 0 else servers[::-1]:
            before = _cpu_seconds(server.pid)
            _get_many(server.port, BARE_PATHS[server.naive], JOBS_PER_ROUND, CLIENTS)
            used = _cpu_seconds(server.pid) - before
            cpu_ms[server.name].append(used * 1000 / JOBS_PER_ROUND)
    return cpu_ms


def _get_many(port: int, path: str, count: int, clients: int) -> None:
    """``count`` GETs of ``path`` from ``clients`` threads, a new connection each."""

    def client(take: Callable[[], bool]) -> None:
        while take():
            _http_get(port, path)

    _share_jobs(count, clients, client)


def _report_bare(servers: list[Server], cpu_ms: dict[str, list[float]]) -> None:
    ours, naive = (cpu_ms[server.name] for server in servers)
    ratio = statistics.median(a / b for a, b in zip(ours, naive, strict=True))
    figures = ", ".join(
        f"{server.name} {BARE_PATHS[server.naive]} {statistics.median(cpu_ms[server.name]):.3f}"
        for server in servers
    )
    print(
        f"\nbare request (a trivial GET, new connection each, fresh): server CPU ms/request "
        f"{figures}; ratio {ratio:.2f}"
    )


def _fan_out(server: Server, label: str) -> None:
    phase = server.results[label]
    ocrstream_target, _ablation, naive_target = _targets()
    target = naive_target if server.naive else ocrstream_target
    result = trio.run(_fanout, server.port, server.pid, target)
    server.jobs_done += 18
    if len(result.latencies) >= 2:
        phase.fanout_p50 = _pct(result.latencies, 50)
        phase.fanout_p99 = _pct(result.latencies, 99)


def _idle_streams(server: Server, label: str, small: bytes) -> None:
    phase = server.results[label]
    opened, before, after, phase.idle_figures = trio.run(_idle_round, server, small)
    phase.idle_streams = opened
    phase.idle_gc_bucket = after.worst_bucket_since(before)
    if after.longest > before.longest:
        phase.idle_gc_exact = after.longest
    if after.longest_cpu > before.longest_cpu:
        phase.idle_gc_cpu = after.longest_cpu


if __name__ == "__main__":
    main()
