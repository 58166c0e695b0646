"""Watcher streams over real Hypercorn: written straight to the socket by the fan-out,
parsed strictly as HTTP by h11, on HTTP/1.1 and HTTP/1.0, and the connection lives on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import h11
import httpx
import pytest
import trio
from hypercorn.trio.run import worker_serve

from tests.e2e.conftest import (
    BOUNDARY,
    head,
    post_events,
    raw_request,
    read_response,
    read_to_close,
    sse_events,
)
from tests.images import Upload, make_image, multipart_body
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveServer, StartServer

pytestmark = pytest.mark.e2e

ADMIN = "admin-secret"


class StrictClient:
    """One HTTP/1.1 connection read through h11, which rejects any framing mistake."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = h11.Connection(h11.CLIENT)
        self.decoder = SSEDecoder()
        self.messages: list[Any] = []

    async def send(self, method: str, target: str, **headers: str) -> None:
        request = h11.Request(
            method=method, target=target, headers=[("Host", "127.0.0.1"), *headers.items()]
        )
        await self.stream.send_all(
            self.connection.send(request) + self.connection.send(h11.EndOfMessage())
        )

    async def next_event(self, timeout: float = 10) -> Any:
        with trio.fail_after(timeout):
            while True:
                event = self.connection.next_event()
                if event is not h11.NEED_DATA:
                    return event
                self.connection.receive_data(await self.stream.receive_some(65536))

    async def response(self) -> h11.Response:
        event = await self.next_event()
        assert isinstance(event, h11.Response), event
        return event

    async def read_until_end(self, timeout: float = 10) -> None:
        """Read the body, decoding SSE, until the response's end."""
        while True:
            event = await self.next_event(timeout)
            if isinstance(event, h11.Data):
                self.messages.extend(self.decoder.feed(bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise AssertionError(f"unexpected {event!r}")

    async def read_events(self, count: int, timeout: float = 10) -> None:
        """Read body chunks, decoding SSE, until ``count`` events have come (a stream
        that does not end, such as the firehose)."""
        with trio.fail_after(timeout):
            while len(self.messages) < count:
                event = await self.next_event()
                assert isinstance(event, h11.Data), event
                self.messages.extend(self.decoder.feed(bytes(event.data)))

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(message.data) for message in self.messages]


async def _job(
    server: LiveServer, client: httpx.AsyncClient, files: int = 3
) -> list[dict[str, Any]]:
    body = multipart_body([Upload(make_image(), f"{i}.png") for i in range(files)], BOUNDARY)
    _, events, _ = await post_events(client, server.url, body)
    return events


async def test_a_watcher_is_written_directly_and_the_connection_lives_on(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    uploaded = await _job(server, client)
    job = uploaded[0]["job_id"]
    fanout = server.app.state.fanout
    before = fanout.statistics().direct_writes
    strict = StrictClient(await trio.open_tcp_stream("127.0.0.1", server.port))
    async with strict.stream:
        await strict.send("GET", f"/api/ocr/{job}/events")
        response = await strict.response()
        assert response.status_code == 200
        assert (b"transfer-encoding", b"chunked") in response.headers
        await strict.read_until_end()
        assert strict.documents() == uploaded
        assert [m.id for m in strict.messages] == [str(e["seq"]) for e in uploaded]
        assert fanout.statistics().direct_writes > before, "the fan-out wrote it, not ASGI"
        metrics = (await client.get(f"{server.url}/metrics")).text
        written = fanout.statistics().direct_writes
        assert f"ocrstream_watcher_chunks_written {float(written)}" in metrics
        assert "ocrstream_watcher_short_writes 0.0" in metrics
        # h11 on both sides agrees the response ended: the same connection serves more.
        strict.connection.start_next_cycle()
        await strict.send("GET", "/healthz")
        assert (await strict.response()).status_code == 200
    await server.wait_idle()


async def test_an_http10_watcher_gets_a_close_delimited_body(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    uploaded = await _job(server, client)
    job = uploaded[0]["job_id"]
    request = f"GET /api/ocr/{job}/events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode()
    raw = await read_to_close(await raw_request(server.port, request))
    response_head, _, body = raw.partition(b"\r\n\r\n")
    assert response_head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in response_head.lower(), "no chunks for an HTTP/1.0 client"
    assert [json.loads(m.data) for m in SSEDecoder().feed(body)] == uploaded
    await server.wait_idle()


async def _firehose_readers(server: LiveServer, count: int) -> list[StrictClient]:
    readers = [
        StrictClient(await trio.open_tcp_stream("127.0.0.1", server.port)) for _ in range(count)
    ]
    for reader in readers:
        await reader.send("GET", "/api/events", Authorization=f"Bearer {ADMIN}")
        assert (await reader.response()).status_code == 200
    await server.wait_streams(count)
    return readers


async def test_a_leaving_firehose_reader_frees_its_slot_before_any_write(
    start_server: StartServer,
) -> None:
    # Nothing is published and the keep-alive is an hour away: only the client's
    # leaving itself (http.disconnect) can free the slot, not a failed write.
    server = await start_server(admin_token=ADMIN, keepalive_interval=3600)
    (leaving,) = await _firehose_readers(server, 1)
    await leaving.stream.aclose()
    await server.wait_streams(0, timeout=5)
    assert server.app.state.fanout.statistics().readers == 0


async def test_firehose_readers_get_every_event_then_keepalives(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(admin_token=ADMIN, keepalive_interval=0.2)
    readers = await _firehose_readers(server, 2)
    uploaded = await _job(server, client, files=2)
    for reader in readers:
        await reader.read_events(len(uploaded))
        assert reader.documents() == uploaded
        # Quiet now: keep-alive comments, in well-formed chunks.
        comments = reader.decoder.comments
        with trio.fail_after(5):
            while reader.decoder.comments < comments + 2:
                event = await reader.next_event()
                assert isinstance(event, h11.Data)
                reader.decoder.feed(bytes(event.data))
        await reader.stream.aclose()
    await server.wait_idle()


async def test_head_on_a_watcher_route_is_the_head_alone(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    uploaded = await _job(server, client, files=1)
    response = await client.head(f"{server.url}/api/ocr/{uploaded[0]['job_id']}/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == b""
    assert server.app.state.open_streams == 0


async def test_a_watcher_of_a_running_job_gets_it_live(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    body = multipart_body([Upload(make_image(), f"{i}.png") for i in range(2)], BOUNDARY)
    upload = await raw_request(server.port, head(len(body)), body[:100])
    await server.wait_streams(1)  # the upload's: the job runs
    (handle,) = server.app.state.registry._jobs.values()
    strict = StrictClient(await trio.open_tcp_stream("127.0.0.1", server.port))
    async with strict.stream:
        await strict.send("GET", f"/api/ocr/{handle.job_id}/events")
        assert (await strict.response()).status_code == 200
        await server.wait_streams(2)
        await upload.send_all(body[100:])
        uploaded = sse_events(await read_response(upload))
        await strict.read_until_end()
    assert strict.documents() == uploaded
    await server.wait_idle()


async def test_an_http2_watcher_is_served_through_asgi(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    uploaded = await _job(server, client)
    fanout = server.app.state.fanout
    before = fanout.statistics().direct_writes
    # HTTP/2 with prior knowledge on plain TCP: frames, not chunks, so no direct writes.
    async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as h2:
        response = await h2.get(f"{server.url}/api/ocr/{uploaded[0]['job_id']}/events")
    assert response.http_version == "HTTP/2"
    assert [json.loads(m.data) for m in SSEDecoder().feed(response.content)] == uploaded
    assert fanout.statistics().direct_writes == before
    await server.wait_idle()


async def test_a_watcher_that_asked_for_connection_close_gets_chunks_then_the_close(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    uploaded = await _job(server, client)
    request = (
        f"GET /api/ocr/{uploaded[0]['job_id']}/events HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
    ).encode()
    raw = await read_to_close(await raw_request(server.port, request), timeout=5)
    assert raw.endswith(b"\r\n0\r\n\r\n")
    assert sse_events(raw) == uploaded
    await server.wait_idle()


async def test_under_hypercorns_own_worker_watchers_are_served_through_asgi(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    # The fan-out ablation's server (bench_fanout.py): no connection stream is known, so
    # the fan-out task hands every reader's chunks to that reader's own ASGI sends.
    server = await start_server(worker=worker_serve, admin_token=ADMIN)
    (firehose,) = await _firehose_readers(server, 1)
    uploaded = await _job(server, client)
    fanout = server.app.state.fanout
    strict = StrictClient(await trio.open_tcp_stream("127.0.0.1", server.port))
    async with firehose.stream, strict.stream:
        await firehose.read_events(len(uploaded))
        assert firehose.documents() == uploaded
        await strict.send("GET", f"/api/ocr/{uploaded[0]['job_id']}/events")
        assert (await strict.response()).status_code == 200
        await strict.read_until_end()
        assert strict.documents() == uploaded
        statistics = fanout.statistics()
        assert statistics.direct_writes == 0, "nothing written to a socket by the fan-out"
        assert statistics.handed_over >= 2, "each reader's own task sent its chunks"
        strict.connection.start_next_cycle()
        await strict.send("GET", "/healthz")
        assert (await strict.response()).status_code == 200
    await server.wait_idle()
