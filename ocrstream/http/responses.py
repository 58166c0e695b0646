"""The two kinds of SSE response: the uploader's (sent by Quart) and a watcher's
(its head from Quart, its events from the fan-out)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from quart import Response, request

from ocrstream.core.errors import ServiceBusy
from ocrstream.http.connection import OCRRequest
from ocrstream.http.handoff import HANDOFF_KEY, HandOff
from ocrstream.http.stream import EventStream
from ocrstream.service.cursor import Cursor, WaitableCursor

if TYPE_CHECKING:
    from collections.abc import Callable

    import trio

    from ocrstream.http.state import ServiceState

__all__ = ["SSE_HEADERS", "sse_response", "watcher_response"]

_SourceT = TypeVar("_SourceT", bound=Cursor)

#: The head of every stream (SPEC "POST /api/ocr").
SSE_HEADERS = {
    "Content-Type": "text/event-stream",  # SSE is always UTF-8 (WHATWG HTML 9.2)
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def sse_response(
    state: ServiceState,
    subscribe: Callable[[], WaitableCursor],
    *,
    end_after: trio.Event | None = None,
) -> Response:
    """The uploader's SSE response, sent by Quart from ``subscribe()``; takes a stream
    slot (MAX_STREAMS).

    The slot and the cursor are released exactly once, however the response
    ends (finished, client gone, or never even started).
    """
    req = request
    assert isinstance(req, OCRRequest)
    cursor, cleanup = _open_stream(state, subscribe)
    body = EventStream(
        cursor,
        keepalive_interval=state.settings.keepalive_interval,
        on_close=cleanup,
        end_after=end_after,
    )
    # Whatever ends the connection, the slot and the cursor are released.
    req.call_on_close(body.close)
    response = Response(body, status=200, headers=dict(SSE_HEADERS))
    # Quart-Trio sends every response under RESPONSE_TIMEOUT; a stream has none.
    response.timeout = None
    return response


def watcher_response(
    state: ServiceState,
    subscribe: Callable[[], Cursor],
    *,
    job_id: str | None,
) -> Response:
    """A watcher's SSE response: its head from Quart, its events from the fan-out.

    Takes a stream slot and hands the cursor to the watcher-streams middleware
    (see handoff.py), which serves the stream once Quart is done with the request.
    """
    handoff = request.scope.get(HANDOFF_KEY)
    if isinstance(handoff, HandOff):  # else HEAD: the head alone, no stream
        if not state.fanout.running:
            raise ServiceBusy("the server is starting; retry shortly", retry_after=1)
        cursor, cleanup = _open_stream(state, subscribe)
        handoff.accept(cursor, job_id, cleanup)
    response = Response(_NoBody(), status=200, headers=dict(SSE_HEADERS))
    response.timeout = None
    return response


def _open_stream(
    state: ServiceState, subscribe: Callable[[], _SourceT]
) -> tuple[_SourceT, Callable[[], None]]:
    """Take a stream slot and subscribe: (the cursor, its sync cleanup; the caller runs
    it exactly once)."""
    state.take_stream_slot()
    try:
        cursor = subscribe()
    except BaseException:
        state.release_stream_slot()
        raise

    def cleanup() -> None:
        cursor.close()
        state.release_stream_slot()

    return cursor, cleanup


class _NoBody:
    """An empty streaming body: a response with no Content-Length and nothing in it."""

    def __aiter__(self) -> _NoBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration
