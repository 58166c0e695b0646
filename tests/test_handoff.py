"""The hand-off middleware with ASGI fakes: what it lets through, serves and refuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from ocrstream.http.fanout import FanOut
from ocrstream.http.handoff import (
    HANDOFF_KEY,
    HandOff,
    HandOffRefused,
    WatcherStreams,
    check_stream_head,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class _Frames:
    """A cursor with a fixed set of frames (what a finished job's history gives)."""

    def __init__(self, frames: bytes) -> None:
        self._frames = frames
        self.closed = 0

    @property
    def exhausted(self) -> bool:
        return not self._frames

    def take_frames(self) -> bytes:
        frames, self._frames = self._frames, b""
        return frames

    def close(self) -> None:
        self.closed += 1


def _route(headers: list[tuple[bytes, bytes]], status: int, source: _Frames) -> Callable[..., Any]:
    """A fake app: accepts ``source`` as its stream, then sends a head and an empty body."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        handoff = scope[HANDOFF_KEY]
        assert isinstance(handoff, HandOff)
        handoff.accept(source, None, source.close)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def _call(app: Callable[..., Any], *, http_version: str = "1.1") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    fanout = FanOut(keepalive_interval=60)

    async def receive() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "http_version": http_version, "path": "/"}
    async with trio.open_nursery() as nursery:
        await nursery.start(fanout.run)
        await WatcherStreams(app, fanout)(scope, receive, send)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    return sent


SSE = [(b"content-type", b"text/event-stream")]


async def test_a_stream_is_served_through_asgi_and_ended() -> None:
    source = _Frames(b"id: 0\nevent: x\ndata: {}\n\n")
    sent = await _call(_route(SSE, 200, source))
    assert [m["type"] for m in sent] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    assert sent[1] == {"type": "http.response.body", "body": source_bytes(), "more_body": True}
    assert sent[2]["more_body"] is False
    assert source.closed == 1


def source_bytes() -> bytes:
    return b"id: 0\nevent: x\ndata: {}\n\n"


async def test_a_head_with_content_length_is_refused_unsent() -> None:
    source = _Frames(source_bytes())
    with pytest.RaisesGroup(HandOffRefused, allow_unwrapped=True, flatten_subgroups=True):
        await _call(_route([*SSE, (b"content-length", b"0")], 200, source))
    assert source.closed == 1, "the stream's cleanup still ran"


async def test_a_refusal_head_passes_through_untouched() -> None:
    source = _Frames(source_bytes())
    sent = await _call(_route([(b"content-length", b"2")], 404, source))
    assert sent[0]["status"] == 404
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    ("headers", "version", "refused"),
    [
        (SSE, "1.1", False),
        ([*SSE, (b"Transfer-Encoding", b"chunked")], "1.1", False),
        (SSE, "1.0", False),
        (SSE, "2", False),
        ([*SSE, (b"Content-Length", b"10")], "1.1", True),
        ([*SSE, (b"transfer-encoding", b"gzip, chunked")], "1.1", True),
        (SSE, "3", True),
    ],
)
def test_check_stream_head(headers: list[tuple[bytes, bytes]], version: str, refused: bool) -> None:
    if refused:
        with pytest.raises(HandOffRefused):
            check_stream_head(headers, version)
    else:
        check_stream_head(headers, version)
