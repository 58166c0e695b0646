"""PDFs and multi-page TIFFs through the real server: pages live, text layers, errors.

Real PDFs made in the tests (``tests/pdfs.py``), real worker processes (document
workers for opening PDFs, OCR workers with the fake engine, which reads a rendered PDF
page's script from its text layer and a TIFF frame's from its ImageDescription).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests import pdfs
from tests.e2e.conftest import (
    BOUNDARY,
    MULTIPART,
    decode_stream,
    head,
    post_events,
    post_raw,
    raw_request,
    read_until,
)
from tests.e2e.test_ocr_e2e import _alive, _cpu_ticks
from tests.images import Upload, multipart_body, scripted_png, scripted_tiff
from tests.ordering import check_stream
from tests.waiting import wait_until

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import LiveServer, StartServer

pytestmark = pytest.mark.e2e

PAGE_TEXTS = [
    "Invoice number 2024-117\nTotal due: 1,250.00 EUR\nThank you for your business.",
    "Landscape page two",
    "small\nsquare page",
]


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["type"] == kind]


async def _post(
    client: httpx.AsyncClient, server: LiveServer, parts: list[Upload], query: str = ""
) -> list[dict[str, Any]]:
    """Upload ``parts`` (with ``?query``) and read the whole stream."""
    return decode_stream(
        await post_raw(client, server.url, multipart_body(parts, BOUNDARY), query=query)
    )


async def test_a_born_digital_pdf_is_read_from_its_text_layer_page_by_page(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=2)
    events = await _post(client, server, [Upload(pdfs.born_digital(), "invoice.pdf")])
    outcome = check_stream(events, ocr=True)
    assert outcome.terminal == "processing_complete"
    valid = _of(events, "image_validation_success")[0]
    # The first page is A4 (595.28 x 841.89 pt) at RENDER_DPI 200.
    assert (valid["format"], valid["mode"], valid["page_count"]) == ("PDF", "RGB", 3)
    assert (valid["width"], valid["height"]) == (1654, 2339)
    pages = {page["page_index"]: page for page in _of(events, "page_ocr_success")}
    assert sorted(pages) == [0, 1, 2]
    assert {page["source"] for page in pages.values()} == {"text_layer"}
    assert [pages[index]["text"] for index in range(3)] == PAGE_TEXTS
    success = _of(events, "image_ocr_success")[0]
    assert success["page_count"] == 3
    assert success["text"] == "\f".join(PAGE_TEXTS)
    assert {line["page_index"] for line in success["lines"]} == {0, 1, 2}


async def test_pdf_text_ocr_renders_and_recognises_every_page(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=2)
    events = await _post(
        client, server, [Upload(pdfs.born_digital(), "invoice.pdf")], "pdf_text=ocr"
    )
    check_stream(events, ocr=True)
    pages = {page["page_index"]: page for page in _of(events, "page_ocr_success")}
    assert {page["source"] for page in pages.values()} == {"ocr"}
    # The fake engine "recognises" what the page's layer holds, so the text is the same.
    assert [pages[index]["text"] for index in range(3)] == PAGE_TEXTS
    assert (pages[1]["width"], pages[1]["height"]) == (2200, 1700)


async def test_the_server_setting_pdf_text_ocr_applies_and_bad_values_are_400(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1, pdf_text="ocr")
    events = await _post(client, server, [Upload(pdfs.born_digital(), "invoice.pdf")])
    assert {page["source"] for page in _of(events, "page_ocr_success")} == {"ocr"}
    events = await _post(
        client, server, [Upload(pdfs.born_digital(), "invoice.pdf")], "pdf_text=auto"
    )
    assert {page["source"] for page in _of(events, "page_ocr_success")} == {"text_layer"}
    refused = await client.post(
        f"{server.url}/api/ocr?pdf_text=maybe",
        content=multipart_body([Upload(pdfs.born_digital(), "a.pdf")], BOUNDARY),
        headers={"Content-Type": MULTIPART},
    )
    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "bad_query"


async def test_a_mixed_pdf_reads_its_layer_and_recognises_its_scan(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=2)
    mixed = pdfs.concatenate(pdfs.born_digital(), pdfs.scanned())
    events = await _post(client, server, [Upload(mixed, "mixed.pdf")])
    check_stream(events, ocr=True)
    pages = {page["page_index"]: page for page in _of(events, "page_ocr_success")}
    assert [pages[index]["source"] for index in range(4)] == [
        "text_layer",
        "text_layer",
        "text_layer",
        "ocr",
    ]


async def test_a_multi_page_tiff_gets_every_frame_recognised(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=2)
    texts = [f"frame {index}" for index in range(5)]
    events = await _post(client, server, [Upload(scripted_tiff(texts), "fax.tif")])
    check_stream(events, ocr=True)
    assert _of(events, "image_validation_success")[0]["page_count"] == 5
    assert _of(events, "image_ocr_success")[0]["text"] == "\f".join(texts)


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: pdfs.encrypted(pdfs.born_digital()), "encrypted_document"),
        (lambda: pdfs.many_pages(10_000), "too_many_pages"),
        (lambda: pdfs.huge_page(200), "image_too_large"),
        (pdfs.garbage, "corrupt_image"),
        (lambda: scripted_tiff(["x"] * 1000, size=(2, 2)), "too_many_pages"),
    ],
    ids=["encrypted", "10000-pages", "200-inch-page", "garbage", "tiff-1000-frames"],
)
async def test_bad_documents_get_their_code_and_cost_nothing_else(
    start_server: StartServer, client: httpx.AsyncClient, make: Any, code: str
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    parts = [Upload(make(), "bad.pdf"), Upload(scripted_png("still read"), "good.png")]
    events = await _post(client, server, parts)
    outcome = check_stream(events, ocr=True)
    assert outcome.outcomes[0] == ("invalid", code)
    assert outcome.ocr == {1: "ok"}
    error = _of(events, "image_validation_error")[0]["error"]
    assert error["message"]


async def test_pdfs_that_are_broken_or_carry_scripts_never_hurt_the_server(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    born = pdfs.born_digital()
    parts = [
        Upload(pdfs.truncated_pdf(born), "truncated.pdf"),
        Upload(pdfs.broken_xref(born), "xref.pdf"),
        Upload(pdfs.with_javascript_and_attachment(born), "script.pdf"),
    ]
    events = await _post(client, server, parts)
    outcome = check_stream(events, ocr=True)
    assert outcome.terminal == "processing_complete"
    for index in (0, 1):
        state, detail = outcome.outcomes[index]
        assert state == "valid" or detail == "corrupt_image"
    assert outcome.outcomes[2] == ("valid", "PDF")
    assert outcome.ocr[2] == "ok"
    assert (await client.get(f"{server.url}/healthz")).status_code == 200


async def test_a_disconnect_mid_pdf_kills_the_page_in_flight_and_starts_no_other(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    _, events, _ = await post_events(
        client, server.url, multipart_body([Upload(scripted_png("PID"), "pid.png")], BOUNDARY)
    )
    pid = int(_of(events, "image_ocr_success")[0]["text"])
    spinning = pdfs.born_digital(
        tuple(
            pdfs.TextPage(size=(300, 300), lines=((20, 50, f"SPIN:30 page {index}"),))
            for index in range(4)
        )
    )
    body = multipart_body([Upload(spinning, "long.pdf")], BOUNDARY)
    head_bytes = head(len(body)).replace(b"/api/ocr ", b"/api/ocr?pdf_text=ocr ")
    stream = await raw_request(server.port, head_bytes, body)
    await read_until(stream, b"image_ocr_start", timeout=20)
    busy_from = _cpu_ticks(pid)
    await wait_until(lambda: _cpu_ticks(pid) >= busy_from + 5, interval=0.02)
    await stream.aclose()
    await server.wait_idle()
    await wait_until(lambda: not _alive(pid), timeout=5, interval=0.02)
    ocr = server.app.state.ocr
    assert ocr is not None
    statistics = ocr.statistics()
    assert (statistics.busy, statistics.waiting) == (0, 0)
