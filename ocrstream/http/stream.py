"""The body of an SSE response: a reader's events as coalesced frames.

Not a generator, so nothing ever yields inside a cancel scope (PEP 789): each
``__anext__`` waits for events with a keep-alive deadline, lets the job's tasks run
:data:`COALESCE_ROUNDS` more scheduling rounds, then returns every event that is ready
as one chunk (one socket send for many frames; a lone event waits only those rounds).
``aclose`` is synchronous work only: Quart calls it after the response's scope is
already cancelled, where any real ``await`` would raise at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
import trio.lowlevel

from ocrstream.core.sse import KEEPALIVE

if TYPE_CHECKING:
    from collections.abc import Callable

    from ocrstream.service.cursor import WaitableCursor

__all__ = ["COALESCE_ROUNDS", "EventStream"]

#: Scheduling rounds a woken stream lets pass before it takes what is waiting. A job's
#: events come a round or two apart (its tasks hand them on through a channel), and a
#: chunk costs a trip through Quart, Hypercorn and h11 and a socket send, ~150 us, where
#: a round costs a few: with two, a small upload's six events go out in two chunks
#: rather than three or four.
COALESCE_ROUNDS = 2


class EventStream:
    """Async iterator of SSE bytes for one reader.

    Args:
        cursor: the reader's cursor (a job's history or the firehose).
        keepalive_interval: seconds of silence before ``: keep-alive`` (KEEPALIVE_INTERVAL).
        on_close: sync cleanup (unsubscribe, free the stream slot); run exactly once.
        end_after: when given, the stream ends only once this is set too (the uploader's
            stream waits for its job's task, which may still be draining the body).
    """

    def __init__(
        self,
        cursor: WaitableCursor,
        *,
        keepalive_interval: float,
        on_close: Callable[[], None],
        end_after: trio.Event | None = None,
    ) -> None:
        self._cursor = cursor
        self._keepalive_interval = keepalive_interval
        self._on_close: Callable[[], None] | None = on_close
        self._end_after = end_after

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        if self._cursor.exhausted or self._on_close is None:
            if self._end_after is not None and self._on_close is not None:
                await self._end_after.wait()
            self.close()
            raise StopAsyncIteration
        with trio.move_on_after(self._keepalive_interval):
            await self._cursor.wait_available()
        for _ in range(COALESCE_ROUNDS):
            await trio.lowlevel.checkpoint()
        frames = self._cursor.take_frames()
        return frames or KEEPALIVE

    def close(self) -> None:
        """Run the cleanup once (idempotent, sync)."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def aclose(self) -> None:
        """Quart's close hook: sync cleanup only (see the module docstring)."""
        self.close()
