"""The body of the uploader's SSE response: its events written by the fan-out.

Quart sends the response's head and, at the end, the body's last chunk; in between,
the body's one iteration follows the reader in the fan-out (:mod:`ocrstream.http.fanout`),
exactly as a watcher's stream is followed: direct writes to the socket on HTTP/1.1, this
task's own ASGI sends otherwise. So every stream, the uploader's and the watchers', goes
out one way, and an upload's events cost no trip through Quart, Hypercorn and h11 each.

The uploader's stream differs from a watcher's only in where it lives: in Quart's
request, because the request's nursery owns the job (a disconnect, which Quart's own
receiving task sees, cancels both), and in how it ends: once the job's task is done too
(it may still be draining the body after its terminal event).

Not a generator, so nothing ever yields inside a cancel scope (PEP 789). ``aclose`` is
synchronous work only: Quart calls it after the response's scope is already cancelled,
where any real ``await`` would raise at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import trio

from ocrstream.http.fanout import FanOut, Reader

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ocrstream.http.direct import ChunkWriter
    from ocrstream.service.cursor import Cursor

__all__ = ["UploadStream"]


class UploadStream:
    """Async iterator of the uploader's SSE body (see the module docstring).

    Args:
        cursor: the reader's cursor on its job's history.
        job_id: the job.
        fanout: the fan-out that writes its events.
        writer: its connection's direct writer, or None to send through ASGI.
        send_body: sends body bytes through ASGI (used when ``writer`` is None).
        on_close: sync cleanup (unsubscribe, free the stream slot); run exactly once.
        on_gone: sync; the connection broke under a write: end the request as a
            disconnect would (its nursery, the job's with it, is cancelled).
        end_after: the stream ends only once this is set too (the job's task is done).
    """

    def __init__(
        self,
        cursor: Cursor,
        *,
        job_id: str,
        fanout: FanOut,
        writer: ChunkWriter | None,
        send_body: Callable[[bytes], Awaitable[None]],
        on_close: Callable[[], None],
        on_gone: Callable[[], None],
        end_after: trio.Event,
    ) -> None:
        self._cursor = cursor
        self._job_id = job_id
        self._fanout = fanout
        self._writer = writer
        self._send_body = send_body
        self._on_close: Callable[[], None] | None = on_close
        self._on_gone = on_gone
        self._end_after = end_after
        self._followed = False

    def __aiter__(self) -> UploadStream:
        return self

    async def __anext__(self) -> bytes:
        if self._followed or self._on_close is None:
            self.close()
            raise StopAsyncIteration
        self._followed = True
        reader = Reader(self._cursor, self._job_id, self._writer)
        if not await self._fanout.follow(reader, _quart_sees_leaving, self._send_body):
            self._on_gone()
            await trio.sleep_forever()  # cancelled at once: on_gone cancelled this request
        await self._end_after.wait()
        # The fan-out lets go of every stream at shutdown once what was waiting is out;
        # whatever the job published after that (its terminal event) goes out here.
        rest = self._cursor.take_frames()
        if rest:
            return rest
        self.close()
        raise StopAsyncIteration

    def close(self) -> None:
        """Run the cleanup once (idempotent, sync)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def aclose(self) -> None:
        """Quart's close hook: sync cleanup only (see the module docstring)."""
        self.close()


async def _quart_sees_leaving() -> NoReturn:
    # The fan-out's "receive": Quart's own receiving task sees the client leave (and
    # cancels the request, this stream with it), so here there is nothing to receive.
    await trio.sleep_forever()
