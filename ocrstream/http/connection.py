"""The ASGI connection layer under Quart-Trio, adjusted for long streaming uploads.

Quart-Trio runs each HTTP request as two tasks in one nursery: one receives ASGI
messages, one runs the route and sends the response. This module keeps that shape
and adds what the service needs:

* the request's nursery is exposed as ``request.nursery``, so a route can start the
  request's work in it: when the client disconnects, Quart-Trio cancels that nursery
  and with it every task of the request (SPEC "Disconnects and shutdown");
* the body is buffered with back-pressure: Quart appends every received chunk to an
  unbounded buffer, so a fast client and a slow parser would grow memory to the size
  of the body; here the receiving task waits while :data:`BODY_HIGH_WATER` bytes are
  unread, and Hypercorn's own flow control then slows the client;
* the connection's ASGI send is exposed as ``request.asgi_send``, for a response body
  that sends its own chunks (the uploader's stream, see stream.py);
* close callbacks: sync callables run when the connection's tasks are all done, for
  whatever happens (a cancelled response never enters its body's ``aclose``);
* ``Expect: 100-continue`` answered when the route first reads the body, not before
  (see expect.py): a refused request (401, 403, 413, 415, 503) is answered while the
  client still holds its body back, so no refused body is ever uploaded;
* a real close after ``Connection: close``: when the app sends its last body chunk,
  Hypercorn (inside that same ``send``) tells the app ``http.disconnect`` and then
  closes the socket. Quart-Trio reacts to that disconnect by cancelling the nursery,
  which cancels the ``send`` mid-close: the socket stayed open and Hypercorn logged
  ``BusyResourceError``. Here a disconnect that arrives once the last chunk is being
  sent is not treated as the client leaving; the response task ends by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest

from ocrstream.http.expect import CONTINUE_GATE

if TYPE_CHECKING:
    from collections.abc import Callable

    from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent

__all__ = ["BODY_HIGH_WATER", "BoundedBody", "OCRRequest", "RequestConnection"]

#: Unread request-body bytes at which receiving pauses.
BODY_HIGH_WATER = 256 * 1024


class BoundedBody(TrioBody):
    """Quart-Trio's request body with a high-water mark for back-pressure."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        # Quart's own cap counts only the bytes buffered and unread, not the body's total;
        # the intake enforces MAX_REQUEST_SIZE on the true total (and the route refuses an
        # over-long Content-Length with 413), so Quart's check is switched off here.
        del max_content_length
        super().__init__(expected_content_length, None)
        self._drained = trio.Event()
        self._wanted = trio.Event()

    async def __anext__(self) -> bytes:
        self._wanted.set()
        data: bytes = await super().__anext__()
        self._drained.set()
        return data

    async def wait_wanted(self) -> None:
        """Return once the app has first asked for body bytes."""
        await self._wanted.wait()

    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._data)

    async def wait_drained(self, high_water: int) -> None:
        """Wait while more than ``high_water`` bytes are unread."""
        while self.buffered() > high_water:
            self._drained = trio.Event()
            await self._drained.wait()


class OCRRequest(TrioRequest):
    """A request that knows its nursery and runs close callbacks."""

    body_class = BoundedBody

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nursery: trio.Nursery | None = None
        #: The connection's ASGI send (the uploader's stream sends through it itself
        #: where it cannot write to the socket directly).
        self.asgi_send: ASGISendCallable | None = None
        self.response_complete = False
        self._close_callbacks: list[Callable[[], None]] = []

    def call_on_close(self, callback: Callable[[], None]) -> None:
        """Run sync ``callback`` when the connection's tasks have ended."""
        self._close_callbacks.append(callback)

    def run_close_callbacks(self) -> None:
        """Run and forget the close callbacks (idempotent)."""
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            callback()


class RequestConnection(TrioASGIHTTPConnection):
    """Quart-Trio's HTTP connection with the request nursery exposed (see module doc)."""

    async def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        request = self._create_request_from_scope(send)
        assert isinstance(request, OCRRequest)

        async def send_tracked(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                request.response_complete = True
            await send(message)

        try:
            async with trio.open_nursery() as nursery:
                request.nursery = nursery
                request.asgi_send = send_tracked
                nursery.start_soon(self.handle_messages, nursery, request, receive)
                # The response runs in this task rather than a second child: one task
                # less per open stream (thousands of idle watchers add up).
                await self.handle_request(nursery, request, send_tracked)
        finally:
            request.asgi_send = None  # it refers to the request: no cycle left behind
            request.run_close_callbacks()

    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: OCRRequest, receive: ASGIReceiveCallable
    ) -> None:
        body = request.body
        assert isinstance(body, BoundedBody)
        gate = CONTINUE_GATE.get()
        if gate is not None and "100-continue" in request.headers.get("Expect", "").lower():
            # The client sends its body only after the 100: ask for it once the route
            # wants the body, which is after every refusal check has passed.
            await body.wait_wanted()
            await gate.send_continue()
        while True:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
                await body.wait_drained(BODY_HIGH_WATER)
            elif message["type"] == "http.disconnect":
                if request.response_complete:
                    return  # Hypercorn is closing after our last chunk: let it finish
                break
        nursery.cancel_scope.cancel()
