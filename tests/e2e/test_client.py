"""The Python client and the ``ocrstream submit``/``watch`` commands against a live server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import aclosing
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from ocrstream.client.client import JobFailed, OCRStreamClient, ProblemError, Upload
from tests.e2e.served import serve_in_subprocess
from tests.images import scripted_png
from tests.ordering import check_stream
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from pathlib import Path

    from tests.e2e.conftest import LiveServer, StartServer

pytestmark = pytest.mark.e2e

FILES: list[Upload] = [
    ("invoice.png", scripted_png("Invoice 42\nTotal 9.99"), "image/png"),
    ("bad.png", b"nope"),
]


@pytest.fixture
async def ocr_server(start_server: StartServer) -> LiveServer:
    return await start_server(ocr_engine="fake", ocr_workers=1, api_token="s3cret", max_parts=5)


async def test_client_events_equal_the_raw_stream(ocr_server: LiveServer) -> None:
    async with (
        OCRStreamClient(ocr_server.url, token="s3cret") as client,
        aclosing(client.submit(FILES)) as events,
    ):
        typed = [envelope async for envelope in events]
    documents = [json.loads(envelope.to_json()) for envelope in typed]
    check_stream(documents, ocr=True)
    # The same job's stream read raw (plain HTTP, our own SSE parsing) is identical.
    job = typed[0].job_id
    async with httpx.AsyncClient(timeout=30) as http:
        raw = await http.get(
            f"{ocr_server.url}/api/ocr/{job}/events", headers={"Authorization": "Bearer s3cret"}
        )
    messages = SSEDecoder().feed(raw.content)
    assert [json.loads(message.data) for message in messages] == documents
    assert [message.id for message in messages] == [str(e.seq) for e in typed]


async def test_recognize_returns_per_file_results(ocr_server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(scripted_png("Hello"))
    async with OCRStreamClient(ocr_server.url, token="s3cret") as client:
        result = await client.recognize([*FILES, path])
        assert [f.file_name for f in result.files] == ["invoice.png", "bad.png", "scan.png"]
        assert result.files[0].text == "Invoice 42\nTotal 9.99"
        lines = result.files[0].lines
        assert lines is not None
        assert lines[1]["text"] == "Total 9.99"
        assert result.files[1].valid is False
        assert result.files[1].error_code == "not_an_image"
        assert result.files[2].text == "Hello"
        watched = [e async for e in client.watch(result.job_id, last_event_id=2)]
        assert [e.seq for e in watched] == list(range(3, len(result.events)))


async def test_errors_surface_as_exceptions_with_the_problem(ocr_server: LiveServer) -> None:
    async with OCRStreamClient(ocr_server.url, token="wrong") as client:
        with pytest.raises(ProblemError) as refused:
            await client.recognize(FILES)
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert "Bearer" in refused.value.detail
    async with OCRStreamClient(ocr_server.url, token="s3cret") as client:
        with pytest.raises(ProblemError) as missing:
            async for _ in client.watch("00000000-0000-4000-8000-000000000000"):
                pass
        assert missing.value.status == 404
        with pytest.raises(JobFailed) as failed:
            await client.recognize([("empty.png", b"")] * 6, ocr=False)
    assert failed.value.code == "too_many_parts"
    assert "MAX_PARTS" in failed.value.message


def test_the_client_works_under_asyncio(tmp_path: Path) -> None:
    async def scenario(url: str) -> str | None:
        async with OCRStreamClient(url) as client:
            result = await client.recognize(FILES[:1])
        return result.files[0].text

    settings = {"OCRSTREAM_OCR_ENGINE": "fake", "OCRSTREAM_OCR_WORKERS": "1"}
    with serve_in_subprocess(settings, log=tmp_path / "serve.log") as url:
        assert asyncio.run(scenario(url)) == "Invoice 42\nTotal 9.99"


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrstream", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return await trio.to_thread.run_sync(_run_cli, list(args))


async def test_submit_prints_text_and_exit_codes(ocr_server: LiveServer, tmp_path: Path) -> None:
    good, bad = tmp_path / "invoice.png", tmp_path / "bad.png"
    good.write_bytes(scripted_png("Invoice 42\nTotal 9.99"))
    bad.write_bytes(b"nope")
    base = ["--url", ocr_server.url, "--token", "s3cret"]
    ok = await _cli("submit", str(good), *base)
    assert ok.returncode == 0, ok.stderr
    assert "Invoice 42\nTotal 9.99" in ok.stdout
    mixed = await _cli("submit", str(good), str(bad), *base, "--json")
    assert mixed.returncode == 1
    events = [json.loads(line) for line in mixed.stdout.splitlines()]
    outcome = check_stream(events, ocr=True)
    assert outcome.outcomes[1] == ("invalid", "not_an_image")
    no_ocr = await _cli("submit", str(good), *base, "--no-ocr", "--json")
    assert no_ocr.returncode == 0
    assert "image_ocr" not in no_ocr.stdout
    refused = await _cli("submit", str(good), "--url", ocr_server.url)
    assert refused.returncode == 4
    assert "401" in refused.stdout + refused.stderr
    missing = await _cli("submit", str(tmp_path / "nope.png"), *base)
    assert missing.returncode == 2
    unreachable = await _cli("submit", str(good), "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 5
    job = events[0]["job_id"]
    watched = await _cli("watch", job, *base, "--json")
    assert watched.returncode == 1
    assert [json.loads(line) for line in watched.stdout.splitlines()] == events


async def test_the_client_exports_a_recognised_file(ocr_server: LiveServer) -> None:
    async with OCRStreamClient(ocr_server.url, token="s3cret") as client:
        result = await client.recognize(FILES)
        text = await client.export(result.job_id, 0, "txt")
        assert text == b"Invoice 42\nTotal 9.99"
        document = json.loads(await client.export(result.job_id, 0))
        assert document["pages"][0]["lines"][1]["words"][1]["text"] == "9.99"
        assert (await client.export(result.job_id, 0, "pdf")).startswith(b"%PDF-")
        with pytest.raises(ProblemError) as failed:
            await client.export(result.job_id, 1, "txt")
        assert (failed.value.status, failed.value.code) == (422, "not_an_image")
        with pytest.raises(ProblemError) as unknown:
            await client.export(result.job_id, 0, "docx")
        assert unknown.value.status == 400


async def test_submit_saves_exports_named_after_the_local_files(
    ocr_server: LiveServer, tmp_path: Path
) -> None:
    first, second = tmp_path / "in" / "a" / "scan.png", tmp_path / "in" / "b" / "scan.png"
    for path, text in ((first, "first page"), (second, "second page")):
        path.parent.mkdir(parents=True)
        path.write_bytes(scripted_png(text))
    out = tmp_path / "out"
    saved = await _cli(
        "submit",
        str(first),
        str(second),
        str(tmp_path / "in" / "a" / "scan.png"),
        "--url",
        ocr_server.url,
        "--token",
        "s3cret",
        "--save",
        str(out),
        "--format",
        "txt,alto,pdf",
    )
    assert saved.returncode == 0, saved.stderr
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "scan-1.pdf",
        "scan-1.txt",
        "scan-1.xml",
        "scan-2.pdf",
        "scan-2.txt",
        "scan-2.xml",
        "scan.pdf",
        "scan.txt",
        "scan.xml",
    ]
    assert (out / "scan.txt").read_text() == "first page"
    assert (out / "scan-1.txt").read_text() == "second page"
    assert (out / "scan.pdf").read_bytes().startswith(b"%PDF-")
    assert "saved" in saved.stdout + saved.stderr
    bad = await _cli("submit", str(first), "--url", ocr_server.url, "--format", "docx")
    assert bad.returncode == 2
    assert "docx" in bad.stderr
