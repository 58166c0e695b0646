"""The RapidOCR engine with its bundled ONNX models (rapidocr-onnxruntime is a dependency)."""

from __future__ import annotations

import io
import sys
import types
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ocrstream.engines import rapidocr
from ocrstream.engines.base import EngineUnavailable, PageText
from ocrstream.engines.rapidocr import adapter, spacing
from tests.engine_contract import (
    assert_page_contract,
    assert_reading_order,
    invoice_in_mode,
    transparent_invoice,
)
from tests.invoices import exact_lines, invoice_set

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from numpy.typing import NDArray

MIN_EXACT_LINES = 0.95

Pages = list[tuple[tuple[str, ...], Image.Image, PageText]]


def _upright(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.exif_transpose(image)


@pytest.fixture(scope="module")
def invoice_pages() -> Pages:
    """Each invoice's drawn lines, its upright image and what RapidOCR read on it."""
    rapidocr.load()
    pages = []
    for invoice in invoice_set(20):
        image = _upright(invoice.data)
        pages.append((invoice.lines, image, rapidocr.recognize(image)))
    return pages


def _exact_lines(pages: Pages, *, ignore_spaces: bool = False) -> tuple[int, int, list[str]]:
    """(lines read exactly, lines drawn, lines missed) over ``pages``."""
    return exact_lines(
        ((lines, page) for lines, _image, page in pages), ignore_spaces=ignore_spaces
    )


def test_name() -> None:
    assert rapidocr.NAME == "rapidocr"


def test_available_here() -> None:
    rapidocr.check_available()


def test_load_builds_the_engine_once() -> None:
    rapidocr.load()
    first = adapter._ENGINE
    rapidocr.load()
    assert first is not None
    assert adapter._ENGINE is first
    assert first.spacing, "the spacing taps did not fit this rapidocr-onnxruntime"


def _thread_settings() -> list[tuple[int, int]]:
    """(intra-op, inter-op) threads of each ONNX Runtime session of the loaded engine.

    Reads rapidocr-onnxruntime 1.4.x internals.
    """
    rapidocr.load()
    assert adapter._ENGINE is not None
    ocr = adapter._ENGINE.ocr
    sessions = [ocr.text_det.infer, ocr.text_cls.infer, ocr.text_rec.session]
    settings = []
    for wrapper in sessions:
        options = wrapper.session.get_session_options()
        settings.append((int(options.intra_op_num_threads), int(options.inter_op_num_threads)))
    return settings


def test_runs_single_threaded() -> None:
    assert _thread_settings() == [(1, 1)] * 3


def test_invoice_lines_read_exactly(
    invoice_pages: Pages, record_property: Callable[[str, object], None]
) -> None:
    exact, drawn, missed = _exact_lines(invoice_pages)
    exact_letters, _, _ = _exact_lines(invoice_pages, ignore_spaces=True)
    record_property("lines_exact", f"{exact}/{drawn}")
    record_property("lines_exact_ignoring_spaces", f"{exact_letters}/{drawn}")
    print(f"rapidocr: {exact}/{drawn} lines exact, {exact_letters}/{drawn} ignoring spaces")
    assert exact / drawn >= MIN_EXACT_LINES, f"{exact}/{drawn} lines exact; missed {missed}"


def test_page_contract(invoice_pages: Pages) -> None:
    assert_page_contract(invoice_pages, empty_boxes_allowed=False)


def test_lines_top_to_bottom(invoice_pages: Pages) -> None:
    assert_reading_order(invoice_pages)


@pytest.mark.parametrize("size", [(400, 200), (1, 1), (0, 0), (3000, 20), (20, 3000)])
def test_blank_page_is_empty(size: tuple[int, int]) -> None:
    assert rapidocr.recognize(Image.new("RGB", size, "white")) == PageText(text="", lines=())


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_image_modes(mode: str) -> None:
    lines = ["Harbor Office Goods", "Total due 123.45 EUR"]
    image = invoice_in_mode(lines, mode)
    page = rapidocr.recognize(image)
    assert [line.text for line in page.lines] == lines


def test_transparent_background_reads_as_white() -> None:
    lines = ["Blue River Logistics", "Invoice No 48213"]
    image = transparent_invoice(lines)
    page = rapidocr.recognize(image)
    assert [line.text for line in page.lines] == lines


def test_long_thin_strip() -> None:
    text = "Paid by card on 2026-03-14 Total due 12.50 EUR"
    font = ImageFont.load_default(size=20)
    image = Image.new("RGB", (1500, 26), "white")
    ImageDraw.Draw(image).text((5, 2), text, font=font, fill="black")
    page = rapidocr.recognize(image)
    assert page.text == text
    assert page.lines[0].bbox[3] <= 26


def test_unavailable_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(EngineUnavailable, match="rapidocr-onnxruntime") as caught:
        rapidocr.check_available()
    assert "\n" not in str(caught.value)


def test_unavailable_without_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = types.ModuleType("rapidocr_onnxruntime")
    package.__file__ = str(tmp_path / "__init__.py")
    (tmp_path / "config.yaml").write_text("Det:\n    model_path: models/det.onnx\n")
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", package)
    with pytest.raises(EngineUnavailable, match=r"model file missing: .*det\.onnx"):
        rapidocr.check_available()


def _line_crop(ink_columns: list[tuple[int, int]]) -> NDArray[np.float32]:
    """A 48x128 recogniser crop (values -1..1): white, black in the given column ranges."""
    crop = np.ones((3, 48, 128), dtype=np.float32)
    for start, end in ink_columns:
        crop[:, 10:38, start:end] = -1.0
    return crop


def _probabilities(frames: dict[int, int], space: dict[int, float]) -> NDArray[np.float32]:
    """16 frames of probabilities over the classes blank, "a", "b", " "."""
    probs = np.zeros((16, 4), dtype=np.float32)
    probs[:, 0] = 1.0
    for frame, label in frames.items():
        probs[frame] = 0.0
        probs[frame, label] = 1.0
    for frame, p in space.items():
        probs[frame, 0] = 1.0 - p
        probs[frame, 3] = p
    return probs


CLASSES = ["blank", "a", "b", " "]
# "aabab": characters at frames 1, 3, 5, 10 and 12 (8 columns a frame), each 10 columns
# of ink around its frame; 6 blank columns between characters but 30 between 5 and 10.
FRAMES = {1: 1, 3: 1, 5: 2, 10: 1, 12: 2}
CROP = _line_crop([(7, 17), (23, 33), (39, 49), (79, 89), (95, 105)])


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({}, "aabab"),  # a wide gap alone is not a space
        ({7: 0.001}, "aab ab"),  # a wide gap and a little space probability are
        ({2: 0.001, 7: 0.001}, "aab ab"),  # a little probability in a usual gap is not
        ({2: 0.2, 7: 0.001}, "a ab ab"),  # a fair probability is, whatever the gap
    ],
)
def test_respace(space: dict[int, float], expected: str) -> None:
    probs = _probabilities(FRAMES, space)
    assert spacing.respace(probs, CROP, 128 / 48, "aabab", CLASSES) == expected


def test_respace_keeps_text_when_decoding_differs() -> None:
    probs = _probabilities(FRAMES, {7: 0.5})
    assert spacing.respace(probs, CROP, 128 / 48, "different", CLASSES) == "different"
