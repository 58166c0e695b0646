"""The Tesseract engine against the real ``tesseract`` program and a few fake ones."""

from __future__ import annotations

import io
import shutil
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageOps

from ocrstream.engines import tesseract
from ocrstream.engines.base import EngineUnavailable, PageText
from tests.engine_contract import (
    assert_page_contract,
    assert_reading_order,
    assert_words_where_drawn,
    invoice_in_mode,
    transparent_invoice,
    words_page,
)
from tests.invoices import exact_lines, invoice_set
from tests.text import normalise_spaces

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract binary not installed (apt-get install tesseract-ocr tesseract-ocr-eng)",
)

MIN_EXACT_LINES = 0.95


def _upright(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.exif_transpose(image)


@pytest.fixture(scope="module")
def invoice_pages() -> list[tuple[tuple[str, ...], Image.Image, PageText]]:
    """Each invoice's drawn lines, its upright image and what Tesseract read on it."""
    tesseract.load()
    pages = []
    for invoice in invoice_set(20):
        image = _upright(invoice.data)
        pages.append((invoice.lines, image, tesseract.recognize(image)))
    return pages


def _fake_tesseract(directory: Path, script: str) -> Path:
    """Write an executable ``tesseract`` shell script into ``directory``."""
    path = directory / "tesseract"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_name() -> None:
    assert tesseract.NAME == "tesseract"


def test_available_here() -> None:
    tesseract.check_available()
    tesseract.load()
    tesseract.load()


def test_invoice_lines_read_exactly(
    invoice_pages: list[tuple[tuple[str, ...], Image.Image, PageText]],
) -> None:
    exact, drawn, missed = exact_lines((lines, page) for lines, _image, page in invoice_pages)
    assert exact / drawn >= MIN_EXACT_LINES, f"{exact}/{drawn} lines exact; missed {missed}"


def test_page_contract(
    invoice_pages: list[tuple[tuple[str, ...], Image.Image, PageText]],
) -> None:
    assert_page_contract(invoice_pages, empty_boxes_allowed=True)


def test_lines_top_to_bottom(
    invoice_pages: list[tuple[tuple[str, ...], Image.Image, PageText]],
) -> None:
    assert_reading_order(invoice_pages)


@pytest.mark.parametrize("size", [(400, 200), (1, 1)])
def test_blank_page_is_empty(size: tuple[int, int]) -> None:
    assert tesseract.recognize(Image.new("RGB", size, "white")) == PageText(text="", lines=())


def test_zero_size_image_is_empty() -> None:
    assert tesseract.recognize(Image.new("RGB", (0, 0))) == PageText(text="", lines=())


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_image_modes(mode: str) -> None:
    lines = ["Harbor Office Goods", "Total due 123.45 EUR"]
    image = invoice_in_mode(lines, mode)
    page = tesseract.recognize(image)
    assert [normalise_spaces(line.text) for line in page.lines] == lines


def test_transparent_background_reads_as_white() -> None:
    lines = ["Blue River Logistics", "Invoice No 48213"]
    image = transparent_invoice(lines)
    page = tesseract.recognize(image)
    assert [normalise_spaces(line.text) for line in page.lines] == lines


def test_unavailable_without_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="tesseract binary not found"):
        tesseract.check_available()


def test_unavailable_without_english(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_tesseract(tmp_path, "echo 'List of available languages (1):'\necho osd")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineUnavailable, match="'eng' language data"):
        tesseract.check_available()


def test_failure_carries_stderr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "cat >/dev/null\necho 'Error in pixReadStream' >&2\nexit 1")
    monkeypatch.setattr(tesseract, "_binary", str(fake))
    with pytest.raises(tesseract.TesseractError, match="status 1: Error in pixReadStream"):
        tesseract.recognize(Image.new("RGB", (50, 50), "white"))


def test_hung_binary_times_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_tesseract(tmp_path, "exec sleep 30")
    monkeypatch.setattr(tesseract, "_binary", str(fake))
    monkeypatch.setattr(tesseract, "_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(tesseract.TesseractError, match=r"timed out after 0\.5 s"):
        tesseract.recognize(Image.new("RGB", (50, 50), "white"))


def test_runs_single_threaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_tesseract(
        tmp_path,
        "cat >/dev/null\n"
        "printf 'level\\tpage_num\\tblock_num\\tpar_num\\tline_num\\tword_num\\t"
        "left\\ttop\\twidth\\theight\\tconf\\ttext\\n'\n"
        'printf "5\\t1\\t1\\t1\\t1\\t1\\t2\\t3\\t10\\t8\\t90\\t$OMP_THREAD_LIMIT\\n"',
    )
    monkeypatch.setenv("OMP_THREAD_LIMIT", "8")
    monkeypatch.setattr(tesseract, "_binary", str(fake))
    page = tesseract.recognize(Image.new("RGB", (50, 50), "white"))
    assert page.text == "1"
    assert page.lines[0].bbox == (2, 3, 12, 11)
    assert page.lines[0].confidence == pytest.approx(0.9)


def test_words_grouped_into_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rows = [
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
        "1\t1\t0\t0\t0\t0\t0\t0\t200\t100\t-1\t",
        "4\t1\t1\t1\t1\t0\t10\t10\t150\t20\t-1\t",
        "5\t1\t1\t1\t1\t1\t10\t12\t40\t18\t96.5\tTotal",
        "5\t1\t1\t1\t1\t2\t60\t10\t30\t20\t93.5\tdue",
        "5\t1\t1\t1\t1\t3\t100\t11\t60\t19\t120\t1.00",
        "5\t1\t1\t1\t2\t1\t10\t50\t40\t20\t-1\t ",
        "5\t1\t1\t1\t3\t1\t10\t70\t250\t40\t-5\tEUR",
    ]
    tsv = tmp_path / "out.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    fake = _fake_tesseract(tmp_path, f"cat >/dev/null\ncat '{tsv}'")
    monkeypatch.setattr(tesseract, "_binary", str(fake))
    page = tesseract.recognize(Image.new("RGB", (200, 100), "white"))
    assert page.text == "Total due 1.00\nEUR"
    total, eur = page.lines
    assert total.bbox == (10, 10, 160, 30)
    assert total.confidence == pytest.approx(1.0)  # (96.5 + 93.5 + 120) / 3 / 100, clamped
    assert eur.bbox == (10, 70, 200, 100)  # clamped to the image
    assert eur.confidence == 0.0
    assert [(word.text, word.bbox) for word in total.words] == [
        ("Total", (10, 12, 50, 30)),
        ("due", (60, 10, 90, 30)),
        ("1.00", (100, 11, 160, 30)),
    ]
    assert [word.confidence for word in total.words] == pytest.approx([0.965, 0.935, 1.0])
    assert [(word.text, word.bbox, word.confidence) for word in eur.words] == [
        ("EUR", (10, 70, 200, 100), 0.0)
    ]


def test_words_joined_by_the_mending_get_the_union_of_their_boxes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = [
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
        "5\t1\t1\t1\t1\t1\t10\t12\t40\t18\t90\tTotal",
        "5\t1\t1\t1\t1\t2\t60\t10\t50\t20\t80\tRM324",
        "5\t1\t1\t1\t1\t3\t114\t11\t30\t19\t60\t.37",
    ]
    tsv = tmp_path / "out.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    fake = _fake_tesseract(tmp_path, f"cat >/dev/null\ncat '{tsv}'")
    monkeypatch.setattr(tesseract, "_binary", str(fake))
    (line,) = tesseract.recognize(Image.new("RGB", (200, 100), "white")).lines
    assert line.text == "Total RM324.37"
    total, amount = line.words
    assert (total.text, total.bbox) == ("Total", (10, 12, 50, 30))
    assert (amount.text, amount.bbox) == ("RM324.37", (60, 10, 144, 30))
    assert amount.confidence == pytest.approx((0.8 * 5 + 0.6 * 3) / 8)


def test_words_boxed_where_drawn() -> None:
    tesseract.load()
    assert_words_where_drawn(tesseract.recognize(words_page()), tolerance=5)
