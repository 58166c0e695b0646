"""``Expect: 100-continue``: a refused upload is answered before the client sends its
body, and an accepted one gets its ``100 Continue`` only once the route reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from tests.e2e.conftest import (
    BOUNDARY,
    LiveServer,
    StartServer,
    head,
    read_response,
    read_until,
    sse_events,
)
from tests.images import Upload, make_image, multipart_body

if TYPE_CHECKING:
    from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, Scope

pytestmark = pytest.mark.e2e

EXPECT = "Expect: 100-continue"
TOKEN = "expect-s3cret"


class BodyCounter:
    """Wraps the app's ASGI callable and counts the body bytes it receives (server side)."""

    def __init__(self, server: LiveServer) -> None:
        self.received = 0
        inner = server.app.asgi_app

        async def counted(
            scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
        ) -> None:
            async def counting_receive():  # type: ignore[no-untyped-def]
                message = await receive()
                if message["type"] == "http.request":
                    self.received += len(message.get("body", b""))
                return message

            await inner(scope, counting_receive, send)

        server.app.asgi_app = counted  # type: ignore[method-assign]


async def _refused_before_the_body(server: LiveServer, request_head: bytes) -> bytes:
    counter = BodyCounter(server)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(request_head)  # and no body: it waits for 100 Continue
        answer = await read_until(stream, b"\r\n\r\n")
    assert counter.received == 0, "no body byte was read"
    return answer


async def test_a_bad_token_is_refused_before_any_body_byte(start_server: StartServer) -> None:
    server = await start_server(api_token=TOKEN)
    answer = await _refused_before_the_body(
        server, head(50_000_000, extra=f"{EXPECT}\r\nAuthorization: Bearer wrong")
    )
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
    assert b"100 Continue" not in answer


async def test_an_oversize_length_is_refused_before_any_body_byte(
    start_server: StartServer,
) -> None:
    server = await start_server(max_request_size=1000)
    answer = await _refused_before_the_body(server, head(50_000_000, extra=EXPECT))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert b"100 Continue" not in answer


async def test_a_cross_site_post_is_refused_before_any_body_byte(
    start_server: StartServer,
) -> None:
    server = await start_server()
    answer = await _refused_before_the_body(
        server,
        head(5000, extra=f"{EXPECT}\r\nSec-Fetch-Site: cross-site\r\nOrigin: http://evil.test"),
    )
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:80]


async def test_an_accepted_upload_gets_its_continue_then_its_stream(
    start_server: StartServer,
) -> None:
    server = await start_server(api_token=TOKEN)
    counter = BodyCounter(server)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(head(len(body), extra=f"{EXPECT}\r\nAuthorization: Bearer {TOKEN}"))
    interim = await read_until(stream, b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 "), interim[:80]
    assert counter.received == 0
    await stream.send_all(body)
    events = sse_events(await read_response(stream))
    assert next(e["type"] for e in events) == "upload_started"
    assert events[-1]["type"] == "processing_complete"
    assert counter.received == len(body)
    await server.wait_idle()
