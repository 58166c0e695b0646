"""Baselines for the benchmarks: stock Quart-Trio SSE endpoints on stock ``hypercorn.trio``.

Usage: ``python benchmarks/naive_sse_server.py PORT [FRAMES]`` (FRAMES defaults to 1,000).

- ``GET /naive`` (bench_stream.py) streams FRAMES copies of a typical ``image_received``
  frame, each yielded on its own (the way most SSE examples are written), so Hypercorn
  makes one socket send per frame.
- ``GET /api/events`` (bench_fanout.py) is a plain broadcast, written the way most
  Quart-Trio SSE examples are: every subscriber's body is an async generator that waits
  on a shared ``trio.Event`` (replaced after each publish) and then yields, as one chunk,
  every frame it has not had yet, so a subscriber that is behind catches up in one send.
  ``GET /api/ocr/<job_id>/events`` is the same broadcast (bench_fanout.py holds idle
  streams on it). The Authorization header is ignored.
- ``POST /publish?n=6`` (or GET) publishes ``n`` events one after another, each stamped
  at its own publish time, with a checkpoint between them like a job's steps, then
  answers 200 with a short body (Content-Length set by Quart).
- ``POST /api/ocr`` (bench_upload.py) is the same multipart upload as ocrstream's, the
  naive way: ``await request.files`` (Quart/Werkzeug parse and spool the whole body),
  then an async generator yields ocrstream's events for it one frame per chunk:
  ``upload_started``, per file ``image_received``, ``image_validation_start``,
  ``image_validation_success`` (the format from the file's first bytes; it decodes
  nothing), then ``all_images_validated`` and ``processing_complete``.
- ``GET /gc`` answers ``{"longest": s, "longest_cpu": s, "bounds": [s...], "buckets":
  [n...]}``: the cyclic garbage collector's pauses while serving (``gc.callbacks``),
  the longest (wall clock, and in the thread's CPU time) and a count per bucket (the
  last one: longer than every bound), measured the way ocrstream's ``ocrstream_gc_*``
  metrics are.

Frames look like ocrstream's: ``id: N\\nevent: image_received\\ndata: {compact JSON with
type, timestamp (RFC 3339 UTC, ms, Z), job_id, seq, data}\\n\\n``; ``N`` counts from 1
over the server's lifetime. Stock Hypercorn configuration except ``backlog`` (2,048, for
500 simultaneous connects) and a long ``keep_alive_timeout``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio
import trio.lowlevel
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

FRAME = (
    b"id: 1\nevent: image_received\ndata: "
    b'{"type":"image_received","seq":1,"data":{"file_index":1,"file_name":"a.png",'
    b'"size_bytes":70}}\n\n'
)
DEFAULT_FRAMES = 1_000
DEFAULT_PUBLISH = 6


#: Upper bounds (seconds) of the pause counts' buckets: ocrstream's PAUSE_BUCKETS.
PAUSE_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.5,
)


class PauseMonitor:
    """The collector's pauses, timed from its start to its stop callback."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_cpu = 0.0
        self.buckets = [0] * (len(PAUSE_BUCKETS) + 1)
        self._started = 0.0
        self._started_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        slot = sum(1 for bound in PAUSE_BUCKETS if pause > bound)
        self.buckets[slot] += 1
        self.longest = max(self.longest, pause)
        self.longest_cpu = max(self.longest_cpu, time.thread_time() - self._started_cpu)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _frame(job_id: str, seq: int, kind: str, data: dict[str, object]) -> bytes:
    envelope = {"type": kind, "timestamp": _stamp(), "job_id": job_id, "seq": seq, "data": data}
    data_line = json.dumps(envelope, separators=(",", ":"))
    return f"id: {seq}\nevent: {kind}\ndata: {data_line}\n\n".encode()


def _upload_events(job_id: str, files: list[tuple[str, str | None, bytes]]) -> list[bytes]:
    """The events of one upload, each framed on its own (nothing is decoded)."""
    count = len(files)
    total = sum(len(data) for _, _, data in files)
    events: list[tuple[str, dict[str, object]]] = [
        ("upload_started", {"file_count": count, "total_bytes": total})
    ]
    for index, (name, content_type, data) in enumerate(files):
        events.append(
            (
                "image_received",
                {
                    "file_index": index,
                    "file_name": name,
                    "size_bytes": len(data),
                    "content_type": content_type,
                },
            )
        )
        events.append(("image_validation_start", {"file_index": index, "file_name": name}))
        fmt = "PNG" if data.startswith(b"\x89PNG") else "JPEG"
        events.append(
            (
                "image_validation_success",
                {
                    "file_index": index,
                    "file_name": name,
                    "size_bytes": len(data),
                    "format": fmt,
                    "width": 1,
                    "height": 1,
                    "mode": "RGB",
                },
            )
        )
    counts: dict[str, object] = {"file_count": count, "valid_count": count, "invalid_count": 0}
    events.append(("all_images_validated", counts))
    events.append(
        (
            "processing_complete",
            {**counts, "ocr_success_count": 0, "ocr_error_count": 0, "duration_ms": 0.1},
        )
    )
    return [_frame(job_id, seq, kind, data) for seq, (kind, data) in enumerate(events)]


class Broadcast:
    """Every frame published so far, and a doorbell rung (and replaced) on each publish."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.doorbell = trio.Event()

    def publish(self, job_id: str, seq: int) -> None:
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        envelope = {
            "type": "image_received",
            "timestamp": timestamp,
            "job_id": job_id,
            "seq": seq,
            "data": {
                "file_index": seq,
                "file_name": f"{seq}.png",
                "size_bytes": 89,
                "content_type": "image/png",
            },
        }
        data = json.dumps(envelope, separators=(",", ":"))
        ident = len(self.frames) + 1
        self.frames.append(f"id: {ident}\nevent: image_received\ndata: {data}\n\n".encode())
        self.doorbell.set()
        self.doorbell = trio.Event()

    async def subscribe(self) -> AsyncIterator[bytes]:
        """From now on: wait for the doorbell, then send whatever is waiting in one chunk."""
        sent = len(self.frames)
        while True:
            if sent == len(self.frames):
                await self.doorbell.wait()
            chunk = b"".join(self.frames[sent:])
            sent = len(self.frames)
            yield chunk


def main() -> None:
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_FRAMES
    app = QuartTrio(__name__)
    broadcast = Broadcast()
    monitor = PauseMonitor()

    @app.get("/naive")
    async def naive() -> Response:
        async def frames() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield FRAME

        response = Response(frames(), content_type="text/event-stream")
        response.timeout = None
        return response

    @app.get("/api/events")
    @app.get("/api/ocr/<job_id>/events")
    async def events(job_id: str = "") -> Response:
        response = Response(
            broadcast.subscribe(),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
        response.timeout = None
        return response

    @app.route("/publish", methods=["GET", "POST"])
    async def publish() -> str:
        n = request.args.get("n", DEFAULT_PUBLISH, type=int)
        job_id = str(uuid.uuid4())
        for seq in range(n):
            broadcast.publish(job_id, seq)
            await trio.lowlevel.checkpoint()  # a step between events, like a job's
        return f"published {n}\n"

    @app.post("/api/ocr")
    async def upload() -> Response:
        form = await request.files
        files = [
            (stored.filename or "", stored.content_type, stored.read())
            for stored in form.getlist("files")
        ]
        job_id = str(uuid.uuid4())

        async def frames() -> AsyncIterator[bytes]:
            for frame in _upload_events(job_id, files):
                yield frame

        response = Response(
            frames(),
            content_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "Location": f"/api/ocr/{job_id}"},
        )
        response.timeout = None
        return response

    @app.get("/gc")
    async def gc_pauses() -> Response:
        document = {
            "longest": monitor.longest,
            "longest_cpu": monitor.longest_cpu,
            "bounds": PAUSE_BUCKETS,
            "buckets": monitor.buckets,
        }
        return Response(json.dumps(document), content_type="application/json")

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.backlog = 2048
    config.keep_alive_timeout = 3600
    gc.callbacks.append(monitor)
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
