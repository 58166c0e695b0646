"""A request leaves no reference cycle of ours behind (real Hypercorn, raw sockets).

Cyclic garbage is what only the cyclic collector frees, in pauses that stop every
stream (see ocrstream/service/collector.py); the server's own objects must go with
their last reference.
"""

from __future__ import annotations

import gc
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import BOUNDARY, head, raw_request, read_response, sse_events
from tests.images import Upload, make_image, multipart_body

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.e2e

#: Where the server's objects come from (Werkzeug's route matcher makes a small cycle
#: per request, a recursive closure of its own; it is not ours to break).
OURS = ("ocrstream", "hypercorn", "python_multipart", "quart", "quart_trio")


def _cyclic_garbage() -> Iterator[list[object]]:
    """What the collector finds unreachable, kept for inspection (DEBUG_SAVEALL)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_uploads_and_watchers_leave_no_cycles_of_ours(server: LiveServer) -> None:
    body = multipart_body([Upload(make_image("PNG", (24, 24)), "a.png", "image/png")], BOUNDARY)
    for _ in range(3):  # warm-up: every path once (caches, lazy imports)
        await read_response(await raw_request(server.port, head(len(body)), body))
    await server.wait_idle()
    garbage = _cyclic_garbage()
    found = next(garbage)
    for _ in range(5):
        raw = await read_response(await raw_request(server.port, head(len(body)), body))
        job_id = sse_events(raw)[0]["job_id"]
        watch = f"GET /api/ocr/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        assert len(sse_events(await read_response(await raw_request(server.port, watch)))) == 6
    await server.wait_idle()
    next(garbage, None)
    ours = Counter(
        f"{type(item).__module__}.{type(item).__qualname__}"
        for item in found
        if type(item).__module__.startswith(OURS)
    )
    assert ours == Counter(), f"objects of ours freed only by the cyclic collector: {ours}"
