"""Cursors: a reader's position in a stream of events (a job's history or the ring).

A *reader* is one client reading a stream (the uploader, a job's watcher, an operator
on the firehose); its *cursor* is what the backend hands out on subscription: the
frames waiting for it, and a sync, idempotent ``close()`` that unsubscribes, safe in
cleanup code that runs after cancellation. Every backend's cursors have this shape, so
the HTTP layer serves them alike.
"""

from __future__ import annotations

from typing import Protocol, Self

__all__ = ["ClosingCursor", "Cursor", "WaitableCursor"]


class Cursor(Protocol):
    """A reader's cursor over some events: a job's history or the firehose ring."""

    @property
    def exhausted(self) -> bool:
        """True once the last event has been taken (never, for the firehose)."""
        ...

    def take_frames(self) -> bytes:
        """Every waiting event as SSE bytes (b"" when none)."""
        ...

    def close(self) -> None:
        """Unsubscribe (sync and idempotent, so safe in cleanup after cancellation)."""
        ...


class ClosingCursor:
    """A subscription that is its own context manager: ``with`` closes it.

    Subclasses count themselves in when created and say how to count themselves out
    in :meth:`_release`, which :meth:`close` runs exactly once.
    """

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open = True

    def close(self) -> None:
        """Unsubscribe (sync and idempotent, so safe in cleanup after cancellation)."""
        if self._open:
            self._open = False
            self._release()

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WaitableCursor(Cursor, Protocol):
    """A cursor its reader can wait on (the fan-out's readers are woken by the fan-out)."""

    async def wait_available(self) -> None:
        """Return when there is something to take."""
        ...
