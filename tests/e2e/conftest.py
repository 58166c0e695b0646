"""A real Hypercorn on a loopback port, started in the test's nursery."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from ocrstream import create_app
from ocrstream.core.config import load_settings
from ocrstream.http.serve import run_server, serve_hypercorn
from tests.chunked import dechunk
from tests.sse_reading import SSEDecoder
from tests.waiting import wait_until

if TYPE_CHECKING:
    from ocrstream.http.app import OCRStreamApp

BOUNDARY = "ocrstream-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass
class LiveServer:
    """A running server: its base URL, its app (to observe state) and its stop switch."""

    url: str
    app: OCRStreamApp
    shutdown: trio.Event

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    async def wait_streams(self, count: int, timeout: float = 10) -> None:
        """Wait until exactly ``count`` streams are open (bounded)."""
        await wait_until(
            lambda: self.app.state.open_streams == count,
            timeout=timeout,
            what=f"{count} open streams",
        )

    async def wait_idle(self, timeout: float = 10) -> None:
        """Wait until no job task and no stream is left (bounded)."""
        state = self.app.state
        await wait_until(
            lambda: not (state.job_tasks_running or state.open_streams),
            timeout=timeout,
            what="no job task and no stream left",
        )


StartServer = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> StartServer:
    """Start a server with settings overrides (and the server loop, ``worker``); it stops
    when the test ends."""

    async def start(
        *, worker: Callable[..., Awaitable[None]] = serve_hypercorn, **overrides: object
    ) -> LiveServer:
        values: dict[str, object] = {
            "validation_threads": 2,
            "shutdown_grace": 1,
            "ocr_engine": "none",
        }
        values.update(overrides)
        settings = load_settings({}, **values)
        app = create_app(settings)
        shutdown = trio.Event()
        binds = await nursery.start(
            partial(
                run_server,
                settings,
                app=app,
                host="127.0.0.1",
                port=0,
                handle_signals=False,
                shutdown=shutdown,
                worker=worker,
                # The collector policy is the process's: the test runner keeps its own.
                collector=None,
            )
        )
        return LiveServer(url=binds[0], app=app, shutdown=shutdown)

    return start


@pytest.fixture
async def server(start_server: StartServer) -> LiveServer:
    return await start_server()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def post_raw(http: httpx.AsyncClient, url: str, body: bytes, *, query: str = "") -> bytes:
    """POST a multipart body to ``url``/api/ocr (with ``?query``); the whole stream's bytes."""
    async with http.stream(
        "POST", f"{url}/api/ocr?{query}", content=body, headers={"Content-Type": MULTIPART}
    ) as response:
        assert response.status_code == 200, await response.aread()
        return await response.aread()


def decode_stream(raw: bytes) -> list[dict[str, Any]]:
    """The envelopes of a whole stream's bytes."""
    return [json.loads(message.data) for message in SSEDecoder().feed(raw)]


async def post_events(
    http: httpx.AsyncClient, url: str, body: bytes, **headers: str
) -> tuple[httpx.Response, list[dict[str, Any]], SSEDecoder]:
    """POST a multipart body and read the whole SSE stream."""
    decoder = SSEDecoder()
    events: list[dict[str, Any]] = []
    ids: list[str | None] = []
    async with http.stream(
        "POST", f"{url}/api/ocr", content=body, headers={"Content-Type": MULTIPART, **headers}
    ) as response:
        async for chunk in response.aiter_raw():
            for message in decoder.feed(chunk):
                events.append(json.loads(message.data))
                ids.append(message.id)
                assert message.event == events[-1]["type"]
    assert ids == [str(event["seq"]) for event in events], "frame ids are the seqs"
    return response, events, decoder


async def raw_request(port: int, head: bytes, body: bytes = b"") -> trio.SocketStream:
    """Open a socket and send a request head (and optionally some body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(head + body)
    return stream


async def read_until(stream: trio.SocketStream, marker: bytes, timeout: float = 10) -> bytes:
    """Read until ``marker`` appears (or the peer closes); bounded in time."""
    data = b""
    with trio.fail_after(timeout):
        while marker not in data:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return data


async def read_to_close(stream: trio.SocketStream, timeout: float = 10) -> bytes:
    """Read until the server closes the connection (fails if it never does); then close."""
    data = b""
    async with stream:
        with trio.fail_after(timeout):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


async def read_response(stream: trio.SocketStream, timeout: float = 10) -> bytes:
    """Read a chunked response to its last chunk (or to the close), then close."""
    data = b""
    async with stream:
        with trio.fail_after(timeout):
            while not data.endswith(b"\r\n0\r\n\r\n"):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
    return data


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Decode the SSE events of a raw chunked HTTP response."""
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head_bytes.lower()
    return [json.loads(m.data) for m in SSEDecoder().feed(dechunk(body))]


def head(length: int | None = None, *, chunked: bool = False, extra: str = "") -> bytes:
    """A POST /api/ocr request head."""
    lines = [
        "POST /api/ocr HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {MULTIPART}",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"
