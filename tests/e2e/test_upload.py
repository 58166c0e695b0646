"""POST /api/ocr against a real Hypercorn with a real streaming HTTP client."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import trio
from PIL import Image

from tests.e2e.conftest import (
    BOUNDARY,
    MULTIPART,
    LiveServer,
    StartServer,
    chunk,
    head,
    post_events,
    raw_request,
    read_response,
    read_to_close,
    sse_events,
)
from tests.images import Upload, bomb_png, make_image, multipart_body, truncated
from tests.ordering import check_stream
from tests.sse_reading import SSEDecoder

pytestmark = pytest.mark.e2e


async def test_one_good_file(server: LiveServer, client: httpx.AsyncClient) -> None:
    png = make_image("PNG", (120, 40))
    body = multipart_body([Upload(png, "invoice.png", "image/png")], BOUNDARY)
    response, events, _ = await post_events(client, server.url, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["location"] == f"/api/ocr/{events[0]['job_id']}"
    assert [e["type"] for e in events] == [
        "upload_started",
        "image_received",
        "image_validation_start",
        "image_validation_success",
        "all_images_validated",
        "processing_complete",
    ]
    assert events[0]["data"] == {"file_count": 1, "total_bytes": len(png)}
    assert events[1]["data"] == {
        "file_index": 0,
        "file_name": "invoice.png",
        "size_bytes": len(png),
        "content_type": "image/png",
    }
    assert events[3]["data"] | {} == {
        "file_index": 0,
        "file_name": "invoice.png",
        "size_bytes": len(png),
        "format": "PNG",
        "width": 120,
        "height": 40,
        "mode": "RGB",
        "page_count": 1,
    }
    check_stream(events)
    await server.wait_idle()


async def test_the_uploaders_stream_is_written_by_the_fan_out(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    # One path for every stream: the upload's events go out as the fan-out's direct
    # writes (HTTP/1.1), not through Quart; Quart sends the head and the last chunk.
    fanout = server.app.state.fanout
    before = fanout.statistics().direct_writes
    body = multipart_body([Upload(make_image("PNG"), "a.png", "image/png")], BOUNDARY)
    for _ in range(3):
        response, events, _ = await post_events(client, server.url, body)
        assert response.status_code == 200
        check_stream(events)
    await server.wait_idle()
    statistics = fanout.statistics()
    assert statistics.direct_writes - before >= 3
    assert statistics.readers == 0


async def test_an_upload_over_http10_or_http2_is_sent_through_asgi(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    # Not plain HTTP/1.1 chunks: the uploader's own task sends its events through ASGI
    # (a close-delimited body on HTTP/1.0, HTTP/2 frames), the same events in order.
    body = multipart_body([Upload(make_image("PNG"), "a.png", "image/png")], BOUNDARY)
    fanout = server.app.state.fanout
    before = fanout.statistics().direct_writes
    http10 = head(len(body)).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    raw = await read_to_close(await raw_request(server.port, http10, body))
    response_head, _, stream = raw.partition(b"\r\n\r\n")
    assert response_head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in response_head.lower()
    check_stream([json.loads(message.data) for message in SSEDecoder().feed(stream)])
    async with httpx.AsyncClient(http1=False, http2=True, timeout=30) as h2:
        response = await h2.post(
            f"{server.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
        )
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    check_stream([json.loads(message.data) for message in SSEDecoder().feed(response.content)])
    assert fanout.statistics().direct_writes == before
    await server.wait_idle()


async def test_every_validation_code_in_one_request(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(max_files=8, max_file_size=60_000, allowed_formats="PNG,JPEG,GIF")
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, format="ICO")
    parts = [
        Upload(make_image("JPEG", (50, 50)), "photo.jpg", "image/jpeg"),
        Upload(b"", "empty.png"),
        Upload(b"\x89PNG\r\n\x1a\n" + b"\0" * 70_000, "huge.png"),
        Upload(b"plain text, not pixels", "notes.png", "image/png"),
        Upload(make_image("BMP", (10, 10)), "scan.bmp"),
        Upload(truncated(make_image("PNG", (200, 200)), 0.5), "cut.png"),
        Upload(bomb_png(50_000, 50_000), "bomb.png"),
        Upload(ico.getvalue(), "icon.ico"),
        Upload(make_image("GIF", mode="P"), "extra.gif"),
    ]
    body = multipart_body(parts, BOUNDARY)
    _, events, _ = await post_events(client, server.url, body)
    outcome = check_stream(events)
    assert outcome.outcomes == {
        0: ("valid", "JPEG"),
        1: ("invalid", "empty_file"),
        2: ("invalid", "file_too_large"),
        3: ("invalid", "not_an_image"),
        4: ("invalid", "unsupported_format"),
        5: ("invalid", "corrupt_image"),
        6: ("invalid", "image_too_large"),
        7: ("invalid", "unsupported_format"),
        8: ("invalid", "too_many_files"),
    }
    errors = {
        e["data"]["file_index"]: e["data"]["error"]["message"]
        for e in events
        if e["type"] == "image_validation_error"
    }
    assert "60000" in errors[2]
    assert "BMP" in errors[4]
    assert "GIF, JPEG, PNG" in errors[4]
    assert "40000000" in errors[6]
    assert "8" in errors[8]
    assert events[-1]["data"]["valid_count"] == 1
    assert events[-1]["data"]["invalid_count"] == 8
    snapshot = (await client.get(f"{server.url}/api/ocr/{events[0]['job_id']}")).json()
    assert snapshot["status"] == "complete"
    assert len(snapshot["files"]) == 9


async def test_hostile_file_names_stay_data(server: LiveServer, client: httpx.AsyncClient) -> None:
    name = "..\\..\\<img src=x onerror=alert(1)>\u0007.png"
    body = (
        (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n\r\n'
        ).encode()
        + make_image()
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    _, events, _ = await post_events(client, server.url, body)
    assert {e["data"]["file_name"] for e in events if "file_name" in e["data"]} == {
        "<img src=x onerror=alert(1)>.png"
    }


@pytest.mark.parametrize(
    ("headers", "status", "word"),
    [
        ({"Content-Type": "application/json"}, 415, "multipart/form-data"),
        ({"Content-Type": "multipart/form-data"}, 415, "boundary"),
        ({"Content-Type": MULTIPART, "Content-Length": str(10**12)}, 413, "MAX_REQUEST_SIZE"),
    ],
)
async def test_refusals_before_the_stream(
    server: LiveServer, client: httpx.AsyncClient, headers: dict[str, str], status: int, word: str
) -> None:
    if "Content-Length" in headers:
        stream = await raw_request(
            server.port,
            f"POST /api/ocr HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n"
            f"Content-Length: {headers['Content-Length']}\r\n\r\n".encode(),
        )
        raw = await read_to_close(stream)
        assert raw.startswith(b"HTTP/1.1 413")
        document = json.loads(raw.partition(b"\r\n\r\n")[2])
    else:
        response = await client.post(f"{server.url}/api/ocr", content=b"{}", headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        document = response.json()
    assert document["status"] == status
    assert word in document["detail"]


async def test_busy_server_answers_503(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(max_streams=1)
    held = await raw_request(server.port, head(1000), b"--" + BOUNDARY.encode())
    await server.wait_streams(1)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    response = await client.post(
        f"{server.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "MAX_STREAMS" in response.json()["detail"]
    await held.aclose()
    await server.wait_idle()
    _, events, _ = await post_events(client, server.url, body)
    assert events[-1]["type"] == "processing_complete"


async def test_api_token(start_server: StartServer, client: httpx.AsyncClient) -> None:
    server = await start_server(api_token="s3cret")
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    refused = await client.post(
        f"{server.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
    )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    _, events, _ = await post_events(client, server.url, body, Authorization="Bearer s3cret")
    assert events[-1]["type"] == "processing_complete"


@pytest.mark.parametrize(
    ("body", "code", "word"),
    [
        (
            b"--wrong\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--wrong--\r\n",
            "malformed_request",
            "boundary",
        ),
        (
            multipart_body([Upload(make_image(), "a.png")], BOUNDARY)[:-12],
            "malformed_request",
            "closing",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Type: image/png\r\n\r\nxx\r\n--{BOUNDARY}--\r\n".encode(),
            "malformed_request",
            "Content-Disposition",
        ),
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\nX-Big: {'h' * 17_000}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            "malformed_request",
            "",
        ),
        (
            multipart_body([Upload(b"v" * 70_000, None, None, "note")], BOUNDARY),
            "malformed_request",
            "65536",
        ),
        (
            multipart_body([Upload(b"just text", None, None, "note")], BOUNDARY),
            "no_files",
            "filename",
        ),
        (
            multipart_body([Upload(b"", None, None, "f")] * 101, BOUNDARY),
            "too_many_parts",
            "MAX_PARTS",
        ),
    ],
    ids=["boundary", "unterminated", "no-disposition", "header", "field", "no-files", "parts"],
)
async def test_request_level_failures_are_the_only_event(
    server: LiveServer, client: httpx.AsyncClient, body: bytes, code: str, word: str
) -> None:
    _, events, _ = await post_events(client, server.url, body)
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == code
    assert word in events[0]["data"]["error"]["message"]
    await server.wait_idle()


async def test_chunked_body_over_the_limit(start_server: StartServer) -> None:
    server = await start_server(max_request_size=200_000, max_file_size=10**6)
    stream = await raw_request(server.port, head(chunked=True))
    opening = f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=files; filename=a.png\r\n\r\n"
    await stream.send_all(chunk(opening.encode()))
    for _ in range(10):  # 100 KB: within the limit, so nothing is answered yet
        await stream.send_all(chunk(b"z" * 10_000))
    early = b""
    with trio.move_on_after(0.3):
        early = await stream.receive_some(65536)
    assert early == b"", "no head while the body is still coming and still acceptable"
    for _ in range(20):  # 300 KB in all, past the 200 KB limit
        await stream.send_all(chunk(b"z" * 10_000))
    await stream.send_all(b"0\r\n\r\n")
    events = sse_events(await read_response(stream))
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "request_too_large"
    assert "200000" in events[0]["data"]["error"]["message"]
    await server.wait_idle()
