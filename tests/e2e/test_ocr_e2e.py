"""OCR through the real server and real worker processes (fake engine: instant, scriptable)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from tests.e2e.conftest import BOUNDARY, head, post_events, raw_request, read_until
from tests.images import Upload, make_image, multipart_body, scripted_png
from tests.invoices import invoice_set
from tests.ordering import check_stream
from tests.text import normalise_spaces
from tests.waiting import wait_until

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import StartServer

pytestmark = pytest.mark.e2e


async def test_text_streams_back(start_server: StartServer, client: httpx.AsyncClient) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    body = multipart_body(
        [Upload(scripted_png("Invoice 7\nTotal 12.50"), "a.png"), Upload(b"junk", "b.png")],
        BOUNDARY,
    )
    _, events, _ = await post_events(client, server.url, body)
    outcome = check_stream(events, ocr=True)
    assert outcome.ocr == {0: "ok"}
    success = next(e for e in events if e["type"] == "image_ocr_success")
    assert success["data"]["text"] == "Invoice 7\nTotal 12.50"
    snapshot = (await client.get(f"{server.url}/api/ocr/{events[0]['job_id']}")).json()
    assert snapshot["files"][0]["text"] == "Invoice 7\nTotal 12.50"
    assert snapshot["files"][0]["lines"][1]["text"] == "Total 12.50"


@pytest.mark.parametrize("value", ["false", "0", "no"])
async def test_ocr_false_skips_ocr(
    start_server: StartServer, client: httpx.AsyncClient, value: str
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    body = multipart_body([Upload(make_image(), "a.png")], BOUNDARY)
    async with client.stream(
        "POST",
        f"{server.url}/api/ocr?ocr={value}",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    ) as response:
        text = (await response.aread()).decode()
    assert "image_validation_success" in text
    assert "image_ocr" not in text
    assert '"ocr_success_count":0' in text


async def test_a_small_upload_overtakes_a_big_one(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    big = multipart_body(
        [Upload(scripted_png(f"SLEEP:0.1 page {i}"), f"{i}.png") for i in range(20)], BOUNDARY
    )
    small = multipart_body([Upload(scripted_png("small"), "s.png")], BOUNDARY)
    finished: list[str] = []

    async def upload(name: str, body: bytes) -> None:
        _, events, _ = await post_events(client, server.url, body)
        assert events[-1]["type"] == "processing_complete"
        finished.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(upload, "big", big)
        assert server.app.state.ocr is not None
        ocr = server.app.state.ocr
        await wait_until(lambda: ocr.statistics().waiting > 0, timeout=20)
        nursery.start_soon(upload, "small", small)
    assert finished == ["small", "big"]


async def test_disconnect_during_ocr_kills_the_worker(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    # One warm worker: learn its pid from a first job.
    _, events, _ = await post_events(
        client, server.url, multipart_body([Upload(scripted_png("PID"), "pid.png")], BOUNDARY)
    )
    pid = int(next(e for e in events if e["type"] == "image_ocr_success")["data"]["text"])
    body = multipart_body([Upload(scripted_png("SPIN:30"), f"{i}.png") for i in range(5)], BOUNDARY)
    stream = await raw_request(server.port, head(len(body)), body)
    await read_until(stream, b"image_ocr_start", timeout=20)
    busy_from = _cpu_ticks(pid)
    # The worker is computing.
    await wait_until(lambda: _cpu_ticks(pid) >= busy_from + 5, interval=0.02)
    await stream.aclose()
    await server.wait_idle()
    await wait_until(lambda: not _alive(pid), timeout=5, interval=0.02)
    assert server.app.state.ocr is not None
    assert server.app.state.ocr.statistics().busy == 0
    assert server.app.state.ocr.statistics().waiting == 0
    _, events, _ = await post_events(
        client, server.url, multipart_body([Upload(scripted_png("after"), "c.png")], BOUNDARY)
    )
    assert next(e for e in events if e["type"] == "image_ocr_success")["data"]["text"] == "after"


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}  # a killed worker not yet reaped is a zombie


async def test_the_default_engine_reads_an_invoice(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="rapidocr", ocr_workers=1)
    (invoice,) = invoice_set(1)
    body = multipart_body([Upload(invoice.data, "invoice.png", "image/png")], BOUNDARY)
    _, events, _ = await post_events(client, server.url, body)
    check_stream(events, ocr=True)
    success = next(e for e in events if e["type"] == "image_ocr_success")["data"]
    recognised = {normalise_spaces(line["text"]) for line in success["lines"]}
    assert sum(line in recognised for line in invoice.lines) >= len(invoice.lines) - 1
    assert success["text"] == "\n".join(line["text"] for line in success["lines"])
