"""Scanned PDFs recognised with the real engines, at the bar the images are held to.

A scanned PDF here is the test invoices (tests/invoices.py, the ones the engines' image
tests read) put into a PDF by img2pdf at RENDER_DPI, as a scanner or ``img2pdf
--imgsize 200dpi`` makes one: each image its own page, EXIF orientations turned into
``/Rotate``. Rendering such a page at RENDER_DPI gives back the image's pixels, give or
take a row: PDFium holds the page size as a float32, so 406 px stored at 200 dpi
(146.16 pt) comes back as ``ceil(406.00001)`` = 407 rows and the image is stretched over
them. Every page goes through the worker's own ``recognize_page``, as in the service.

Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import io
import shutil
from typing import TYPE_CHECKING

import img2pdf  # type: ignore[import-untyped]
import pytest
from PIL import Image, ImageOps

from ocrstream.core.config import Settings
from ocrstream.documents.pdf import RenderedPage, read_pdf_page
from ocrstream.engines.base import PageText
from ocrstream.engines.worker import PageRequest, engine_module, recognize_page
from tests import pdfs
from tests.invoices import Invoice, exact_lines, invoice_set

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ocrstream.core.documents import Page

MIN_EXACT_LINES = 0.95
#: How many more drawn lines a PDF page may miss than the same image read directly.
PDF_SLACK_LINES = 1
#: The service's defaults: RENDER_DPI and MAX_IMAGE_PIXELS.
RENDER_DPI = float(Settings.model_fields["render_dpi"].default)
MAX_PIXELS = int(Settings.model_fields["max_image_pixels"].default)
#: The first invoices of the engines' image tests: PNG and JPEG, two turned by EXIF.
INVOICES = invoice_set(6)
#: The mixed PDF's pages: True a born-digital page (the next of pdfs.BORN_DIGITAL), False
#: a scanned one (the next of MIXED_SCANS).
MIXED_LAYOUT = (True, False, False, True, False, True)
MIXED_SCANS = (INVOICES[0], INVOICES[3], INVOICES[5])

ENGINES = [
    "rapidocr",
    pytest.param(
        "tesseract",
        marks=pytest.mark.skipif(
            shutil.which("tesseract") is None,
            reason="tesseract binary not installed (apt-get install tesseract-ocr tesseract-ocr-eng)",
        ),
    ),
]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine's name, loaded in this process as a worker's ``init`` would."""
    name: str = request.param
    engine_module(name).load()
    return name


def _scanned_pdf(invoices: Sequence[Invoice]) -> bytes:
    """One image-only page per invoice: its own bytes, laid out at RENDER_DPI."""
    layout = img2pdf.get_fixed_dpi_layout_fun((RENDER_DPI, RENDER_DPI))
    return bytes(img2pdf.convert([invoice.data for invoice in invoices], layout_fun=layout))


def _pdf_request(page_index: int, *, use_text_layer: bool) -> PageRequest:
    return PageRequest(
        format="PDF",
        page_index=page_index,
        dpi=RENDER_DPI,
        max_pixels=MAX_PIXELS,
        use_text_layer=use_text_layer,
    )


def _raster_size(data: bytes, page_index: int) -> tuple[int, int]:
    rendered = read_pdf_page(
        data, page_index, dpi=RENDER_DPI, max_pixels=MAX_PIXELS, use_text_layer=False
    )
    assert isinstance(rendered, RenderedPage)
    return rendered.image.size


def _upright_size(invoice: Invoice) -> tuple[int, int]:
    with Image.open(io.BytesIO(invoice.data)) as image:
        return ImageOps.exif_transpose(image).size


def _exact(lines: Sequence[str], page: Page) -> tuple[int, list[str]]:
    """(drawn lines read exactly on ``page``, those missed), as the image tests compare."""
    exact, _drawn, missed = exact_lines([(lines, PageText(text=page.text, lines=page.lines))])
    return exact, missed


def _assert_ocr_page(page: Page, data: bytes, page_index: int) -> None:
    assert page.source == "ocr"
    assert page.page_index == page_index
    assert page.dpi == RENDER_DPI
    assert (page.width, page.height) == _raster_size(data, page_index)
    assert page.text == "\n".join(line.text for line in page.lines)
    for line in page.lines:
        assert [word.text for word in line.words] == line.text.split()


def test_scanned_pdf_reads_as_well_as_the_images(
    engine: str, record_property: Callable[[str, object], None]
) -> None:
    data = _scanned_pdf(INVOICES)
    pdf_exact = image_exact = drawn = 0
    missed: list[str] = []
    worse: list[str] = []
    for index, invoice in enumerate(INVOICES):
        page = recognize_page(engine, data, _pdf_request(index, use_text_layer=False))
        _assert_ocr_page(page, data, index)
        # img2pdf turned the EXIF orientation into /Rotate: the raster is upright.
        width, height = _upright_size(invoice)
        assert abs(page.width - width) <= 1, (invoice, page.width, width)
        assert abs(page.height - height) <= 1, (invoice, page.height, height)

        image = recognize_page(engine, invoice.data, PageRequest(format=invoice.format))
        from_pdf, missed_here = _exact(invoice.lines, page)
        from_image, _ = _exact(invoice.lines, image)
        missed += missed_here
        if from_pdf < from_image - PDF_SLACK_LINES:
            worse.append(f"page {index} ({invoice!r}): {from_pdf} vs {from_image} as an image")
        pdf_exact += from_pdf
        image_exact += from_image
        drawn += len(invoice.lines)
    figures = f"PDF {pdf_exact}/{drawn} lines exact, images {image_exact}/{drawn}"
    record_property("lines_exact", figures)
    print(f"\n{engine}: scanned {figures}; missed from the PDF: {missed}")
    assert not worse, f"PDF pages read worse than their images: {worse}"
    assert pdf_exact / drawn >= MIN_EXACT_LINES, f"{figures}; missed {missed}"


def test_mixed_pdf_reads_text_pages_exactly_and_scans_at_the_bar(
    engine: str, record_property: Callable[[str, object], None]
) -> None:
    born = iter(pdfs.BORN_DIGITAL)
    scans = iter(MIXED_SCANS)
    parts = [
        pdfs.born_digital((next(born),)) if digital else _scanned_pdf([next(scans)])
        for digital in MIXED_LAYOUT
    ]
    data = pdfs.concatenate(*parts)
    born, scans = iter(pdfs.BORN_DIGITAL), iter(MIXED_SCANS)
    scanned_exact = scanned_drawn = 0
    missed: list[str] = []
    for index, digital in enumerate(MIXED_LAYOUT):
        page = recognize_page(engine, data, _pdf_request(index, use_text_layer=True))
        if digital:
            spec = next(born)
            texts = [text for _x, _y, text in spec.lines]
            assert page.source == "text_layer", index
            assert page.page_index == index
            assert page.dpi == RENDER_DPI
            assert (page.width, page.height) == _raster_size(data, index)
            assert [line.text for line in page.lines] == texts
            assert page.text == "\n".join(texts)
            for line in page.lines:
                assert [word.text for word in line.words] == line.text.split()
            continue
        invoice = next(scans)
        _assert_ocr_page(page, data, index)
        exact, missed_here = _exact(invoice.lines, page)
        scanned_exact += exact
        scanned_drawn += len(invoice.lines)
        missed += missed_here
    figures = f"{scanned_exact}/{scanned_drawn} scanned lines exact"
    record_property("mixed_lines_exact", figures)
    print(f"\n{engine}: mixed PDF, {len(pdfs.BORN_DIGITAL)} text pages exact, {figures}")
    assert scanned_exact / scanned_drawn >= MIN_EXACT_LINES, f"{figures}; missed {missed}"
