"""The RapidOCR engine with its bundled ONNX models (rapidocr-onnxruntime is a dependency)."""

from __future__ import annotations

import io
import sys
import types
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ocrstream.engines import base, rapidocr
from ocrstream.engines.base import EngineUnavailable, PageText
from ocrstream.engines.rapidocr import adapter, spacing
from tests.engine_contract import (
    assert_page_contract,
    assert_reading_order,
    assert_words_where_drawn,
    invoice_in_mode,
    transparent_invoice,
    words_page,
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
        ({2: 0.2, 7: 0.001}, "aab ab"),  # nor a fair one (letter-spaced print has them)
    ],
)
def test_respace(space: dict[int, float], expected: str) -> None:
    probs = _probabilities(FRAMES, space)
    assert spacing.respace(probs, CROP, 128 / 48, "aabab", CLASSES) == expected


def test_respace_keeps_text_when_decoding_differs() -> None:
    probs = _probabilities(FRAMES, {7: 0.5})
    assert spacing.respace(probs, CROP, 128 / 48, "different", CLASSES) == "different"


# -- the spacing rule on crafted lines ------------------------------------------------

LINE_CLASSES = ["blank", *"0123456789.,:-/%ABDEGIJKLMNOPRSTUX", " "]
FRAME_COLUMNS = 4


def _crafted(
    layout: list[tuple[str, int, int, float]],
) -> tuple[NDArray[np.float32], NDArray[np.float32], float, str]:
    """A recogniser line from ``(char, ink width, blank after it, space probability
    after it)`` per character: its probabilities, crop, width/height ratio and text.

    Each character is one frame at the centre of its ink; the space probability sits
    in the frame halfway to the next character.
    """
    x = 6
    placed = []
    for char, width, gap, p_space in layout:
        placed.append((char, x, x + width, p_space))
        x += width + gap
    columns = x + 6
    frames = columns // FRAME_COLUMNS + 1
    crop = np.ones((3, 48, frames * FRAME_COLUMNS), dtype=np.float32)
    probs = np.zeros((frames, len(LINE_CLASSES)), dtype=np.float32)
    probs[:, 0] = 1.0
    centres = []
    for char, start, end, _p in placed:
        crop[:, 12:36, start:end] = -1.0
        frame = ((start + end) // 2) // FRAME_COLUMNS
        centres.append(frame)
        probs[frame] = 0.0
        probs[frame, LINE_CLASSES.index(char)] = 1.0
    for (_char, _start, _end, p_space), left, right in zip(
        placed, centres, centres[1:], strict=False
    ):
        middle = (left + right) // 2
        probs[middle, 0], probs[middle, -1] = 1.0 - p_space, p_space
    text = "".join(char for char, *_ in layout)
    return probs, crop, columns / 48, text


def _respaced(layout: list[tuple[str, int, int, float]]) -> str:
    probs, crop, ratio, text = _crafted(layout)
    return spacing.respace(probs, crop, ratio, text, LINE_CLASSES)


def _word(
    text: str, *, width: int = 10, gap: int = 4, p_space: float = 1e-5
) -> list[tuple[str, int, int, float]]:
    return [(char, width, gap, p_space) for char in text]


def _spaced(
    *parts: list[tuple[str, int, int, float]], gap: int, p_space: float
) -> list[tuple[str, int, int, float]]:
    """The parts one after the other, each part's last character followed by ``gap``
    blank columns and space probability ``p_space``."""
    joined: list[tuple[str, int, int, float]] = []
    for part in parts:
        if joined:
            char, width, _gap, _p = joined[-1]
            joined[-1] = (char, width, gap, p_space)
        joined.extend(part)
    return joined


def test_crafted_words_get_their_space() -> None:
    line = _spaced(_word("TOTAL"), _word("DUE"), gap=22, p_space=0.01)
    assert _respaced(line) == "TOTAL DUE"


@pytest.mark.parametrize("amount", ["73.00", "1,234.56", "4.00", "14/03/2026", "13:45:09"])
def test_an_amount_date_or_time_is_never_cut(amount: str) -> None:
    # A likely space by the model at every boundary, and beside each separator a blank
    # wider than any the line has between letters: still one number ("RM73. 00" no more).
    number = [
        (char, 10, 24 if char in ".,:/" or following in ".,:/" else 6, 0.4)
        for char, following in zip(amount, [*amount[1:], ""], strict=True)
    ]
    line = _spaced(_word("TOTAL", gap=6), number, gap=40, p_space=0.4)
    assert _respaced(line) == f"TOTAL {amount}"


def test_a_run_of_digits_is_not_cut() -> None:
    # A likely space by the model and a blank a word space would leave in the middle
    # of a long number (a tabular "1" leaves such blanks): the digits stay together.
    line = _spaced(_word("2026"), _word("1234"), gap=18, p_space=0.4)
    assert _respaced(line) == "20261234"


def test_a_date_and_then_a_time_are_two() -> None:
    line = _spaced(_word("2026-03-14"), _word("13:45"), gap=22, p_space=0.01)
    assert _respaced(line) == "2026-03-14 13:45"


def test_amounts_side_by_side_are_two() -> None:
    line = _spaced(_word("2"), _word("X"), _word("4.00"), _word("8.00"), gap=22, p_space=0.01)
    assert _respaced(line) == "2 X 4.00 8.00"


def test_a_letter_spaced_word_stays_whole() -> None:
    # Tracked print: wide gaps throughout and, as RapidOCR gives it there, a fair space
    # probability between letters; the narrow "I" and "L" leave wider blanks.
    letters = [
        (char, 4 if char in "IL" else 12, 20 if char in "IL" else 14, 0.3) for char in "SOLARIS"
    ]
    assert _respaced(letters) == "SOLARIS"


def test_letter_spaced_words_are_still_two() -> None:
    first = [(char, 12, 14, 0.3) for char in "PARK"]
    second = [(char, 12, 14, 0.3) for char in "LANE"]
    assert _respaced(_spaced(first, second, gap=44, p_space=0.3)) == "PARK LANE"


def test_weak_evidence_leaves_the_raw_text() -> None:
    # A wide gap the model gives no chance of being a space: the raw text stands.
    line = _spaced(_word("PARK"), _word("ING"), gap=40, p_space=1e-6)
    assert _respaced(line) == "PARKING"


@pytest.mark.parametrize(
    ("text", "index", "expected"),
    [
        ("73.00", 2, "separator"),
        ("73.00", 3, "separator"),
        ("1,234.56", 3, "digits"),
        ("6%", 1, "separator"),
        ("2026-03-1413:45", 10, "figures"),
        ("4.0012.50", 4, "figures"),
        ("4.0012.50", 5, "digits"),
        ("RM4", 2, None),
        ("A.B", 1, None),
    ],
)
def test_number_boundary(text: str, index: int, expected: str | None) -> None:
    assert spacing.number_boundary(text, index) == expected


# -- words ----------------------------------------------------------------------------


def test_words_boxed_where_drawn() -> None:
    rapidocr.load()
    assert_words_where_drawn(rapidocr.recognize(words_page()), tolerance=5)


def test_word_spans_follow_the_ink() -> None:
    # "TOTAL" in columns 6..72, "DUE" in 94..132 of a 138-column line.
    probs, crop, ratio, text = _crafted(_spaced(_word("TOTAL"), _word("DUE"), gap=22, p_space=0.01))
    spans = spacing.word_spans(probs, crop, ratio, text, "TOTAL DUE", LINE_CLASSES)
    assert spans is not None
    (total_start, total_end), (due_start, due_end) = spans
    width = ratio * 48
    assert total_start * width == pytest.approx(6, abs=1)
    assert total_end * width == pytest.approx(72, abs=1)
    assert due_start * width == pytest.approx(94, abs=1)
    assert due_end * width == pytest.approx(132, abs=1)


def test_word_spans_need_the_decoded_characters() -> None:
    probs, crop, ratio, _text = _crafted(_word("TOTAL"))
    assert spacing.word_spans(probs, crop, ratio, "TOTAL", "TOTALS", LINE_CLASSES) is None
    assert spacing.word_spans(probs, crop, ratio, "TOTEL", "TOTEL", LINE_CLASSES) is None


def test_words_placed_along_the_line_box_and_kept_through_the_mending() -> None:
    # A line box 100..300 x 20..40 whose words were read at these fractions of its width.
    quad = [[100, 20], [300, 20], [300, 40], [100, 40]]
    spans = ((0.0, 0.25), (0.35, 0.6), (0.65, 0.8))
    line = adapter._page_line([quad, "Total 324 .37", 0.9, spans], width=400, height=60)
    assert line is not None
    assert [(word.text, word.bbox) for word in line.words] == [
        ("Total", (100, 20, 150, 40)),
        ("324", (170, 20, 220, 40)),
        (".37", (230, 20, 260, 40)),
    ]
    mended = base.mended(line)
    assert mended.text == "Total 324.37"
    assert [(word.text, word.bbox) for word in mended.words] == [
        ("Total", (100, 20, 150, 40)),
        ("324.37", (170, 20, 260, 40)),
    ]


def test_words_without_spans_are_boxed_in_proportion() -> None:
    quad = [[0, 0], [120, 0], [120, 20], [0, 20]]
    line = adapter._page_line([quad, "ab cd", 0.8], width=200, height=50)
    assert line is not None
    assert [(word.text, word.bbox) for word in line.words] == [
        ("ab", (0, 0, 48, 20)),
        ("cd", (72, 0, 120, 20)),
    ]


def test_boxes_the_detector_split_keep_their_words() -> None:
    left = adapter._page_line(
        [[[10, 10], [60, 10], [60, 30], [10, 30]], "Blue", 0.9, ((0.1, 0.9),)],
        width=200,
        height=50,
    )
    right = adapter._page_line(
        [[[62, 10], [120, 10], [120, 30], [62, 30]], "River", 0.7, ((0.0, 1.0),)],
        width=200,
        height=50,
    )
    assert left is not None
    assert right is not None
    (line,) = adapter._merge_split_lines([left, right])
    assert line.text == "Blue River"
    assert [(word.text, word.bbox, word.confidence) for word in line.words] == [
        ("Blue", (15, 10, 55, 30), 0.9),
        ("River", (62, 10, 120, 30), 0.7),
    ]
