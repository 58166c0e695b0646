"""SPEC "Browsers on other origins" against a real Hypercorn: preflights, CORS headers,
cross-site POSTs refused before their body; and every 204's bare head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import (
    BOUNDARY,
    MULTIPART,
    StartServer,
    post_events,
    raw_request,
    read_until,
)
from tests.images import Upload, make_image, multipart_body

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.e2e

APP = "http://app.test:3000"
EVIL = "http://evil.test"
TOKEN = "cors-s3cret"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def _body() -> bytes:
    return multipart_body([Upload(make_image(), "a.png")], BOUNDARY)


def _jobs(server_app: object) -> int:
    return len(server_app.state.registry._jobs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("api_token", [None, TOKEN])
async def test_preflight_needs_no_token(
    start_server: StartServer, client: httpx.AsyncClient, api_token: str | None
) -> None:
    server = await start_server(api_token=api_token, cors_origins=APP)
    for path in ("/api/ocr", "/api/ocr/some-job/events", "/openapi.json"):
        allowed = await client.options(f"{server.url}{path}", headers={"Origin": APP, **PREFLIGHT})
        assert allowed.status_code == 204, path
        assert allowed.headers["access-control-allow-origin"] == APP
        allowed_headers = allowed.headers["access-control-allow-headers"].lower()
        for name in ("authorization", "last-event-id", "content-type"):
            assert name in allowed_headers
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "content-length" not in allowed.headers
        assert "content-type" not in allowed.headers
    # From an origin not allowed: 204 too, with no Access-Control-Allow-* at all.
    refused = await client.options(f"{server.url}/api/ocr", headers={"Origin": EVIL, **PREFLIGHT})
    assert refused.status_code == 204
    assert not [name for name in refused.headers if name.startswith("access-control-allow")]


async def test_allowed_origin_gets_cors_headers_and_location(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(cors_origins=APP)
    response, events, _ = await post_events(
        client, server.url, _body(), Origin=APP, **{"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 200
    assert events[-1]["type"] == "processing_complete"
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-expose-headers"] == "Location"
    assert "Origin" in response.headers["vary"]
    watched = await client.get(
        f"{server.url}{response.headers['location']}", headers={"Origin": APP}
    )
    assert watched.headers["access-control-allow-origin"] == APP
    other = await client.get(
        f"{server.url}{response.headers['location']}", headers={"Origin": EVIL}
    )
    assert other.status_code == 200  # readable by curl; the browser refuses it for EVIL
    assert "access-control-allow-origin" not in other.headers


async def test_star_allows_any_origin(start_server: StartServer, client: httpx.AsyncClient) -> None:
    server = await start_server(cors_origins="*")
    response, _, _ = await post_events(
        client, server.url, _body(), Origin=EVIL, **{"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": EVIL},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.127.0.0.1.test"},
        {"Origin": EVIL},  # a browser that sends no Sec-Fetch-Site
        {"Origin": "null"},
    ],
)
async def test_cross_site_post_is_refused_before_the_token(
    start_server: StartServer, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    server = await start_server(api_token=TOKEN, cors_origins=APP)
    refused = await client.post(
        f"{server.url}/api/ocr",
        content=_body(),
        headers={"Content-Type": MULTIPART, **headers},  # no token: the 403 comes first
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "cross_origin_refused"
    assert _jobs(server.app) == 0


async def test_same_origin_and_scripts_are_not_affected(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server()
    host = server.url.removeprefix("http://")
    for headers in (
        {},  # curl, scripts
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://proxy.example"},  # Host rewritten
        {"Sec-Fetch-Site": "none"},
        {"Origin": server.url, "Host": host},  # an older browser on the server's own page
    ):
        response, events, _ = await post_events(client, server.url, _body(), **headers)
        assert response.status_code == 200, headers
        assert events[-1]["type"] == "processing_complete"
        assert "access-control-allow-origin" not in response.headers
    assert _jobs(server.app) == 4


async def test_every_204_has_a_bare_head(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(cors_origins=APP)
    _, events, _ = await post_events(client, server.url, _body())
    job, last = events[0]["job_id"], events[-1]["seq"]
    for request_head in (
        f"GET /api/ocr/{job}/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {last}\r\n\r\n",
        f"OPTIONS /api/ocr HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n"
        "Access-Control-Request-Method: POST\r\n\r\n",
    ):
        stream = await raw_request(server.port, request_head.encode())
        async with stream:
            raw_head = (await read_until(stream, b"\r\n\r\n")).lower()
        assert raw_head.startswith(b"http/1.1 204 ")
        names = {line.split(b":", 1)[0] for line in raw_head.split(b"\r\n")[1:] if line}
        assert b"content-length" not in names
        assert b"content-type" not in names
