"""Ordering rules 1-7 over instances and workers (Hypothesis, real Redis).

Generated mixes of single images, multi-page TIFFs and PDFs (some pages failing, some
files invalid) are uploaded to one of two instances whose pages go to the cluster's
queue, taken by the OCR slots of both (real ``ocrstream serve`` processes); the stream is checked against the SPEC's rules on
the uploader's side, and the other instance must send the very same bytes (rule 7).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import pdfs
from tests.e2e.conftest import BOUNDARY, MULTIPART, decode_stream, post_raw
from tests.e2e.served import serve_in_subprocess
from tests.images import Upload, multipart_body, scripted_png, scripted_tiff
from tests.ordering import check_stream
from tests.redis_server import REDIS_SERVER, RedisServer, requires_redis
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.e2e, requires_redis]


@dataclass(frozen=True)
class _Instance:
    url: str


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Instance, _Instance]]:
    """A private redis-server and two ``ocrstream serve`` processes on it (one OCR slot
    each, sharing one queue), for every example of the module; stopped after."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(directory)
    redis.start()
    settings = {
        "OCRSTREAM_REDIS_URL": redis.url,
        "OCRSTREAM_OCR_ENGINE": "fake",
        "OCRSTREAM_OCR_WORKERS": "1",
        "OCRSTREAM_MAX_PAGES": "5",
    }
    try:
        with (
            serve_in_subprocess(settings, log=directory / "a.log") as a,
            serve_in_subprocess(settings, log=directory / "b.log") as b,
        ):
            yield _Instance(a), _Instance(b)
    finally:
        redis.stop()


@st.composite
def _uploads(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    files = []
    for index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["png", "tiff", "pdf", "junk"]))
        pages = 1 if kind in {"png", "junk"} else draw(st.integers(1, 3))
        texts = [
            "FAIL" if draw(st.integers(0, 4)) == 0 else f"file {index} page {page}"
            for page in range(pages)
        ]
        files.append((kind, texts))
    return files


def _part(index: int, kind: str, texts: list[str]) -> Upload:
    if kind == "tiff":
        return Upload(scripted_tiff(texts), f"{index}.tif")
    if kind == "pdf":
        layout = tuple(pdfs.TextPage(size=(200, 100), lines=((10, 40, text),)) for text in texts)
        return Upload(pdfs.born_digital(layout), f"{index}.pdf")
    if kind == "junk":
        return Upload(b"not an image at all", f"{index}.png")
    return Upload(scripted_png(texts[0]), f"{index}.png")


@settings(
    max_examples=12,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=_uploads(), upload_on_b=st.booleans(), recognise=st.booleans())
async def test_ordering_holds_whichever_instance_and_worker_did_the_work(
    cluster: tuple[_Instance, _Instance],
    files: list[tuple[str, list[str]]],
    upload_on_b: bool,
    recognise: bool,
) -> None:
    # Each example runs in a Trio run of its own: its client is made in it (the servers
    # are processes, outside any run).
    async with httpx.AsyncClient(timeout=60) as client:
        await _check_example(client, cluster, files, upload_on_b=upload_on_b, recognise=recognise)


async def _check_example(
    client: httpx.AsyncClient,
    cluster: tuple[_Instance, _Instance],
    files: list[tuple[str, list[str]]],
    *,
    upload_on_b: bool,
    recognise: bool,
) -> None:
    a, b = cluster
    uploader, other = (b, a) if upload_on_b else (a, b)
    parts = [_part(index, kind, texts) for index, (kind, texts) in enumerate(files)]
    query = "pdf_text=ocr" if recognise else "pdf_text=auto"
    raw = await post_raw(client, uploader.url, multipart_body(parts, BOUNDARY), query=query)
    events = decode_stream(raw)
    outcome = check_stream(events, ocr=True)
    assert outcome.terminal == "processing_complete"
    for index, (kind, texts) in enumerate(files):
        if kind == "junk":
            assert outcome.outcomes[index] == ("invalid", "not_an_image")
            continue
        failing = any("FAIL" in text for text in texts) and (kind != "pdf" or recognise)
        assert outcome.ocr[index] == ("ocr_failed" if failing else "ok"), (index, kind, texts)
    watched = await client.get(f"{other.url}/api/ocr/{events[0]['job_id']}/events")
    assert watched.content == raw, "the other instance sends the same bytes (rule 7)"


async def test_the_cluster_fixture_uses_both_slots(
    cluster: tuple[_Instance, _Instance], client: httpx.AsyncClient
) -> None:
    a, _b = cluster
    parts = [Upload(scripted_png(f"SLEEP:0.3 PID {index}"), f"{index}.png") for index in range(4)]
    async with client.stream(
        "POST",
        f"{a.url}/api/ocr",
        content=multipart_body(parts, BOUNDARY),
        headers={"Content-Type": MULTIPART},
    ) as response:
        raw = await response.aread()
    events: list[dict[str, Any]] = [json.loads(m.data) for m in SSEDecoder().feed(raw)]
    pids = {
        event["data"]["text"].split()[1] for event in events if event["type"] == "image_ocr_success"
    }
    assert len(pids) == 2, "one instance's job is read by both instances' slots"
