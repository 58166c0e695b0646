"""Several instances sharing one real Redis: any instance serves any job.

Two ``ocrstream serve`` apps in the test's process (each its own Hypercorn on a loopback
port, its own registry, fan-out and OCR workers) and a private redis-server (the
``redis_server`` fixture): an upload on A is watched on B from every resume point with
the very bytes A's uploader got; B's snapshot and exports equal A's; both firehoses carry
every job of both under one numbering; finished jobs outlive the instance that ran them
and expire from Redis after RESULT_TTL; a lost Redis makes instances not ready and they
come back by themselves.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
import trio

from tests.e2e.conftest import BOUNDARY, MULTIPART, decode_stream, post_raw
from tests.e2e.served import open_listening_process
from tests.images import Upload, multipart_body, scripted_png
from tests.ordering import check_stream
from tests.redis_server import RedisServer, redis_server, requires_redis
from tests.sse_reading import SSEDecoder
from tests.waiting import wait_until

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import LiveServer, StartServer

pytestmark = [pytest.mark.e2e, requires_redis]
__all__ = ["redis_server"]

ADMIN = "admin-token"


async def _instance(start_server: StartServer, redis: RedisServer, **overrides: Any) -> LiveServer:
    values: dict[str, Any] = {
        "redis_url": redis.url,
        "ocr_engine": "fake",
        "ocr_workers": 1,
        "admin_token": ADMIN,
    }
    values.update(overrides)
    server = await start_server(**values)
    store = server.app.state.store
    assert store is not None
    await wait_until(lambda: store.ready, timeout=10, what="the store ready")
    return server


async def _upload(client: httpx.AsyncClient, server: LiveServer, parts: list[Upload]) -> bytes:
    """POST and read the whole stream's raw bytes."""
    return await post_raw(client, server.url, multipart_body(parts, BOUNDARY))


def _frames(raw: bytes) -> list[bytes]:
    return [frame + b"\n\n" for frame in raw.split(b"\n\n") if frame and not frame.startswith(b":")]


async def test_a_job_uploaded_on_a_is_served_on_b_byte_for_byte(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server)
    b = await _instance(start_server, redis_server)
    raw = await _upload(
        client,
        a,
        [Upload(scripted_png("Invoice 42\nTotal 9.99"), "invoice.png"), Upload(b"x", "bad.png")],
    )
    events = decode_stream(raw)
    check_stream(events, ocr=True)
    job_id = events[0]["job_id"]
    frames = _frames(raw)
    assert len(frames) == len(events)
    # From every resume point, B sends exactly the frames A's uploader got after it.
    for after in [None, *range(len(events) - 1)]:
        headers = {} if after is None else {"Last-Event-ID": str(after)}
        watched = await client.get(f"{b.url}/api/ocr/{job_id}/events", headers=headers)
        assert watched.status_code == 200
        start = 0 if after is None else after + 1
        assert _frames(watched.content) == frames[start:], f"resume after {after}"
    past_end = await client.get(
        f"{b.url}/api/ocr/{job_id}/events", headers={"Last-Event-ID": str(len(events) - 1)}
    )
    assert past_end.status_code == 204
    snapshot_a = (await client.get(f"{a.url}/api/ocr/{job_id}")).json()
    snapshot_b = (await client.get(f"{b.url}/api/ocr/{job_id}")).json()
    assert snapshot_b == snapshot_a
    assert snapshot_b["status"] == "complete"
    text = await client.get(f"{b.url}/api/ocr/{job_id}/files/0?format=txt")
    assert text.status_code == 200
    assert text.text == "Invoice 42\nTotal 9.99"
    document = (await client.get(f"{b.url}/api/ocr/{job_id}/files/0")).json()
    assert document["pages"][0]["lines"][1]["words"][1]["text"] == "9.99"
    pdf = await client.get(f"{b.url}/api/ocr/{job_id}/files/0?format=pdf")
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")
    failed = await client.get(f"{b.url}/api/ocr/{job_id}/files/1?format=txt")
    assert (failed.status_code, failed.json()["code"]) == (422, "not_an_image")
    unknown = await client.get(f"{b.url}/api/ocr/00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404


async def test_a_watcher_on_b_follows_a_running_job_live(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server)
    b = await _instance(start_server, redis_server)
    watched: list[bytes] = []
    raw = b""
    located = trio.Event()
    job_id = ""

    async def upload() -> None:
        nonlocal raw, job_id
        parts = [
            Upload(scripted_png(f"SLEEP:0.3 page {index}"), f"{index}.png") for index in range(3)
        ]
        async with client.stream(
            "POST",
            f"{a.url}/api/ocr",
            content=multipart_body(parts, BOUNDARY),
            headers={"Content-Type": MULTIPART},
        ) as response:
            # As a client learns it: from the head of the upload's response.
            job_id = response.headers["Location"].rsplit("/", 1)[1]
            located.set()
            raw = await response.aread()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload)
        await located.wait()
        async with client.stream("GET", f"{b.url}/api/ocr/{job_id}/events") as stream:
            assert stream.status_code == 200
            async for chunk in stream.aiter_raw():
                watched.append(chunk)
    assert b"".join(watched) == raw
    assert len(watched) > 1, "the watcher on B got the job's events as they happened"


async def test_the_firehose_of_every_instance_has_every_job_under_one_numbering(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server)
    b = await _instance(start_server, redis_server)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    seen: dict[str, list[tuple[str | None, str]]] = {"a": [], "b": []}

    async def follow(name: str, server: LiveServer, cancel: trio.CancelScope) -> None:
        decoder = SSEDecoder()
        with cancel:
            async with client.stream("GET", f"{server.url}/api/events", headers=admin) as stream:
                async for chunk in stream.aiter_raw():
                    for message in decoder.feed(chunk):
                        seen[name].append((message.id, message.data))

    scopes = {"a": trio.CancelScope(), "b": trio.CancelScope()}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow, "a", a, scopes["a"])
        nursery.start_soon(follow, "b", b, scopes["b"])
        await wait_until(lambda: a.app.state.open_streams == 1 and b.app.state.open_streams == 1)
        job_a = decode_stream(await _upload(client, a, [Upload(scripted_png("on a"), "a.png")]))
        job_b = decode_stream(await _upload(client, b, [Upload(scripted_png("on b"), "b.png")]))
        total = len(job_a) + len(job_b)
        await wait_until(lambda: len(seen["a"]) >= total and len(seen["b"]) >= total, timeout=10)
        for scope in scopes.values():
            scope.cancel()
    assert seen["a"] == seen["b"], "the same frames with the same ids on both"
    ids = [int(frame_id) for frame_id, _ in seen["a"] if frame_id is not None]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "one increasing numbering"
    jobs = {json.loads(data)["job_id"] for _, data in seen["a"]}
    assert jobs == {job_a[0]["job_id"], job_b[0]["job_id"]}


async def test_an_instance_puts_its_own_events_into_its_firehose_without_the_tail(
    start_server: StartServer,
    client: httpx.AsyncClient,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its own firehose readers get its events straight after the append, not after the
    # trip back through Redis: with its tail of the shared firehose seeing nothing, they
    # still arrive, numbered as in Redis.
    a = await _instance(start_server, redis_server)
    store = a.app.state.store
    assert store is not None
    # A first job, with the tail at work: the firehose's numbering starts (its first id
    # is seeded from the clock, so only the tail can bring the very first event).
    first = decode_stream(await _upload(client, a, [Upload(scripted_png("one"), "1.png")]))
    ring = a.app.state.broadcaster
    await wait_until(lambda: ring.next_id - ring.first_id >= len(first), what="the tail")
    stalled = trio.Event()

    async def stalled_tail(*args: object, **kwargs: object) -> list[object]:
        stalled.set()
        await trio.sleep(0.5)
        return []  # a tail that sees nothing (as if far behind), but answers

    monkeypatch.setattr(store.log, "firehose_after", stalled_tail)
    with trio.fail_after(10):
        await stalled.wait()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    seen: list[str | None] = []
    async with trio.open_nursery() as nursery:

        async def follow() -> None:
            decoder = SSEDecoder()
            async with client.stream("GET", f"{a.url}/api/events", headers=admin) as stream:
                async for chunk in stream.aiter_raw():
                    seen.extend(message.id for message in decoder.feed(chunk))

        nursery.start_soon(follow)
        await wait_until(lambda: a.app.state.open_streams == 1)
        before = store.firehose_direct
        events = decode_stream(await _upload(client, a, [Upload(scripted_png("own"), "o.png")]))
        await wait_until(lambda: len(seen) == len(events), timeout=10)
        nursery.cancel_scope.cancel()
    assert store.firehose_direct - before == len(events)
    ids = [int(frame_id) for frame_id in seen if frame_id is not None]
    assert ids == list(range(ids[0], ids[0] + len(events)))
    newest = await store.client.xrevrange("ocrstream:firehose", count=1)
    assert newest[0].identifier == f"{ids[-1]}-0".encode()


async def test_finished_jobs_outlive_their_instance_then_expire_from_redis(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server, result_ttl=3)
    raw = await _upload(client, a, [Upload(scripted_png("kept"), "k.png")])
    job_id = decode_stream(raw)[0]["job_id"]
    a.shutdown.set()
    scope = a.app.state.store_scope
    assert scope is not None
    await wait_until(lambda: scope.cancel_called, timeout=20, what="instance A stopped")
    c = await _instance(start_server, redis_server, result_ttl=3)
    watched = await client.get(f"{c.url}/api/ocr/{job_id}/events")
    assert _frames(watched.content) == _frames(raw)
    assert (await client.get(f"{c.url}/api/ocr/{job_id}/files/0?format=txt")).text == "kept"
    keys = await _keys(redis_server)
    assert any(job_id in name for name in keys)
    await trio.sleep(3.5)
    assert not [name for name in await _keys(redis_server) if job_id in name]


async def test_a_lost_redis_makes_instances_not_ready_until_it_is_back(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server)
    assert (await client.get(f"{a.url}/readyz")).status_code == 200
    redis_server.stop()
    store = a.app.state.store
    assert store is not None
    await wait_until(lambda: not store.ready, timeout=10, what="the store lost")
    ready = await client.get(f"{a.url}/readyz")
    assert ready.status_code == 503
    assert "Retry-After" in ready.headers
    assert (await client.get(f"{a.url}/healthz")).status_code == 200
    refused = await client.post(
        f"{a.url}/api/ocr",
        content=multipart_body([Upload(scripted_png("x"), "x.png")], BOUNDARY),
        headers={"Content-Type": MULTIPART},
    )
    assert refused.status_code == 503
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "Retry-After" in refused.headers
    redis_server.start()
    await wait_until(lambda: store.ready, timeout=15, what="the store back")
    assert (await client.get(f"{a.url}/readyz")).status_code == 200
    events = decode_stream(await _upload(client, a, [Upload(scripted_png("again"), "x.png")]))
    assert events[-1]["type"] == "processing_complete"


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    return (await client.get(url)).status_code != 503


async def _keys(redis: RedisServer) -> list[str]:
    from ocrstream.service.redis.connection import open_redis

    async with open_redis(redis.url) as connection:
        return [name.decode() for name in await connection.keys("ocrstream:*")]


async def test_watchers_of_a_lost_instance_get_instance_lost_within_its_lease(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer, tmp_path: Any
) -> None:
    b = await _instance(start_server, redis_server, instance_lease=1)
    env = {
        "OCRSTREAM_REDIS_URL": redis_server.url,
        "OCRSTREAM_OCR_ENGINE": "fake",
        "OCRSTREAM_OCR_WORKERS": "1",
        "OCRSTREAM_INSTANCE_LEASE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "ocrstream",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("OCRSTREAM_")} | env
    async with open_listening_process(command, env=process_env, log=tmp_path / "a.log") as a:
        body = multipart_body([Upload(scripted_png("SLEEP:60 never"), "slow.png")], BOUNDARY)
        async with client.stream(
            "POST", f"{a.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
        ) as upload:
            job_id = upload.headers["Location"].rsplit("/", 1)[1]
            events: list[dict[str, Any]] = []
            decoder = SSEDecoder()
            # A store call slower than 2 s on a loaded machine answers 503: retry, as
            # Retry-After tells a client to.
            await wait_until(
                partial(_answers, client, f"{b.url}/api/ocr/{job_id}"), timeout=20, what="B"
            )
            async with client.stream("GET", f"{b.url}/api/ocr/{job_id}/events") as watch:
                assert watch.status_code == 200, await watch.aread()
                chunks = watch.aiter_raw()
                # The watcher on B has the job's first events, then A dies.
                async for chunk in chunks:
                    events.extend(json.loads(m.data) for m in decoder.feed(chunk))
                    if any(event["type"] == "image_ocr_start" for event in events):
                        break
                os.kill(a.pid, signal.SIGKILL)
                killed_at = trio.current_time()
                async for chunk in chunks:
                    events.extend(json.loads(m.data) for m in decoder.feed(chunk))
                lost_after = trio.current_time() - killed_at
    outcome = check_stream(events, ocr=False)
    assert outcome.error_code == "instance_lost"
    assert lost_after < 1 + 2 + 1, f"instance_lost after {lost_after:.1f} s (lease 1 s + 2 s)"
    snapshot = (await client.get(f"{b.url}/api/ocr/{job_id}")).json()
    assert snapshot["status"] == "failed"
    assert snapshot["error"]["code"] == "instance_lost"


async def test_running_jobs_end_with_store_unavailable_after_upload_timeout(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server, upload_timeout=2)
    body = multipart_body([Upload(scripted_png("SLEEP:60 never"), "slow.png")], BOUNDARY)
    events: list[dict[str, Any]] = []
    decoder = SSEDecoder()
    async with client.stream(
        "POST", f"{a.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
    ) as upload:
        chunks = upload.aiter_raw()
        async for chunk in chunks:
            events.extend(json.loads(m.data) for m in decoder.feed(chunk))
            if any(event["type"] == "image_ocr_start" for event in events):
                break
        redis_server.stop()
        stopped_at = trio.current_time()
        async for chunk in chunks:
            events.extend(json.loads(m.data) for m in decoder.feed(chunk))
        waited = trio.current_time() - stopped_at
    outcome = check_stream(events, ocr=False)
    assert outcome.error_code == "store_unavailable"
    assert 2 <= waited < 2 + 5, f"ended {waited:.1f} s after the store went (UPLOAD_TIMEOUT 2 s)"
    await a.wait_idle()
    ocr = a.app.state.ocr
    assert ocr is not None
    assert ocr.statistics().busy == 0, "the job's OCR was cancelled"
    redis_server.start()
    store = a.app.state.store
    assert store is not None
    await wait_until(lambda: store.ready, timeout=15, what="the store back")
    # Redis came back empty: the job is unknown there now.
    gone = await client.get(f"{a.url}/api/ocr/{events[0]['job_id']}")
    assert gone.status_code in {200, 404}


async def test_a_paused_redis_is_unreachable_and_service_resumes_with_it(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server, instance_lease=1)
    b = await _instance(start_server, redis_server, instance_lease=1)
    redis_server.pause()
    try:
        store = a.app.state.store
        assert store is not None
        await wait_until(lambda: not store.ready, timeout=10, what="the paused store noticed")
        assert (await client.get(f"{a.url}/readyz")).status_code == 503
        await trio.sleep(1.5)  # longer than the instances' leases
    finally:
        redis_server.resume()
    for server in (a, b):
        server_store = server.app.state.store
        assert server_store is not None
        await wait_until(lambda s=server_store: s.ready, timeout=15, what="the store back")
    # Neither instance took the other for lost: both serve and watch each other's jobs.
    raw = await _upload(client, a, [Upload(scripted_png("after the pause"), "p.png")])
    events = decode_stream(raw)
    assert events[-1]["type"] == "processing_complete"
    watched = await client.get(f"{b.url}/api/ocr/{events[0]['job_id']}/events")
    assert _frames(watched.content) == _frames(raw)


async def test_an_export_whose_store_read_times_out_answers_503_and_then_works(
    start_server: StartServer,
    client: httpx.AsyncClient,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Redis stops answering after B last checked it: B's read of A's stored pages times
    # out (2 s) and the export is refused as SPEC says (503, Retry-After), not a 500.
    a = await _instance(start_server, redis_server)
    b = await _instance(start_server, redis_server)
    events = decode_stream(await _upload(client, a, [Upload(scripted_png("Kept 5"), "k.png")]))
    url = f"{b.url}/api/ocr/{events[0]['job_id']}"
    assert (await client.get(url)).status_code == 200  # B mirrors the job now
    redis_server.pause()
    try:
        refused = await client.get(f"{url}/files/0?format=txt")
    finally:
        redis_server.resume()
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "2"
    assert refused.json()["code"] == "service_busy"
    assert f"reading file 0 of job {events[0]['job_id']}: the store did not answer" in caplog.text
    store = b.app.state.store
    assert store is not None
    await wait_until(lambda: store.ready, timeout=15, what="the store back")
    answered = await client.get(f"{url}/files/0?format=txt")
    assert (answered.status_code, answered.text) == (200, "Kept 5")


async def test_a_password_in_redis_url_is_used_and_never_shown(
    start_server: StartServer,
    client: httpx.AsyncClient,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    guarded = RedisServer(tmp_path, password="hunter2-secret")
    guarded.start()
    try:
        a = await _instance(start_server, guarded)
        events = decode_stream(await _upload(client, a, [Upload(scripted_png("pw"), "p.png")]))
        assert events[-1]["type"] == "processing_complete"
        metrics = (await client.get(f"{a.url}/metrics")).text
        assert "ocrstream_store_ready 1.0" in metrics
        guarded.stop()
        store = a.app.state.store
        assert store is not None
        await wait_until(lambda: not store.ready, timeout=10, what="the store lost")
        shown = [
            (await client.get(f"{a.url}/metrics")).text,
            (await client.get(f"{a.url}/readyz")).text,
            (await client.get(f"{a.url}/openapi.json")).text,
            caplog.text,
            repr(a.app.state.settings),
        ]
        assert "redis://:***@127.0.0.1" in caplog.text, "the store's failure is logged"
        assert not [text for text in shown if "hunter2" in text]
    finally:
        guarded.stop()


async def test_two_instances_share_a_redis_over_tls(
    start_server: StartServer, client: httpx.AsyncClient, tmp_path: Any
) -> None:
    # rediss:// with the private CA named in the URL (ssl_ca_certs; SSL_CERT_FILE works
    # too): the queue, the events, the results and the firehose all go over TLS.
    secure = RedisServer(tmp_path, password="tls-secret", tls=True)
    secure.start()
    try:
        a = await _instance(start_server, secure)
        b = await _instance(start_server, secure, ocr_workers=0)
        raw = await _upload(client, a, [Upload(scripted_png("Over TLS 7.50"), "t.png")])
        events = decode_stream(raw)
        check_stream(events, ocr=True)
        job_id = events[0]["job_id"]
        watched = await client.get(f"{b.url}/api/ocr/{job_id}/events")
        assert _frames(watched.content) == _frames(raw)
        text = await client.get(f"{b.url}/api/ocr/{job_id}/files/0?format=txt")
        assert text.text == "Over TLS 7.50"
        # b has no workers: a page uploaded there is read by a's slot, over TLS too.
        on_b = decode_stream(await _upload(client, b, [Upload(scripted_png("B"), "b.png")]))
        assert on_b[-1]["type"] == "processing_complete"
    finally:
        secure.stop()


async def test_instances_without_workers_have_their_pages_read_by_ocrstream_worker(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer, tmp_path: Any
) -> None:
    a = await _instance(start_server, redis_server, ocr_workers=0)
    b = await _instance(start_server, redis_server, ocr_workers=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRSTREAM_")} | {
        "OCRSTREAM_REDIS_URL": redis_server.url,
        "OCRSTREAM_OCR_ENGINE": "fake",
        "OCRSTREAM_OCR_WORKERS": "2",
    }
    command = [sys.executable, "-m", "ocrstream", "worker", "--metrics-port", "{port}"]
    async with open_listening_process(command, env=env, log=tmp_path / "worker.log") as worker:
        assert (await client.get(f"{worker.url}/healthz")).status_code == 200
        parts = [
            Upload(scripted_png(f"SLEEP:0.3 PID {index}"), f"{index}.png") for index in range(4)
        ]
        raw = await _upload(client, a, parts)
        events = decode_stream(raw)
        outcome = check_stream(events, ocr=True)
        assert outcome.ocr == dict.fromkeys(range(4), "ok")
        pids = {
            event["data"]["text"].split()[1]
            for event in events
            if event["type"] == "image_ocr_success"
        }
        assert len(pids) == 2, "one job's pages spread over both of the worker's processes"
        watched = await client.get(f"{b.url}/api/ocr/{events[0]['job_id']}/events")
        assert _frames(watched.content) == _frames(raw)
        metrics = (await client.get(f"{worker.url}/metrics")).text
        assert "ocrstream_worker_units_done" in metrics
    leftovers = [name for name in await _keys(redis_server) if ":unit:" in name or ":file:" in name]
    assert leftovers == []


async def test_a_stopped_instance_leaves_the_cluster_and_is_not_reported_lost(
    start_server: StartServer,
    client: httpx.AsyncClient,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = await _instance(start_server, redis_server, instance_lease=1)
    b = await _instance(start_server, redis_server, instance_lease=1)
    store_a = a.app.state.store
    assert store_a is not None
    events = decode_stream(await _upload(client, a, [Upload(scripted_png("bye"), "b.png")]))
    a.shutdown.set()
    scope = a.app.state.store_scope
    assert scope is not None
    await wait_until(lambda: scope.cancel_called, timeout=20, what="A stopped")
    assert store_a.instance_id.encode() not in await _members(redis_server)
    await trio.sleep(3)  # past A's lease and a sweep of B's
    assert "was lost" not in caplog.text
    watched = await client.get(f"{b.url}/api/ocr/{events[0]['job_id']}/events")
    assert decode_stream(watched.content)[-1]["type"] == "processing_complete"


async def _members(redis: RedisServer) -> set[bytes]:
    from ocrstream.service.redis.connection import open_redis

    async with open_redis(redis.url) as connection:
        return set(await connection.smembers("ocrstream:instances"))


async def test_pages_fail_when_no_worker_runs_anywhere(
    start_server: StartServer, client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    a = await _instance(start_server, redis_server, ocr_workers=0, ocr_lease=1)
    started = trio.current_time()
    events = decode_stream(await _upload(client, a, [Upload(scripted_png("nobody"), "n.png")]))
    waited = trio.current_time() - started
    outcome = check_stream(events, ocr=True)
    assert outcome.ocr == {0: "ocr_failed"}
    error = next(e["data"]["error"] for e in events if e["type"] == "image_ocr_error")
    assert "no OCR worker" in error["message"]
    assert waited < 20
    await trio.sleep(0.5)
    assert not [name for name in await _keys(redis_server) if ":unit:" in name]
