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

Frames look like ocrstream's: ``id: N\\nevent: image_received\\ndata: {compact JSON with
type, timestamp (RFC 3339 UTC, ms, Z), job_id, seq, data}\\n\\n``; ``N`` counts from 1
over the server's lifetime. Stock Hypercorn configuration except ``backlog`` (2,048, for
500 simultaneous connects) and a long ``keep_alive_timeout``.
"""

from __future__ import annotations

import json
import sys
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

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.backlog = 2048
    config.keep_alive_timeout = 3600
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
