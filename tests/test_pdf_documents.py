"""ocrstream.documents.pdf on real PDFs made in the tests (tests/pdfs.py)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.documents import Page
from ocrstream.core.errors import InvalidImage
from ocrstream.documents.pdf import (
    PdfFacts,
    RenderedPage,
    fit_dpi,
    probe_pdf,
    read_pdf_page,
    scripted_text,
)
from tests import pdfs

if TYPE_CHECKING:
    from collections.abc import Callable

    from PIL import Image

T = TypeVar("T")

MAX_PIXELS = 40_000_000
DPI = 200.0
BORN_DIGITAL = pdfs.born_digital()


def _raster(width_pt: float, height_pt: float, dpi: float) -> tuple[int, int]:
    return math.ceil(width_pt * (dpi / 72)), math.ceil(height_pt * (dpi / 72))


def _fits(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> bool:
    width, height = _raster(width_pt, height_pt, dpi)
    return width * height <= max_pixels


def _code(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(InvalidImage) as caught:
        call(*args, **kwargs)
    return caught.value.code


def _outcome(call: Callable[..., T], *args: object, **kwargs: object) -> T | str:
    """What ``call`` returns, or the code of the InvalidImage it raises."""
    try:
        return call(*args, **kwargs)
    except InvalidImage as error:
        return error.code


def _text_page(data: bytes, index: int = 0, dpi: float = DPI, max_pixels: int = MAX_PIXELS) -> Page:
    page = read_pdf_page(data, index, dpi=dpi, max_pixels=max_pixels, use_text_layer=True)
    assert isinstance(page, Page)
    return page


def _rendered(
    data: bytes, index: int = 0, dpi: float = DPI, max_pixels: int = MAX_PIXELS
) -> RenderedPage:
    page = read_pdf_page(data, index, dpi=dpi, max_pixels=max_pixels, use_text_layer=False)
    assert isinstance(page, RenderedPage)
    return page


# fit_dpi


def test_fit_dpi_keeps_a_dpi_that_fits() -> None:
    assert fit_dpi(612, 792, dpi=200, max_pixels=MAX_PIXELS) == 200


def test_fit_dpi_lowers_the_dpi_of_a_large_page() -> None:
    dpi = fit_dpi(14400, 14400, dpi=200, max_pixels=300_000_000)
    assert 72 <= dpi < 200
    assert _fits(14400, 14400, dpi, 300_000_000)
    assert dpi == pytest.approx(72 * math.sqrt(300_000_000) / 14400, rel=1e-3)


def test_fit_dpi_refuses_below_72_dpi() -> None:
    with pytest.raises(InvalidImage, match="MAX_IMAGE_PIXELS") as caught:
        fit_dpi(14400, 14400, dpi=200, max_pixels=MAX_PIXELS)
    assert caught.value.code == "image_too_large"


@pytest.mark.parametrize(
    ("width", "height", "dpi", "max_pixels"),
    [
        (0, 10, 200, 100),
        (10, -1, 200, 100),
        (10, 10, 0, 100),
        (10, 10, 200, 0),
        (math.inf, 1, 1, 1),
    ],
)
def test_fit_dpi_rejects_meaningless_arguments(
    width: float, height: float, dpi: float, max_pixels: int
) -> None:
    with pytest.raises(ValueError, match="positive"):
        fit_dpi(width, height, dpi=dpi, max_pixels=max_pixels)


@given(
    width=st.floats(1, 20_000),
    height=st.floats(1, 20_000),
    dpi=st.floats(10, 1200),
    max_pixels=st.integers(1, 10**9),
)
def test_fit_dpi_is_the_highest_dpi_that_fits(
    width: float, height: float, dpi: float, max_pixels: int
) -> None:
    fitted = _outcome(fit_dpi, width, height, dpi=dpi, max_pixels=max_pixels)
    if isinstance(fitted, str):
        assert fitted == "image_too_large"
        assert not _fits(width, height, dpi, max_pixels)
        assert dpi < 72 or not _fits(width, height, 72, max_pixels)
        return
    assert fitted <= dpi
    assert _fits(width, height, fitted, max_pixels)
    if fitted < dpi:
        assert fitted >= 72
        assert not _fits(width, height, fitted * (1 + 1e-12), max_pixels)


# probe_pdf


def test_probe_reads_the_count_and_the_first_page_raster() -> None:
    facts = probe_pdf(BORN_DIGITAL, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert facts == PdfFacts(page_count=3, width=1654, height=2339, dpi=DPI)


def test_probe_of_a_scanned_page() -> None:
    # 850 x 1100 px at 100 dpi is 8.5 x 11 in: 1700 x 2200 px at 200 dpi.
    assert probe_pdf(pdfs.scanned(), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS) == PdfFacts(
        page_count=1, width=1700, height=2200, dpi=DPI
    )


def test_probe_reports_the_rotated_size() -> None:
    facts = probe_pdf(pdfs.rotated(BORN_DIGITAL, 90), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert (facts.width, facts.height) == (2339, 1654)


def test_too_many_pages_is_refused_before_any_page_is_read() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidImage, match=r"10000 pages, over MAX_PAGES \(100\)") as caught:
        probe_pdf(pdfs.many_pages(10_000), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert caught.value.code == "too_many_pages"
    print(f"10,000-page refusal: {1000 * (time.perf_counter() - started):.1f} ms")


def test_max_pages_itself_is_allowed() -> None:
    assert (
        probe_pdf(pdfs.many_pages(100), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS).page_count
        == 100
    )
    assert (
        _code(probe_pdf, pdfs.many_pages(101), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
        == "too_many_pages"
    )


def test_an_encrypted_pdf_needs_a_password() -> None:
    data = pdfs.encrypted(BORN_DIGITAL)
    with pytest.raises(InvalidImage, match="encrypted and needs a password") as caught:
        probe_pdf(data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert caught.value.code == "encrypted_document"
    assert (
        _code(read_pdf_page, data, 0, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS)
        == "encrypted_document"
    )


def test_an_empty_user_password_opens_like_in_a_viewer() -> None:
    data = pdfs.encrypted(BORN_DIGITAL, user="")
    assert probe_pdf(data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS).page_count == 3
    assert _text_page(data).text.startswith("Invoice number 2024-117")


def test_a_huge_page_is_too_large_even_at_72_dpi() -> None:
    with pytest.raises(InvalidImage, match="page 1") as caught:
        probe_pdf(pdfs.huge_page(200), max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert caught.value.code == "image_too_large"


def test_a_large_page_gets_a_lower_dpi() -> None:
    # 20 in square at 200 dpi is 4000 x 4000 px; 4 Mpx allows about 100 dpi.
    facts = probe_pdf(pdfs.huge_page(20), max_pages=100, dpi=DPI, max_pixels=4_000_000)
    assert 99 < facts.dpi < 100.01
    assert facts.width * facts.height <= 4_000_000
    rendered = _rendered(pdfs.huge_page(20), dpi=DPI, max_pixels=4_000_000)
    assert rendered.dpi == facts.dpi
    assert rendered.image.size == (facts.width, facts.height)


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-", pdfs.garbage(), pdfs.truncated_pdf(BORN_DIGITAL, 0.3)],
    ids=["empty", "signature-only", "garbage", "truncated"],
)
def test_a_pdf_that_does_not_open_is_corrupt(data: bytes) -> None:
    with pytest.raises(InvalidImage, match="does not open") as caught:
        probe_pdf(data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    assert caught.value.code == "corrupt_image"
    assert (
        _code(read_pdf_page, data, 0, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS)
        == "corrupt_image"
    )
    assert scripted_text(data, 0) is None


def test_a_document_without_pages_is_corrupt() -> None:
    empty = pdfs.raw_pdf(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
    )
    assert _code(probe_pdf, empty, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS) == "corrupt_image"


@pytest.mark.parametrize(
    "data",
    [
        pdfs.broken_xref(BORN_DIGITAL),
        pdfs.broken_xref(pdfs.scanned()),
        *(pdfs.truncated_pdf(BORN_DIGITAL, keep / 20) for keep in range(1, 20)),
        *(pdfs.truncated_pdf(pdfs.scanned(), keep / 10) for keep in range(1, 10)),
    ],
)
def test_broken_files_give_facts_or_invalid_image_never_another_error(data: bytes) -> None:
    # PDFium repairs what it can (a broken xref is rebuilt by scanning the objects).
    facts = _outcome(probe_pdf, data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
    if isinstance(facts, str):
        assert facts == "corrupt_image"
        return
    assert isinstance(facts, PdfFacts)
    for index in range(facts.page_count):
        page = _outcome(
            read_pdf_page, data, index, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS
        )
        assert isinstance(page, Page | RenderedPage) or page == "corrupt_image"


def test_scripts_and_attachments_are_never_run_nor_written(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    data = pdfs.with_javascript_and_attachment(BORN_DIGITAL)
    assert probe_pdf(data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS).page_count == 3
    assert _text_page(data).text.startswith("Invoice number")
    assert _rendered(data, dpi=72).image.mode == "RGB"
    assert list(tmp_path.iterdir()) == []


# read_pdf_page: the text layer


@pytest.mark.parametrize(("index", "spec"), list(enumerate(pdfs.BORN_DIGITAL)))
def test_a_born_digital_page_is_read_from_its_text_layer(index: int, spec: pdfs.TextPage) -> None:
    page = _text_page(BORN_DIGITAL, index)
    assert page.source == "text_layer"
    assert page.page_index == index
    assert page.dpi == DPI
    assert (page.width, page.height) == _raster(*spec.size, DPI)
    assert [line.text for line in page.lines] == [text for _, _, text in spec.lines]
    assert page.text == "\n".join(text for _, _, text in spec.lines)
    for line, (x, baseline, text) in zip(page.lines, spec.lines, strict=True):
        assert [word.text for word in line.words] == text.split()
        assert line.confidence == 1.0
        assert all(word.confidence == 1.0 for word in line.words)
        # The line starts where it was written, and its box holds the baseline.
        scale = DPI / 72
        assert abs(line.bbox[0] - x * scale) <= 0.1 * 14 * scale
        assert line.bbox[1] < baseline * scale < line.bbox[3]


@pytest.mark.parametrize("index", range(len(pdfs.BORN_DIGITAL)))
def test_word_boxes_are_within_the_page_and_in_reading_order(index: int) -> None:
    page = _text_page(BORN_DIGITAL, index)
    previous_bottom = -1
    for line in page.lines:
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= page.width
        assert 0 <= y0 < y1 <= page.height
        assert y0 >= previous_bottom
        previous_bottom = y1
        lefts = [word.bbox[0] for word in line.words]
        assert lefts == sorted(lefts)
        for before, after in zip(line.words, line.words[1:], strict=False):
            assert before.bbox[2] <= after.bbox[0] + 1
        for word in line.words:
            wx0, wy0, wx1, wy1 = word.bbox
            assert x0 <= wx0 < wx1 <= x1
            assert y0 <= wy0 < wy1 <= y1


def _dark_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    return image.convert("L").point(lambda value: 255 if value < 128 else 0).getbbox()


@pytest.mark.parametrize(
    "data",
    [
        BORN_DIGITAL,
        *(pdfs.rotated(BORN_DIGITAL, degrees) for degrees in (90, 180, 270)),
        pdfs.cropped(BORN_DIGITAL, (50, 700, 400, 780)),
        pdfs.rotated(pdfs.cropped(BORN_DIGITAL, (50, 700, 400, 780)), 90),
        pdfs.sideways(),
    ],
    ids=[
        "upright",
        "rotate-90",
        "rotate-180",
        "rotate-270",
        "cropped",
        "cropped-rotate-90",
        "sideways-made-upright",
    ],
)
def test_text_layer_boxes_fall_on_the_rendered_words(data: bytes) -> None:
    dpi = 100.0
    page = _text_page(data, dpi=dpi)
    image = _rendered(data, dpi=dpi).image
    assert image.size == (page.width, page.height)
    words = [word for line in page.lines for word in line.words]
    for word in words:
        ink = _dark_box(image.crop(word.bbox))
        assert ink is not None, f"no ink under {word.text!r} at {word.bbox}"
        width, height = word.bbox[2] - word.bbox[0], word.bbox[3] - word.bbox[1]
        ink_long, box_long = max(ink[2] - ink[0], ink[3] - ink[1]), max(width, height)
        assert ink_long >= 0.6 * box_long, f"{word.text!r} at {word.bbox} is off its ink {ink}"
    # And every dark pixel of the page is under some word (2 px of anti-aliasing).
    page_ink = _dark_box(image)
    assert page_ink is not None
    union = [
        min(w.bbox[i] for w in words) if i < 2 else max(w.bbox[i] for w in words) for i in range(4)
    ]
    assert page_ink[0] >= union[0] - 2
    assert page_ink[1] >= union[1] - 2
    assert page_ink[2] <= union[2] + 2
    assert page_ink[3] <= union[3] + 2


def test_a_rotated_page_keeps_its_lines() -> None:
    page = _text_page(pdfs.rotated(BORN_DIGITAL, 90))
    assert sorted(line.text for line in page.lines) == sorted(
        text for _, _, text in pdfs.BORN_DIGITAL[0].lines
    )
    for line in page.lines:  # the lines run down the page now
        assert line.bbox[3] - line.bbox[1] > line.bbox[2] - line.bbox[0]


def test_sideways_text_made_upright_by_rotate_reads_in_order() -> None:
    page = _text_page(pdfs.sideways())
    assert page.text == "first line sideways\nsecond line sideways"
    assert (page.width, page.height) == _raster(792, 612, DPI)
    for line in page.lines:  # upright on the raster: wider than tall
        assert line.bbox[2] - line.bbox[0] > line.bbox[3] - line.bbox[1]
    assert page.lines[0].bbox[3] <= page.lines[1].bbox[1] + 1


def test_text_outside_the_crop_box_is_left_out() -> None:
    page = _text_page(pdfs.cropped(BORN_DIGITAL, (50, 700, 400, 780)))
    assert page.text == "Invoice number 2024-117\nTotal due: 1,250.00 EUR"
    assert (page.width, page.height) == _raster(350, 80, DPI)


def test_a_page_without_text_is_rendered_even_with_the_text_layer_on() -> None:
    page = read_pdf_page(pdfs.scanned(), 0, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS)
    assert isinstance(page, RenderedPage)
    assert page.image.mode == "RGB"
    assert page.image.size == (1700, 2200)
    assert page.dpi == DPI
    assert _dark_box(page.image) is not None


def test_a_mixed_pdf_reads_each_page_its_own_way() -> None:
    data = pdfs.concatenate(BORN_DIGITAL, pdfs.scanned())
    assert probe_pdf(data, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS).page_count == 4
    assert isinstance(
        read_pdf_page(data, 0, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS), Page
    )
    assert isinstance(
        read_pdf_page(data, 3, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS), RenderedPage
    )


@pytest.mark.parametrize("index", range(len(pdfs.BORN_DIGITAL)))
def test_ocr_mode_renders_an_rgb_page_of_the_probed_size(index: int) -> None:
    rendered = _rendered(BORN_DIGITAL, index)
    assert rendered.image.mode == "RGB"
    assert rendered.image.size == _raster(*pdfs.BORN_DIGITAL[index].size, DPI)
    assert rendered.dpi == DPI
    if index == 0:
        facts = probe_pdf(BORN_DIGITAL, max_pages=100, dpi=DPI, max_pixels=MAX_PIXELS)
        assert rendered.image.size == (facts.width, facts.height)


@pytest.mark.parametrize("index", [-1, 3])
def test_a_page_index_outside_the_document_is_a_caller_error(index: int) -> None:
    with pytest.raises(IndexError):
        read_pdf_page(BORN_DIGITAL, index, use_text_layer=True, dpi=DPI, max_pixels=MAX_PIXELS)


def test_scripted_text_is_the_raw_layer() -> None:
    text = scripted_text(BORN_DIGITAL, 1)
    assert text is not None
    assert text.strip() == "Landscape page two"
    assert scripted_text(pdfs.scanned(), 0) is None
    assert scripted_text(BORN_DIGITAL, 7) is None


def test_measure_text_layer_against_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    # A figure for the report, not a timed assertion.
    def per_page_ms(use_text_layer: bool, repeats: int) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            read_pdf_page(
                BORN_DIGITAL, 0, use_text_layer=use_text_layer, dpi=DPI, max_pixels=MAX_PIXELS
            )
        return 1000 * (time.perf_counter() - started) / repeats

    text_ms, render_ms = per_page_ms(True, 20), per_page_ms(False, 5)
    with capsys.disabled():
        print(
            f"\nA4 born-digital page: text layer {text_ms:.1f} ms, render at 200 dpi {render_ms:.1f} ms"
        )
