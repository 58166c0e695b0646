"""Baseline for bench_stream.py: a stock Quart-Trio SSE endpoint, one frame per chunk.

Usage: ``python benchmarks/naive_sse_server.py PORT FRAMES``; ``GET /naive`` streams
FRAMES copies of a typical ``image_received`` frame, each yielded on its own (the way
most SSE examples are written), so Hypercorn makes one socket send per frame.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response
from quart_trio import QuartTrio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

FRAME = (
    b"id: 1\nevent: image_received\ndata: "
    b'{"type":"image_received","seq":1,"data":{"file_index":1,"file_name":"a.png",'
    b'"size_bytes":70}}\n\n'
)


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    app = QuartTrio(__name__)

    @app.get("/naive")
    async def naive() -> Response:
        async def frames() -> AsyncIterator[bytes]:
            for _ in range(count):
                yield FRAME

        response = Response(frames(), content_type="text/event-stream")
        response.timeout = None
        return response

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
