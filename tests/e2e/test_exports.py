"""The results route through the real server: every format, its headers and its states.

hOCR and ALTO are parsed back with lxml, the searchable PDF is read back with Debian's
``pdftotext`` (poppler) and pikepdf; a hostile file name and OCR text with ``<``, ``&``
and ``"`` survive every format.
"""

from __future__ import annotations

import io
import json
import shutil
from typing import TYPE_CHECKING, Any

import pikepdf
import pytest
import trio
from lxml import etree

from tests import pdfs
from tests.e2e.conftest import BOUNDARY, MULTIPART
from tests.e2e.test_documents import PAGE_TEXTS, _post
from tests.images import Upload, make_image, multipart_body, scripted_png, scripted_tiff

if TYPE_CHECKING:
    import httpx

    from tests.e2e.conftest import LiveServer, StartServer

pytestmark = pytest.mark.e2e

ALTO = "{http://www.loc.gov/standards/alto/ns-v4#}"
HOSTILE_NAME = "a<b>&c é.png"
HOSTILE_TEXT = 'Total <b> & "9.99" é'


async def _pdftotext(data: bytes) -> str:
    binary = shutil.which("pdftotext")
    assert binary is not None, "pdftotext (Debian's poppler-utils) is installed by .ci/run"
    done = await trio.run_process(
        [binary, "-enc", "UTF-8", "-", "-"], stdin=data, capture_stdout=True, capture_stderr=True
    )
    return done.stdout.decode("utf-8")


def _of_class(tree: etree._Element, name: str) -> list[etree._Element]:
    """The hOCR elements of class ``name``."""
    found = tree.xpath(f"//*[@class='{name}']")
    assert isinstance(found, list)
    return [item for item in found if isinstance(item, etree._Element)]


async def _export(
    client: httpx.AsyncClient, server: LiveServer, job_id: str, index: int, format: str
) -> httpx.Response:
    return await client.get(f"{server.url}/api/ocr/{job_id}/files/{index}?format={format}")


async def test_every_format_of_a_born_digital_pdf(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=2)
    original = pdfs.born_digital()
    events = await _post(client, server, [Upload(original, "invoice.pdf")])
    job_id = events[0]["job_id"]

    document = await _export(client, server, job_id, 0, "json")
    assert document.headers["Content-Type"] == "application/json"
    assert document.headers["Content-Disposition"] == 'attachment; filename="invoice.json"'
    data = document.json()
    assert (data["file_index"], data["file_name"], data["format"]) == (0, "invoice.pdf", "PDF")
    assert data["page_count"] == 3
    first = data["pages"][0]
    assert (first["source"], first["dpi"], first["width"], first["height"]) == (
        "text_layer",
        200,
        1654,
        2339,
    )
    assert [line["text"] for line in first["lines"]] == PAGE_TEXTS[0].split("\n")
    words = first["lines"][1]["words"]
    assert [word["text"] for word in words] == ["Total", "due:", "1,250.00", "EUR"]
    lefts = [word["bbox"][0] for word in words]
    assert lefts == sorted(lefts)
    assert (await _export(client, server, job_id, 0, "json")).json() == data

    text = await _export(client, server, job_id, 0, "txt")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert text.headers["Content-Disposition"] == 'attachment; filename="invoice.txt"'
    assert text.text == "\f".join(PAGE_TEXTS)

    hocr = await _export(client, server, job_id, 0, "hocr")
    assert hocr.headers["Content-Type"] == "text/html; charset=utf-8"
    assert hocr.headers["Content-Disposition"] == 'attachment; filename="invoice.hocr"'
    tree = etree.fromstring(hocr.content)
    pages = _of_class(tree, "ocr_page")
    assert len(pages) == 3
    title = pages[0].get("title") or ""
    assert "ppageno 0" in title
    assert "bbox 0 0 1654 2339" in title
    assert len(_of_class(tree, "ocrx_word")) == sum(len(t.split()) for t in PAGE_TEXTS)

    alto = await _export(client, server, job_id, 0, "alto")
    assert alto.headers["Content-Type"] == "application/xml"
    assert alto.headers["Content-Disposition"] == 'attachment; filename="invoice.xml"'
    root = etree.fromstring(alto.content)
    assert root.tag == f"{ALTO}alto"
    assert root.findtext(f".//{ALTO}MeasurementUnit") == "pixel"
    assert root.findtext(f".//{ALTO}fileName") == "invoice.pdf"
    strings = root.findall(f".//{ALTO}String")
    assert [s.get("CONTENT") for s in strings[:3]] == ["Invoice", "number", "2024-117"]

    searchable = await _export(client, server, job_id, 0, "pdf")
    assert searchable.headers["Content-Type"] == "application/pdf"
    assert searchable.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    with (
        pikepdf.open(io.BytesIO(original)) as before,
        pikepdf.open(io.BytesIO(searchable.content)) as after,
    ):
        assert len(after.pages) == len(before.pages) == 3
        assert [list(page.mediabox) for page in after.pages] == [
            list(page.mediabox) for page in before.pages
        ]
    # The pages were read from their layers: the text is there once, not twice.
    extracted = await _pdftotext(searchable.content)
    assert extracted.count("Invoice number 2024-117") == 1


async def test_a_scanned_pdf_becomes_searchable(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    original = pdfs.concatenate(pdfs.born_digital(), pdfs.born_digital())
    # Recognised (not read from the layer): every page gets an invisible layer added.
    events = await _post(client, server, [Upload(original, "scan.pdf")], "pdf_text=ocr")
    job_id = events[0]["job_id"]
    searchable = (await _export(client, server, job_id, 0, "pdf")).content
    with pikepdf.open(io.BytesIO(searchable)) as after:
        assert len(after.pages) == 6
    # The original layer and the added one: each text twice (once per copy of the
    # layer), in every one of the two copies of the document.
    assert (await _pdftotext(searchable)).count("Landscape page two") == 4


async def test_an_image_becomes_a_searchable_pdf_page_of_its_pixels(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    parts = [
        Upload(scripted_png("Invoice 42\nTotal 9.99", size=(400, 200)), "photo.png"),
        Upload(scripted_tiff(["first frame", "second frame"], size=(300, 100)), "fax.tif"),
    ]
    events = await _post(client, server, parts)
    job_id = events[0]["job_id"]
    photo = (await _export(client, server, job_id, 0, "pdf")).content
    with pikepdf.open(io.BytesIO(photo)) as pdf:
        assert len(pdf.pages) == 1
        assert [float(value) for value in pdf.pages[0].mediabox] == [0, 0, 400, 200]
    assert (await _pdftotext(photo)).split() == ["Invoice", "42", "Total", "9.99"]
    fax = (await _export(client, server, job_id, 1, "pdf")).content
    with pikepdf.open(io.BytesIO(fax)) as pdf:
        assert len(pdf.pages) == 2
    assert (await _pdftotext(fax)).split() == ["first", "frame", "second", "frame"]


async def test_a_hostile_name_and_text_survive_every_format(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    events = await _post(client, server, [Upload(scripted_png(HOSTILE_TEXT), HOSTILE_NAME)])
    job_id = events[0]["job_id"]
    assert (await _export(client, server, job_id, 0, "json")).json()["file_name"] == HOSTILE_NAME
    assert (await _export(client, server, job_id, 0, "txt")).text == HOSTILE_TEXT
    hocr = etree.fromstring((await _export(client, server, job_id, 0, "hocr")).content)
    words = [word.text or "" for word in _of_class(hocr, "ocrx_word")]
    assert " ".join(words) == HOSTILE_TEXT
    alto = etree.fromstring((await _export(client, server, job_id, 0, "alto")).content)
    assert alto.findtext(f".//{ALTO}fileName") == HOSTILE_NAME
    contents = [s.get("CONTENT") or "" for s in alto.findall(f".//{ALTO}String")]
    assert " ".join(contents) == HOSTILE_TEXT
    searchable = await _export(client, server, job_id, 0, "pdf")
    assert (await _pdftotext(searchable.content)).strip() == HOSTILE_TEXT
    disposition = searchable.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert "filename*=UTF-8''" in disposition
    fallback = disposition.split('filename="', 1)[1].split('"; ', 1)[0]
    assert fallback.isascii()
    assert not set(fallback) & {'"', "\\", "\r", "\n"}


async def test_the_route_answers_each_state_with_its_status(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    events = await _post(
        client, server, [Upload(scripted_png("ok"), "a.png"), Upload(b"junk", "b.png")]
    )
    job_id = events[0]["job_id"]

    def problem(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        document: dict[str, Any] = response.json()
        return document

    assert problem(await _export(client, server, job_id, 1, "txt"), 422)["code"] == "not_an_image"
    problem(await _export(client, server, job_id, 5, "txt"), 404)
    unknown = "00000000-0000-4000-8000-000000000000"
    problem(await _export(client, server, unknown, 0, "txt"), 404)
    assert problem(await _export(client, server, job_id, 0, "docx"), 400)["code"] == "bad_query"


async def test_a_file_still_being_worked_on_is_409_then_ready(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    body = multipart_body([Upload(scripted_png("SLEEP:1 slow"), "slow.png")], BOUNDARY)
    async with client.stream(
        "POST", f"{server.url}/api/ocr", content=body, headers={"Content-Type": MULTIPART}
    ) as response:
        job_id = response.headers["Location"].rsplit("/", 1)[1]
        waiting = await _export(client, server, job_id, 0, "txt")
        assert waiting.status_code == 409
        assert waiting.json()["code"] == "not_ready"
        await response.aread()
    assert (await _export(client, server, job_id, 0, "txt")).text == "SLEEP:1 slow"


async def test_a_job_without_ocr_has_nothing_to_export(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1)
    events = await _post(client, server, [Upload(make_image(), "a.png")], "ocr=false")
    refused = await _export(client, server, events[0]["job_id"], 0, "json")
    assert refused.status_code == 409
    assert "not recognised" in refused.json()["detail"]


async def test_kept_files_are_removed_when_their_job_expires(
    start_server: StartServer, client: httpx.AsyncClient
) -> None:
    server = await start_server(ocr_engine="fake", ocr_workers=1, result_ttl=0.5)
    events = await _post(client, server, [Upload(scripted_png("kept"), "a.png")])
    originals = server.app.state.registry.originals
    assert originals is not None
    assert originals.count() == 1
    await trio.sleep(0.6)
    gone = await client.get(f"{server.url}/api/ocr/{events[0]['job_id']}/files/0")
    assert gone.status_code == 404
    assert originals.count() == 0
    assert json.loads(gone.text)["status"] == 404
