"""The request layer under Quart-Trio, driven with ASGI fakes: the body is asked for
only when the route reads it (and then its 100 Continue), a disconnect cancels the
request's work, and unread body bytes stay bounded."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from ocrstream.http.expect import CONTINUE_GATE
from tests.apps import MULTIPART, make_app
from tests.images import Upload, make_image, multipart_body

TOKEN = "connection-s3cret"


class FakeGate:
    """Stands in for a connection's ContinueGate: records when the 100 would go out."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send_continue(self) -> None:
        self.log.append("100 Continue")


def _scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/ocr",
        "raw_path": b"/api/ocr",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


async def _call(
    app: Any, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[list[str], list[dict[str, Any]]]:
    log: list[str] = []
    sent: list[dict[str, Any]] = []
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive() -> dict[str, Any]:
        if chunks:
            log.append("receive")
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    token = CONTINUE_GATE.set(FakeGate(log))  # type: ignore[arg-type]
    try:
        async with app.test_app():
            await app(_scope(headers), receive, send)
    finally:
        CONTINUE_GATE.reset(token)
    return log, sent


HEADERS = [
    (b"host", b"x"),
    (b"content-type", MULTIPART.encode()),
    (b"expect", b"100-continue"),
]


async def test_a_refused_request_never_asks_for_its_body() -> None:
    app = make_app(api_token=TOKEN)
    log, sent = await _call(app, [*HEADERS, (b"authorization", b"Bearer wrong")], b"x" * 1000)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 401
    assert log == [], "neither a 100 Continue nor a receive() for the body"


async def test_an_accepted_upload_gets_its_100_before_its_first_read() -> None:
    app = make_app(api_token=TOKEN)
    body = multipart_body([Upload(make_image(), "a.png")])
    log, sent = await _call(app, [*HEADERS, (b"authorization", f"Bearer {TOKEN}".encode())], body)
    assert log[0] == "100 Continue"
    assert log[1:] == ["receive"] * (len(log) - 1)
    assert sent[0]["status"] == 200
    streamed = b"".join(m.get("body", b"") for m in sent[1:])
    assert b"event: processing_complete" in streamed


async def test_without_expect_the_body_is_read_at_once() -> None:
    app = make_app()
    body = multipart_body([Upload(make_image(), "a.png")])
    log, sent = await _call(app, HEADERS[:2], body)
    assert "100 Continue" not in log
    assert sent[0]["status"] == 200


async def test_a_disconnect_mid_body_cancels_the_job() -> None:
    app = make_app()
    body = multipart_body([Upload(make_image(), "a.png")])
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[:100], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.test_app():
        with trio.fail_after(10):
            await app(_scope(HEADERS[:2]), receive, send)
    assert sent == [], "nothing was sent: the head waits for the whole body"
    (handle,) = app.state.registry._jobs.values()
    assert handle.record.snapshot()["status"] == "cancelled"
    assert app.state.open_streams == 0
