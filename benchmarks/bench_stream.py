"""How fast does the stream start, and how many events per second does one stream carry?

Starts ``ocrstream serve`` in a subprocess on a loopback port and measures, in one run:

1. time to first event over 200 requests of one small PNG (median, p99), beside the
   same job run in-process through the pipeline without HTTP (the service's overhead);
2. events per second for one request of MAX_FILES (20) tiny images, HTTP vs in-process;
3. delivery rate of one stream carrying many events: a live upload of 3,000 tiny
   images and a watcher replaying that job, beside a baseline Quart-Trio endpoint in
   the same run that yields one frame per chunk (the naive way).

Usage: ``python benchmarks/bench_stream.py`` (or ``nox -s bench``). Loopback only;
every loop is bounded and the script stops by itself.
"""

from __future__ import annotations

import io
import os
import socket
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import trio
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import TYPE_CHECKING

from ocrstream.core.config import load_settings
from ocrstream.service.memory.registry import JobRegistry
from ocrstream.service.pipeline import JobOptions, run_job
from tests.e2e.served import listening_process
from tests.images import Upload, multipart_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

BOUNDARY = "bench-boundary"
HOST = "127.0.0.1"


@contextmanager
def _server(env: dict[str, str], *args: str) -> Iterator[int]:
    """``ocrstream serve`` (or ``args``, "{port}" replaced) on a free port: its port."""
    command = args or (sys.executable, "-m", "ocrstream", "serve", "--port", "{port}")
    with listening_process(command, env={**os.environ, **env}) as server:
        yield server.port


def _png(size: tuple[int, int] = (32, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, format="PNG")
    return out.getvalue()


def _request(port: int, body: bytes, path: str = "/api/ocr") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def _ended(chunks: list[bytes]) -> bool:
    # The last chunk of a chunked body. Reading to the close would also work against
    # ocrstream, but a stock Quart-Trio server never closes after `Connection: close`.
    return b"".join(chunks[-2:]).endswith(b"\r\n0\r\n\r\n")


def _stream(port: int, raw: bytes) -> tuple[float, float, float, int, bytes]:
    """Send ``raw``; return (t_first_event, t_last_byte, t_start, events, data)."""
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    sock.sendall(raw)
    first = 0.0
    chunks: list[bytes] = []
    with sock:
        sock.settimeout(60)
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            if not first and b"\nevent: " in b"".join(chunks[-1:]) + data:
                first = time.perf_counter()
            chunks.append(data)
            if _ended(chunks):
                break
    end = time.perf_counter()
    body = b"".join(chunks)
    return first - start, end - start, start, body.count(b"\nevent: "), body


def _get(port: int, path: str) -> tuple[float, int]:
    sock = socket.create_connection((HOST, port))
    start = time.perf_counter()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    chunks: list[bytes] = []
    with sock:
        sock.settimeout(60)
        while data := sock.recv(1 << 20):
            chunks.append(data)
            if _ended(chunks):
                break
    elapsed = time.perf_counter() - start
    return elapsed, b"".join(chunks).count(b"\nevent: ")


async def _in_process(body: bytes, settings_env: dict[str, str]) -> tuple[float, float, int]:
    """The same job through the pipeline, no HTTP: (t_upload_started, t_total, events)."""
    settings = load_settings(settings_env)
    registry = JobRegistry(result_ttl=60)
    handle = registry.create()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    first = 0.0
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            nonlocal first
            while not handle.record.history:
                await handle.wait_changed()
            first = time.perf_counter() - start

        nursery.start_soon(watch)
        await run_job(
            handle,
            chunks(),
            options=JobOptions(boundary=BOUNDARY.encode(), content_length=len(body)),
            settings=settings,
            limiter=trio.CapacityLimiter(settings.validation_threads),
        )
    return first, time.perf_counter() - start, len(handle.record.history)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    runs_ttfe = 200
    print(f"ocrstream stream benchmark ({os.cpu_count()} CPUs); medians unless noted\n")
    small = multipart_body([Upload(_png(), "small.png", "image/png")], BOUNDARY)
    twenty = multipart_body([Upload(_png((8, 8)), f"{i}.png") for i in range(20)], BOUNDARY)
    many_count = 3000
    many = multipart_body([Upload(_png((1, 1)), f"{i}.png") for i in range(many_count)], BOUNDARY)
    env_many = {
        "OCRSTREAM_MAX_FILES": str(many_count),
        "OCRSTREAM_MAX_PARTS": str(many_count + 1),
        "OCRSTREAM_OCR_ENGINE": "none",
    }
    with _server({"OCRSTREAM_OCR_ENGINE": "none", **env_many}) as port:
        for _ in range(10):  # warm-up
            _stream(port, _request(port, small))
        ttfe, total = [], []
        for _ in range(runs_ttfe):
            first, end, _, _, _ = _stream(port, _request(port, small))
            ttfe.append(first)
            total.append(end)
        twenty_rates = []
        for _ in range(20):
            _, end, _, events, _ = _stream(port, _request(port, twenty))
            twenty_rates.append(events / end)
        live_rates, replay_rates, job_events = [], [], 0
        for _ in range(5):
            _, end, _, events, data = _stream(port, _request(port, many))
            live_rates.append(events / end)
            job_id = data.split(b'"job_id":"', 1)[1].split(b'"', 1)[0].decode()
            elapsed, replayed = _get(port, f"/api/ocr/{job_id}/events")
            replay_rates.append(replayed / elapsed)
            job_events = events

    in_first, in_total = [], []
    for _ in range(runs_ttfe):
        first, whole, _ = trio.run(_in_process, small, {})
        in_first.append(first)
        in_total.append(whole)
    in_twenty = []
    for _ in range(20):
        _, whole, events = trio.run(_in_process, twenty, {})
        in_twenty.append(events / whole)
    in_many = []
    for _ in range(3):
        _, whole, events = trio.run(_in_process, many, env_many)
        in_many.append(events / whole)

    naive_rates = []
    naive_events = 20_000
    script = Path(__file__).with_name("naive_sse_server.py")
    with _server({}, sys.executable, str(script), "{port}", str(naive_events)) as port:
        for _ in range(5):
            elapsed, events = _get(port, "/naive")
            naive_rates.append(events / elapsed)

    print(f"1. time to first event, one small PNG, {runs_ttfe} requests")
    print(f"   HTTP       first event {_ms(statistics.median(ttfe))}  p99 {_ms(_p99(ttfe))}")
    print(f"   HTTP       whole job   {_ms(statistics.median(total))}  p99 {_ms(_p99(total))}")
    print(f"   in-process first event {_ms(statistics.median(in_first))}")
    print(f"   in-process whole job   {_ms(statistics.median(in_total))}")
    print(
        "   overhead ratio (HTTP / in-process, whole job): "
        f"{statistics.median(total) / statistics.median(in_total):.2f}x\n"
    )
    print("2. one request of MAX_FILES=20 tiny images")
    print(f"   HTTP       {statistics.median(twenty_rates):10.0f} events/s")
    print(f"   in-process {statistics.median(in_twenty):10.0f} events/s")
    print(f"   ratio      {statistics.median(twenty_rates) / statistics.median(in_twenty):.2f}\n")
    print(f"3. one stream of many events ({many_count} tiny images, {job_events} events)")
    print(f"   live upload stream      {statistics.median(live_rates):10.0f} events/s")
    print(f"   in-process same job     {statistics.median(in_many):10.0f} events/s")
    print(f"   watcher replay          {statistics.median(replay_rates):10.0f} events/s")
    print(
        f"   naive baseline (1 frame/chunk, {naive_events} frames) "
        f"{statistics.median(naive_rates):10.0f} events/s"
    )
    print(
        "   replay / naive ratio    "
        f"{statistics.median(replay_rates) / statistics.median(naive_rates):.2f}x"
    )


if __name__ == "__main__":
    main()
