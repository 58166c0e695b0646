"""Through a real nginx, configured with README's server block (see nginx.py)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.conftest import (
    MULTIPART,
    LiveServer,
    StartServer,
    head,
    post_events,
    raw_request,
    read_until,
)
from tests.e2e.nginx import NGINX, open_nginx
from tests.images import Upload, multipart_body, noisy_png, scripted_png
from tests.ordering import check_stream
from tests.sse_reading import SSEDecoder

if not Path(NGINX).exists():
    pytest.skip(f"{NGINX} is missing (apt-get install nginx)", allow_module_level=True)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def _timestamp(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


async def test_large_uploads_complete(
    server: LiveServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    photo = noisy_png((1800, 1800), seed=1)  # ~9.7 MB: a phone photo's worth and more
    assert len(photo) > 9_500_000
    many = [Upload(noisy_png((400, 400), seed), f"page-{seed}.png") for seed in range(20)]
    assert all(len(upload.data) > 450_000 for upload in many)
    async with open_nginx(server.port, tmp_path / "nginx") as url:
        for parts in ([Upload(photo, "photo.png")], many):
            response, events, _ = await post_events(http, url, multipart_body(parts))
            assert response.status_code == 200
            summary = check_stream(events)
            assert summary.terminal == "processing_complete"
            assert events[-1]["data"]["valid_count"] == len(parts)
            assert events[0]["data"]["total_bytes"] == sum(len(p.data) for p in parts)
    await server.wait_idle()


async def test_events_arrive_live(
    start_server: StartServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    parts = [Upload(scripted_png(f"file {i} SLEEP:0.4"), f"{i}.png") for i in range(3)]
    received: list[tuple[float, dict[str, Any]]] = []
    async with open_nginx(server.port, tmp_path / "nginx") as url:
        decoder = SSEDecoder()
        async with http.stream(
            "POST",
            f"{url}/api/ocr",
            content=multipart_body(parts),
            headers={"Content-Type": MULTIPART},
        ) as response:
            async for chunk in response.aiter_raw():
                for message in decoder.feed(chunk):
                    received.append((time.time(), json.loads(message.data)))
    events = [event for _, event in received]
    assert check_stream(events, ocr=True).terminal == "processing_complete"
    successes = [(at, e) for at, e in received if e["type"] == "image_ocr_success"]
    assert len(successes) == 3
    first_arrival = successes[0][0]
    last_done = _timestamp(successes[-1][1])  # when the server had the last file's text
    # nginx passed the first result on while the last file was still being recognised.
    assert first_arrival < last_done
    await server.wait_idle()


async def test_a_client_that_leaves_cancels_its_job(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    body = multipart_body([Upload(scripted_png("SLEEP:30"), "slow.png")])
    async with open_nginx(server.port, tmp_path / "nginx") as url:
        port = int(url.rsplit(":", 1)[1])
        stream = await raw_request(port, head(len(body)), body)
        async with stream:  # leaves once its file's OCR has started
            await read_until(stream, b"image_ocr_start")
        # The client is gone: nginx closes its upstream connection, the job is cancelled.
        await server.wait_idle(timeout=20)
    (handle,) = server.app.state.registry._jobs.values()
    assert handle.record.snapshot()["status"] == "cancelled"
    assert handle.record.history[-1].event.error.code == "client_disconnected"  # type: ignore[union-attr]


async def test_a_watcher_resumes_with_last_event_id(
    server: LiveServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = multipart_body([Upload(noisy_png((40, 40), i), f"{i}.png") for i in range(2)])
    async with open_nginx(server.port, tmp_path / "nginx") as url:
        response, uploaded, _ = await post_events(http, url, body)
        location = response.headers["location"]
        resumed = await http.get(f"{url}{location}/events", headers={"Last-Event-ID": "2"})
        assert resumed.status_code == 200
        documents = [json.loads(m.data) for m in SSEDecoder().feed(resumed.content)]
        assert documents == uploaded[3:]
        last = str(uploaded[-1]["seq"])
        done = await http.get(f"{url}{location}/events", headers={"Last-Event-ID": last})
        assert done.status_code == 204
        assert done.content == b""
