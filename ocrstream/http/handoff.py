"""Watcher streams leave Quart once their response has started.

A route decides everything about a watcher stream in Quart: authorisation, 404 or
204, the MAX_STREAMS slot, the cursor, the response head. It then hands the
cursor over (:meth:`HandOff.accept`) and returns an empty streaming response.
This ASGI middleware, wrapped around the Quart app, lets that response's head
through, keeps back its end, and once Quart is done with the request (its request
object, contexts and tasks all released) goes on serving the stream itself in the
same ASGI call: the fan-out writes its events (:mod:`ocrstream.http.fanout`), and this
call only waits for the client to leave. Quart's cost is paid once per stream, not
once per event, and an idle watcher holds one task and a few small objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrstream.http.direct import chunk_writer_for
from ocrstream.http.fanout import FanOut, Reader

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from hypercorn.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Scope,
    )

    from ocrstream.service.cursor import Cursor

__all__ = ["HANDOFF_KEY", "HandOff", "HandOffRefused", "WatcherStreams", "check_stream_head"]

#: Where a GET request's scope carries its :class:`HandOff` (an ocrstream extension).
HANDOFF_KEY = "ocrstream.http.handoff"


class HandOffRefused(RuntimeError):
    """A route handed over a stream whose head does not fit the fan-out's framing (a bug
    in the route: the head is not sent)."""


def check_stream_head(headers: Iterable[tuple[bytes, bytes]], http_version: str) -> None:
    """Check that a handed-over stream's head leaves the body's framing to the server.

    The fan-out writes HTTP/1.1 chunks itself (direct.py), and h11 frames a body as
    chunks exactly when the head carries neither ``Content-Length`` nor another
    ``Transfer-Encoding``; HTTP/1.0 (close-delimited) and HTTP/2 readers go through
    ASGI sends, for which the same head is right.

    Raises:
        HandOffRefused: the head carries ``Content-Length`` or a transfer coding other
            than chunked, or the protocol is not HTTP/1.0, 1.1 or 2.
    """
    if http_version not in {"1.0", "1.1", "2"}:
        raise HandOffRefused(f"HTTP/{http_version} is not served by the fan-out")
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            raise HandOffRefused("a handed-over stream's head carries Content-Length")
        if lowered == b"transfer-encoding" and value.strip().lower() != b"chunked":
            raise HandOffRefused(f"a handed-over stream's head says Transfer-Encoding {value!r}")


class HandOff:
    """A watcher stream given by its route to the middleware, with its cleanup."""

    __slots__ = ("_cleanup", "cursor", "job_id", "started")

    def __init__(self) -> None:
        self.cursor: Cursor | None = None
        self.job_id: str | None = None
        #: True once a 200 head for this stream has been sent.
        self.started = False
        self._cleanup: Callable[[], None] | None = None

    def accept(self, cursor: Cursor, job_id: str | None, cleanup: Callable[[], None]) -> None:
        """Take the stream: ``cleanup`` (sync) runs exactly once, however it ends."""
        self.cursor, self.job_id, self._cleanup = cursor, job_id, cleanup

    @property
    def accepted(self) -> bool:
        """True when a route handed a stream over."""
        return self.cursor is not None

    def close(self) -> None:
        """Run the cleanup, once."""
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


class WatcherStreams:
    """ASGI middleware: serves the watcher streams that routes hand over.

    Args:
        app: the Quart app's ASGI callable.
        fanout: the fan-out that writes the streams' events.
    """

    def __init__(self, app: Callable[..., object], fanout: FanOut) -> None:
        self._app = app
        self._fanout = fanout

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self._app(scope, receive, send)  # type: ignore[misc]
            return
        handoff = HandOff()
        scope[HANDOFF_KEY] = handoff  # type: ignore[literal-required]

        async def send_head_only(message: ASGISendEvent) -> None:
            if handoff.accepted and message["type"] == "http.response.start":
                if message["status"] == 200:
                    check_stream_head(message.get("headers", ()), scope["http_version"])
                handoff.started = message["status"] == 200
            elif handoff.started and message["type"] == "http.response.body":
                return  # the (empty) body of a handed-over stream is served below
            await send(message)

        try:
            await self._app(scope, receive, send_head_only)  # type: ignore[misc]
            if not handoff.started:
                return
            assert handoff.cursor is not None

            async def send_body(data: bytes) -> None:
                await send({"type": "http.response.body", "body": data, "more_body": True})

            reader = Reader(handoff.cursor, handoff.job_id, chunk_writer_for(scope["http_version"]))
            if await self._fanout.follow(reader, receive, send_body):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            handoff.close()
