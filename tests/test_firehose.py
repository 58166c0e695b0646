"""GET /api/events, /metrics and watchers, through the app's ASGI path."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio
import trio.testing

from tests.apps import BOUNDARY, MULTIPART, decode_events, make_app, serving
from tests.images import Upload, make_image, multipart_body
from tests.sse_reading import SSEDecoder, SSEMessage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ADMIN = {"Authorization": "Bearer admin-secret"}


@asynccontextmanager
async def streaming(client: Any, path: str, **kwargs: Any) -> AsyncIterator[Any]:
    """A streaming request through Quart's test client that the test ends by leaving."""
    connection = client.request(path, **kwargs)
    await connection.__aenter__()
    try:
        yield connection
    finally:
        await connection.disconnect()
        # After a disconnect the app never sends a last chunk, and Quart's test
        # connection would wait for one for ever: end its receive side ourselves.
        connection._client_send.close()
        await connection.__aexit__(None, None, None)


async def _upload(client: Any, parts: list[Upload]) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/ocr", data=multipart_body(parts, BOUNDARY), headers={"Content-Type": MULTIPART}
    )
    return decode_events(await response.get_data())


async def test_firehose_is_404_without_an_admin_token() -> None:
    response = await make_app().test_client().get("/api/events")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"


async def test_firehose_needs_the_admin_token_not_the_api_token() -> None:
    app = make_app(admin_token="admin-secret", api_token="api-secret")
    async with serving(app) as client:
        for headers in ({}, {"Authorization": "Bearer api-secret"}, {"Authorization": "Bearer x"}):
            response = await client.get("/api/events", headers=headers)
            assert response.status_code == 401
        async with streaming(client, "/api/events", headers=ADMIN) as stream:
            await stream.send_complete()
            await trio.testing.wait_all_tasks_blocked()
            assert app.state.open_streams == 1
        await trio.testing.wait_all_tasks_blocked()
        assert app.state.open_streams == 0


async def test_a_firehose_reader_sees_every_jobs_events_with_ring_ids() -> None:
    app = make_app(admin_token="admin-secret")
    async with serving(app) as client:
        async with streaming(client, "/api/events", headers=ADMIN) as stream:
            await stream.send_complete()
            await trio.testing.wait_all_tasks_blocked()
            first = await _upload(client, [Upload(make_image(), "a.png")])
            second = await _upload(client, [Upload(b"", "b.png")])
            decoder = SSEDecoder()
            messages: list[SSEMessage] = []
            with trio.fail_after(5):
                while len(messages) < len(first) + len(second):
                    messages.extend(decoder.feed(await stream.receive()))
        seen = [json.loads(message.data) for message in messages]
        assert seen == first + second
        ids = [int(message.id or "") for message in messages]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert ids[0] >= app.state.broadcaster.boot_id


async def test_a_stalled_firehose_reader_is_told_what_it_missed() -> None:
    app = make_app(admin_token="admin-secret", event_buffer=8)
    async with serving(app) as client:
        async with streaming(client, "/api/events", headers=ADMIN) as stream:
            await stream.send_complete()
            await trio.testing.wait_all_tasks_blocked()
            first = await _upload(client, [Upload(make_image(), "a.png")])  # 6 events, read later
            # The test connection buffers at most 10 chunks; each job's events are one chunk
            # or a few, so publish enough jobs that the reader falls behind the 8-event ring.
            jobs = [await _upload(client, [Upload(make_image(), f"{i}.png")]) for i in range(30)]
            decoder = SSEDecoder()
            messages: list[SSEMessage] = []
            with trio.fail_after(5):
                while not messages or json.loads(messages[-1].data) != jobs[-1][-1]:
                    messages.extend(decoder.feed(await stream.receive()))
        documents = [json.loads(m.data) for m in messages]
        lags = [d for d in documents if d["type"] == "stream_lagged"]
        assert lags, "the reader fell behind the ring"
        total = len(first) + sum(len(job) for job in jobs)
        delivered = [d for d in documents if d["type"] != "stream_lagged"]
        assert sum(lag["data"]["missed"] for lag in lags) + len(delivered) == total
        assert all(lag["job_id"] is None and lag["seq"] is None for lag in lags)
        lag_frames = [m for m in messages if m.event == "stream_lagged"]
        assert all(m.id is None or m.id == messages[messages.index(m) - 1].id for m in lag_frames)
        everything = [e for job in [first, *jobs] for e in job]
        # What was delivered is a subsequence of the whole, in order, gaps only at lag reports.
        positions = [everything.index(d) for d in delivered]
        assert positions == sorted(positions)
        assert app.state.broadcaster.statistics().lag_reports == len(lags)


async def test_three_watchers_joining_at_different_moments_see_the_same_stream() -> None:
    app = make_app()
    async with serving(app) as client:
        body = multipart_body([Upload(make_image(), f"{i}.png") for i in range(3)], BOUNDARY)
        async with client.request(
            "/api/ocr", method="POST", headers={"Content-Type": MULTIPART}
        ) as upload:
            await upload.send(body[:100])
            await trio.testing.wait_all_tasks_blocked()
            (handle,) = app.state.registry._jobs.values()
            location = f"/api/ocr/{handle.job_id}/events"
            async with client.request(location) as early:
                await early.send_complete()
                await trio.testing.wait_all_tasks_blocked()
                await upload.send(body[100:])
                await upload.send_complete()
                with trio.fail_after(5):
                    await handle.done.wait()
                middle = await client.get(location)
        late = await client.get(location)
        uploaded = decode_events(upload.response_data)
        assert decode_events(early.response_data) == uploaded
        assert decode_events(await middle.get_data()) == uploaded
        assert decode_events(await late.get_data()) == uploaded
        assert app.state.open_streams == 0


async def test_metrics_count_streams_jobs_events_and_errors() -> None:
    app = make_app(admin_token="admin-secret")
    async with serving(app) as client:
        await _metrics_count(client)


async def _metrics_count(client: Any) -> None:
    await _upload(
        client, [Upload(make_image(), "a.png"), Upload(b"", "e.png"), Upload(b"x", "n.png")]
    )
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = (await response.get_data()).decode()
    assert "ocrstream_open_streams 0.0" in text
    assert "ocrstream_running_jobs 0.0" in text
    assert 'ocrstream_events_total{type="image_received"} 3.0' in text
    assert 'ocrstream_validation_errors_total{code="empty_file"} 1.0' in text
    assert 'ocrstream_validation_errors_total{code="not_an_image"} 1.0' in text
    assert "ocrstream_lagged_events 0.0" in text
    assert "ocrstream_ocr_duration_seconds_bucket" in text
