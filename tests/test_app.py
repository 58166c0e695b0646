"""The app through Quart-Trio's test client (the full ASGI path, no sockets)."""

from __future__ import annotations

import json
from typing import Any

import trio
import trio.testing

from tests.apps import BOUNDARY, MULTIPART, decode_events, make_app, serving
from tests.images import Upload, make_image, multipart_body
from tests.ordering import check_stream


async def test_healthz() -> None:
    response = await make_app().test_client().get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_upload_streams_events_with_the_spec_headers() -> None:
    app = make_app()
    body = multipart_body(
        [Upload(make_image("PNG"), "a.png", "image/png"), Upload(b"nope", "b.txt", "text/plain")],
        BOUNDARY,
    )
    async with serving(app) as client:
        await _upload_streams_events(app, client, body)


async def _upload_streams_events(app: Any, client: Any, body: bytes) -> None:
    response = await client.post("/api/ocr", data=body, headers={"Content-Type": MULTIPART})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    events = decode_events(await response.get_data())
    outcome = check_stream(events)
    assert outcome.outcomes == {0: ("valid", "PNG"), 1: ("invalid", "not_an_image")}
    assert response.headers["Location"] == f"/api/ocr/{events[0]['job_id']}"
    assert app.state.open_streams == 0
    assert app.state.job_tasks_running == 0

    snapshot = await client.get(response.headers["Location"])
    document = await snapshot.get_json()
    assert document["status"] == "complete"
    assert [f["status"] for f in document["files"]] == ["valid", "invalid"]


async def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/problem+json"
    document: dict[str, Any] = json.loads(await response.get_data())
    assert document["status"] == status
    assert document["title"]
    assert document["detail"]
    assert document["type"] == "about:blank"
    return document


async def test_refusals_are_problem_documents() -> None:
    client = make_app(max_files=1, max_file_size=100).test_client()
    not_multipart = await client.post("/api/ocr", data=b"x", headers={"Content-Type": "text/plain"})
    assert "multipart/form-data" in (await _problem(not_multipart, 415))["detail"]
    no_boundary = await client.post(
        "/api/ocr", data=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert "boundary" in (await _problem(no_boundary, 415))["detail"]
    too_big = await client.post(
        "/api/ocr",
        data=b"x",
        headers={"Content-Type": MULTIPART, "Content-Length": str(100 + 1024 * 1024 + 1)},
    )
    assert "MAX_REQUEST_SIZE" in (await _problem(too_big, 413))["detail"]
    unknown = await client.get("/api/ocr/00000000-0000-4000-8000-000000000000")
    await _problem(unknown, 404)


async def test_max_streams_answers_503_with_retry_after() -> None:
    app = make_app(max_streams=1)
    async with serving(app) as client:
        await _max_streams_answers_503(app, client)


async def _max_streams_answers_503(app: Any, client: Any) -> None:
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    async with client.request(
        "/api/ocr", method="POST", headers={"Content-Type": MULTIPART}
    ) as held:
        await held.send(body[:10])
        await trio.testing.wait_all_tasks_blocked()
        assert app.state.open_streams == 1
        busy = await client.post("/api/ocr", data=body, headers={"Content-Type": MULTIPART})
        assert "MAX_STREAMS" in (await _problem(busy, 503))["detail"]
        assert busy.headers["Retry-After"] == "1"
        await held.send(body[10:])
        await held.send_complete()
    assert check_stream(decode_events(held.response_data)).terminal == "processing_complete"
    assert app.state.open_streams == 0
    again = await client.post("/api/ocr", data=body, headers={"Content-Type": MULTIPART})
    assert again.status_code == 200


async def test_api_token_guards_every_api_route() -> None:
    async with serving(make_app(api_token="s3cret")) as client:
        await _api_token_guards(client)


async def _api_token_guards(client: Any) -> None:
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        refused = await client.post(
            "/api/ocr", data=body, headers={"Content-Type": MULTIPART, **headers}
        )
        await _problem(refused, 401)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        await _problem(await client.get("/api/ocr/x", headers=headers), 401)
        await _problem(await client.get("/api/ocr/x/events", headers=headers), 401)
    ok = await client.post(
        "/api/ocr", data=body, headers={"Content-Type": MULTIPART, "Authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 200
    assert (await client.get("/healthz")).status_code == 200


async def test_watchers_replay_resume_and_finish() -> None:
    app = make_app()
    async with serving(app) as client:
        await _replay_resume_and_finish(app, client)


async def test_streams_are_refused_while_the_app_is_not_serving() -> None:
    # Without the lifespan (Quart's bare test client) nothing writes streams: a 503 to
    # retry, never a stream that hangs, and no job is left behind.
    app = make_app(admin_token="admin")
    client = app.test_client()
    upload = await client.post(
        "/api/ocr",
        data=multipart_body([Upload(make_image(), "a.png")], BOUNDARY),
        headers={"Content-Type": MULTIPART},
    )
    assert "starting" in (await _problem(upload, 503))["detail"]
    async with serving(app) as running:
        upload = await running.post(
            "/api/ocr",
            data=multipart_body([Upload(make_image(), "a.png")], BOUNDARY),
            headers={"Content-Type": MULTIPART},
        )
        assert upload.status_code == 200
        await upload.get_data()
    for path, headers in (
        (f"{upload.headers['Location']}/events", {}),
        ("/api/events", {"Authorization": "Bearer admin"}),
    ):
        refused = await client.get(path, headers=headers)
        assert "starting" in (await _problem(refused, 503))["detail"]
    assert app.state.open_streams == 0
    assert app.state.registry.statistics().running_jobs == 0


async def _replay_resume_and_finish(app: Any, client: Any) -> None:
    body = multipart_body([Upload(make_image(), "a.png"), Upload(b"", "e.png")], BOUNDARY)
    upload = await client.post("/api/ocr", data=body, headers={"Content-Type": MULTIPART})
    uploaded = decode_events(await upload.get_data())
    location = upload.headers["Location"]
    watched = await client.get(f"{location}/events")
    assert watched.headers["Content-Type"].startswith("text/event-stream")
    assert decode_events(await watched.get_data()) == uploaded
    for seq in range(len(uploaded) - 1):
        resumed = await client.get(f"{location}/events", headers={"Last-Event-ID": str(seq)})
        assert decode_events(await resumed.get_data()) == uploaded[seq + 1 :]
        by_query = await client.get(f"{location}/events?last_event_id={seq}")
        assert decode_events(await by_query.get_data()) == uploaded[seq + 1 :]
    done = await client.get(f"{location}/events", headers={"Last-Event-ID": str(len(uploaded) - 1)})
    assert done.status_code == 204
    assert app.state.open_streams == 0


async def test_a_body_shorter_than_its_content_length_is_malformed() -> None:
    app = make_app()
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    headers = {"Content-Type": MULTIPART, "Content-Length": str(len(body) + 100)}
    async with (
        serving(app) as client,
        client.request("/api/ocr", method="POST", headers=headers) as upload,
    ):
        await upload.send(body)
        await upload.send_complete()
    events = decode_events(upload.response_data)
    assert [e["type"] for e in events] == ["processing_error"]
    assert events[0]["data"]["error"]["code"] == "malformed_request"
    assert "declared" in events[0]["data"]["error"]["message"]


async def test_readyz_is_ready_in_the_embedded_mode_until_shutdown() -> None:
    app = make_app()
    client = app.test_client()
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert await ready.get_json() == {"status": "ready"}
    app.state.shutting_down = True
    refused = await client.get("/readyz")
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.headers["Retry-After"] == "5"


async def test_readyz_is_not_ready_without_its_ocr_workers() -> None:
    # OCR configured but no lifespan ran (the bare test client): nothing would recognise.
    app = make_app(ocr_engine="fake")
    refused = await app.test_client().get("/readyz")
    assert refused.status_code == 503
    assert "OCR workers" in (await refused.get_json())["detail"]


async def test_the_kept_files_directory_goes_however_the_app_ends() -> None:
    from ocrstream.http.app import _keep_originals
    from ocrstream.service.memory.registry import JobRegistry

    registry = JobRegistry(result_ttl=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(_keep_originals, registry)
        originals = registry.originals
        assert originals is not None
        assert await originals.save("job", 0, b"bytes")
        assert originals.directory.exists()
        nursery.cancel_scope.cancel()  # the app's nursery cancelled under it
    assert registry.originals is None
    assert not originals.directory.exists()
