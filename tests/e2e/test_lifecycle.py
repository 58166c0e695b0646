"""Streams over time: keep-alives, timeouts, disconnects, connection close, shutdown."""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING

import pytest
import trio

from tests.e2e.conftest import (
    BOUNDARY,
    LiveServer,
    StartServer,
    head,
    post_events,
    raw_request,
    read_response,
    read_to_close,
    read_until,
    sse_events,
)
from tests.images import Upload, make_image, multipart_body, noisy_png
from tests.waiting import wait_until

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.e2e


def _temp_files() -> set[str]:
    """This process's open files in the temporary directory (a spooled upload's file),
    as "fd -> target"; sockets and everything else are left out, so connections opening
    and closing meanwhile do not count."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(tempfile.gettempdir() + "/"):
            found.add(f"{fd} -> {target}")
    return found


async def test_nothing_is_sent_while_the_body_trickles(start_server: StartServer) -> None:
    # SPEC "POST /api/ocr": the head goes out once the whole body has arrived (a reverse
    # proxy stops forwarding a body once the response has begun), keep-alives after it.
    server = await start_server(keepalive_interval=0.2)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body[:50])
    early = b""
    with trio.move_on_after(0.6):  # three keep-alive intervals
        early = await stream.receive_some(65536)
    assert early == b"", "nothing, not even the head, while the client still sends"
    await stream.send_all(body[50:])
    received = await read_until(stream, b"event: upload_started")
    assert received.startswith(b"HTTP/1.1 200")
    events = sse_events(received + await read_response(stream))
    assert next(e["type"] for e in events) == "upload_started"
    assert events[-1]["type"] == "processing_complete"
    await server.wait_idle()


async def test_silence_ends_the_upload_with_upload_timeout(start_server: StartServer) -> None:
    server = await start_server(upload_timeout=0.3, upload_deadline=10)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body[:100])
    events = sse_events(await read_response(stream))
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "upload_timeout"
    assert "UPLOAD_TIMEOUT" in events[0]["data"]["error"]["message"]
    await server.wait_idle()


async def test_a_dripping_client_is_ended_by_the_deadline(start_server: StartServer) -> None:
    server = await start_server(upload_timeout=0.5, upload_deadline=1.0)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body[:100])
    received = b""
    async with trio.open_nursery() as nursery:

        async def drip() -> None:
            for byte in body[100:140]:  # 4 s of drips, far past the deadline
                await trio.sleep(0.1)
                await stream.send_all(bytes([byte]))

        nursery.start_soon(drip)
        received = await read_until(stream, b"processing_error")
        nursery.cancel_scope.cancel()
    events = sse_events(received + await read_response(stream))
    assert [e["type"] for e in events] == ["processing_error"]
    assert "UPLOAD_DEADLINE" in events[0]["data"]["error"]["message"]
    await server.wait_idle()


async def test_disconnect_mid_upload_cleans_everything_up(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    before = _temp_files()
    big = b"x" * 600_000  # spools to a temporary file on disk
    body = multipart_body([Upload(big, "a.png"), Upload(make_image(), "b.png")], BOUNDARY)
    # Mid-way through the big part: over the spool threshold, so on disk, and unfinished
    # (a complete part would be validated and its spool closed at once).
    stream = await raw_request(server.port, head(len(body)), body[:400_000])
    async with stream:  # closed however the test goes: the client leaves mid-upload
        await wait_until(
            lambda: server.app.state.job_tasks_running == 1 and bool(_temp_files() - before),
            timeout=30,
            what="the job runs and has spooled to disk",
        )
    await server.wait_idle()
    assert _temp_files() - before == set(), "the spool's temporary file is closed"
    (handle,) = server.app.state.registry._jobs.values()
    assert handle.record.snapshot()["status"] == "cancelled"
    assert handle.record.snapshot()["error"] == {
        "code": "client_disconnected",
        "message": "the uploading client disconnected; the job was cancelled",
    }
    assert server.app.state.registry.statistics().readers == 0
    # The server goes on serving.
    _, events, _ = await post_events(
        client, server.url, multipart_body([Upload(make_image(), "c.png")], BOUNDARY)
    )
    assert events[-1]["type"] == "processing_complete"


async def test_disconnect_mid_validation_stops_the_job(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(validation_threads=1, max_file_size=20_000_000)
    parts = [Upload(noisy_png((1500, 1500), seed), f"{seed}.png") for seed in range(6)]
    body = multipart_body(parts, BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body)
    await read_until(stream, b"image_validation_start")
    await stream.aclose()
    await server.wait_idle()
    (handle,) = server.app.state.registry._jobs.values()
    types = [envelope.type for envelope in handle.record.history]
    assert types[-1] == "processing_error"
    assert "all_images_validated" not in types
    assert handle.record.snapshot()["error"] == {
        "code": "client_disconnected",
        "message": "the uploading client disconnected; the job was cancelled",
    }
    _, events, _ = await post_events(
        client, server.url, multipart_body([Upload(make_image(), "c.png")], BOUNDARY)
    )
    assert events[-1]["type"] == "processing_complete"


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /api/ocr HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
        head(
            len(multipart_body([Upload(make_image(), "a.png")], BOUNDARY)),
            extra="Connection: close",
        )
        + multipart_body([Upload(make_image(), "a.png")], BOUNDARY),
    ],
    ids=["healthz", "refusal", "stream"],
)
async def test_connection_close_really_closes(server: LiveServer, request_head: bytes) -> None:
    stream = await raw_request(server.port, request_head)
    raw = await read_to_close(stream, timeout=5)
    assert raw.startswith(b"HTTP/1.1 ")


async def test_shutdown_lets_jobs_finish_then_ends_them(start_server: StartServer) -> None:
    server = await start_server(shutdown_grace=0.5, upload_timeout=30, admin_token="admin")
    firehose = await raw_request(
        server.port, b"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer admin\r\n\r\n"
    )
    await server.wait_streams(1)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body[:100])
    await server.wait_streams(2)  # the firehose and the upload: the job runs
    server.shutdown.set()
    events = sse_events(await read_response(stream))
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "shutting_down"
    assert server.app.state.registry.statistics().running_jobs == 0
    # The firehose reader gets that event too, then its stream's last chunk: ended, not
    # cut at Hypercorn's graceful timeout (grace + 5 s), which closes without one.
    raw = await read_response(firehose)
    assert raw.endswith(b"\r\n0\r\n\r\n"), "ended, not cut"
    assert sse_events(raw) == events


async def test_watcher_sees_the_uploaders_stream(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    body = multipart_body([Upload(make_image(), "a.png"), Upload(b"?", "b.png")], BOUNDARY)
    _, uploaded, _ = await post_events(client, server.url, body)
    job = uploaded[0]["job_id"]
    watched = (await client.get(f"{server.url}/api/ocr/{job}/events")).text
    assert [
        json.loads(line[6:]) for line in watched.splitlines() if line.startswith("data: ")
    ] == uploaded
    missing = await client.get(f"{server.url}/api/ocr/00000000-0000-4000-8000-000000000000/events")
    assert missing.status_code == 404


async def _watcher_that_never_reads(port: int, job_id: str) -> trio.SocketStream:
    """A watcher of ``job_id`` with a tiny receive window, which the test never reads."""
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    stalled = trio.SocketStream(sock)
    await stalled.send_all(f"GET /api/ocr/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return stalled


async def test_a_reader_that_stops_reading_is_dropped(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(stalled_reader_timeout=1, max_files=400, max_parts=401)
    # A finished job with a long history (~1,200 events, a few hundred KB to replay).
    tiny = make_image("PNG", (1, 1))
    body = multipart_body([Upload(tiny, f"{i}.png") for i in range(400)], BOUNDARY)
    _, events, _ = await post_events(client, server.url, body)
    job = events[0]["job_id"]
    stalled = await _watcher_that_never_reads(server.port, job)
    await server.wait_streams(1)
    started = trio.current_time()
    # Another watcher is served in full meanwhile.
    watched = (await client.get(f"{server.url}/api/ocr/{job}/events")).text
    assert watched.count("event: ") == len(events)
    # Its socket filled up: what the fan-out could not write went to its own task.
    assert server.app.state.fanout.statistics().short_writes >= 1
    # The server gives up on the stalled one after STALLED_READER_TIMEOUT (plus probes).
    await server.wait_streams(0, timeout=30)
    assert trio.current_time() - started < 30
    await stalled.aclose()


async def test_an_uploader_that_stops_reading_its_stream_is_dropped_and_its_job_ends(
    start_server: StartServer,
) -> None:
    # The uploader's stream is the fan-out's too: a full socket goes to its own task,
    # which gives up after STALLED_READER_TIMEOUT and ends the request as a disconnect.
    server = await start_server(stalled_reader_timeout=1, max_files=400, max_parts=401)
    tiny = make_image("PNG", (1, 1))
    body = multipart_body([Upload(tiny, f"{i}.png") for i in range(400)], BOUNDARY)
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", server.port))
    uploader = trio.SocketStream(sock)
    await uploader.send_all(head(len(body)) + body)  # and never reads a byte
    await server.wait_streams(1)
    started = trio.current_time()
    await server.wait_idle(timeout=30)
    assert trio.current_time() - started < 30
    assert server.app.state.fanout.statistics().short_writes >= 1
    assert server.app.state.registry.statistics().running_jobs == 0
    await uploader.aclose()


async def test_a_stalled_watcher_does_not_slow_the_job(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(stalled_reader_timeout=30, max_files=400, max_parts=401)
    tiny = make_image("PNG", (1, 1))
    body = multipart_body([Upload(tiny, f"{i}.png") for i in range(400)], BOUNDARY)
    upload = await raw_request(server.port, head(len(body)), body[:200])
    await server.wait_streams(1)  # the upload's: the job runs
    (handle,) = server.app.state.registry._jobs.values()
    # A watcher joins the running job and never reads.
    stalled = await _watcher_that_never_reads(server.port, handle.job_id)
    await server.wait_streams(2)
    await upload.send_all(body[200:])
    # The uploader reads its whole stream while the watcher's socket is full.
    events = sse_events(await read_response(upload, timeout=30))
    assert events[-1]["type"] == "processing_complete"
    assert events[-1]["data"]["file_count"] == 400
    assert handle.record.finished
    await server.wait_streams(1)  # only the stalled watcher is left
    await stalled.aclose()
    await server.wait_idle()


async def test_finished_jobs_expire_after_result_ttl(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(result_ttl=0.5)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    _, events, _ = await post_events(client, server.url, body)
    location = f"{server.url}/api/ocr/{events[0]['job_id']}"
    assert (await client.get(location)).status_code == 200

    async def gone() -> bool:
        return (await client.get(location)).status_code != 200

    await wait_until(gone, interval=0.1, what="the job expired")
    expired = await client.get(location)
    assert expired.status_code == 404
    assert expired.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{location}/events")).status_code == 404
