"""The two kinds of SSE response, both with their events written by the fan-out: the
uploader's (in Quart's request, which owns the job) and a watcher's (its head from
Quart, then served by the hand-off middleware once Quart has let go)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from quart import Response, request

from ocrstream.http.connection import OCRRequest
from ocrstream.http.direct import chunk_writer_for
from ocrstream.http.handoff import HANDOFF_KEY, HandOff
from ocrstream.http.stream import UploadStream
from ocrstream.service.cursor import Cursor

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
    subscribe: Callable[[], Cursor],
    *,
    job_id: str,
    end_after: trio.Event,
) -> Response:
    """The uploader's SSE response on the cursor ``subscribe()`` gives; takes a stream
    slot (MAX_STREAMS). Quart sends its head and its end, the fan-out its events.

    The slot and the cursor are released exactly once, however the response
    ends (finished, client gone, or never even started).

    Raises:
        ServiceBusy: see :meth:`ServiceState.refuse_unless_streaming` (which the route
            checks before it makes the job).
    """
    req = request
    assert isinstance(req, OCRRequest)
    assert req.nursery is not None
    assert req.asgi_send is not None
    send = req.asgi_send

    async def send_body(data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    cursor, cleanup = _open_stream(state, subscribe)
    body = UploadStream(
        cursor,
        job_id=job_id,
        fanout=state.fanout,
        # Quart's response head for an iterated body is chunked on HTTP/1.1 (no length).
        writer=chunk_writer_for(req.http_version),
        send_body=send_body,
        on_close=cleanup,
        on_gone=req.nursery.cancel_scope.cancel,
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
        cursor, cleanup = _open_stream(state, subscribe)  # 503 unless the fan-out runs
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
