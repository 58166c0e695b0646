"""The checks every OCR engine's tests share (the engines' contract, ocrstream/engines/base.py)."""

from __future__ import annotations

import io
from collections.abc import Iterable

from PIL import Image, ImageFont, ImageOps

from ocrstream.engines.base import PageLine, PageText
from tests.invoices import render_invoice
from tests.text import normalise_spaces

__all__ = [
    "WORDS_LINE",
    "assert_page_contract",
    "assert_reading_order",
    "assert_words",
    "assert_words_where_drawn",
    "invoice_in_mode",
    "transparent_invoice",
    "words_page",
]

Pages = Iterable[tuple[tuple[str, ...], Image.Image, PageText]]

#: How far (pixels) a word's box may reach outside its line's box.
WORD_SLACK = 3
#: The line the engines' word tests draw, and the font size it is drawn at.
WORDS_LINE = "Total 1,234.56 EUR"
_WORDS_FONT_SIZE = 28


def assert_page_contract(pages: Pages, *, empty_boxes_allowed: bool) -> None:
    """Lines are non-empty, single-spaced, with confidence 0..1 and int boxes in the image;
    ``text`` is the lines joined by LF."""
    for _lines, image, page in pages:
        width, height = image.size
        assert page.lines
        assert page.text == "\n".join(line.text for line in page.lines)
        for line in page.lines:
            assert line.text
            assert line.text == normalise_spaces(line.text)
            assert isinstance(line.confidence, float)
            assert 0.0 <= line.confidence <= 1.0
            x0, y0, x1, y1 = line.bbox
            assert all(isinstance(value, int) for value in line.bbox)
            if empty_boxes_allowed:
                assert 0 <= x0 <= x1 <= width
                assert 0 <= y0 <= y1 <= height
            else:
                assert 0 <= x0 < x1 <= width
                assert 0 <= y0 < y1 <= height
            assert_words(line, width, height)


def assert_words(line: PageLine, width: int, height: int) -> None:
    """The line's words are ``line.text.split()``, left to right, with confidence 0..1 and
    int boxes inside the page and (give or take ``WORD_SLACK`` px) inside the line's box."""
    assert [word.text for word in line.words] == line.text.split()
    x0, y0, x1, y1 = line.bbox
    previous = 0
    for word in line.words:
        assert 0.0 <= word.confidence <= 1.0
        assert all(isinstance(value, int) for value in word.bbox)
        left, top, right, bottom = word.bbox
        assert 0 <= left <= right <= width
        assert 0 <= top <= bottom <= height
        assert x0 - WORD_SLACK <= left
        assert right <= x1 + WORD_SLACK
        assert y0 - WORD_SLACK <= top
        assert bottom <= y1 + WORD_SLACK
        assert left >= previous
        previous = left


def words_page() -> Image.Image:
    """``WORDS_LINE`` drawn alone on a page (RGB)."""
    with Image.open(io.BytesIO(render_invoice([WORDS_LINE], font_size=_WORDS_FONT_SIZE))) as source:
        return source.convert("RGB")


def _drawn_word_boxes() -> list[tuple[float, float, float, float]]:
    """Where each word of ``WORDS_LINE`` was drawn on :func:`words_page` (the font's
    boxes of the words, placed after the text before them)."""
    font = ImageFont.load_default(size=_WORDS_FONT_SIZE)
    origin = _WORDS_FONT_SIZE  # render_invoice's margin
    boxes = []
    start = 0
    for word in WORDS_LINE.split():
        start = WORDS_LINE.index(word, start)
        x = origin + font.getlength(WORDS_LINE[:start])
        left, top, right, bottom = font.getbbox(word)
        boxes.append((x + left, origin + top, x + right, origin + bottom))
        start += len(word)
    return boxes


def assert_words_where_drawn(page: PageText, *, tolerance: float) -> None:
    """``WORDS_LINE`` was read as its three words, each boxed where it was drawn: the
    box's left and right within ``tolerance`` px of the drawn word's, and its rows
    across the drawn word's middle."""
    (line,) = [line for line in page.lines if line.text == WORDS_LINE]
    assert [word.text for word in line.words] == ["Total", "1,234.56", "EUR"]
    for word, (left, top, right, bottom) in zip(line.words, _drawn_word_boxes(), strict=True):
        x0, y0, x1, y1 = word.bbox
        assert abs(x0 - left) <= tolerance, (word, left)
        assert abs(x1 - right) <= tolerance, (word, right)
        assert y0 <= (top + bottom) / 2 <= y1, (word, top, bottom)


def assert_reading_order(pages: Pages) -> None:
    """The drawn lines that were read come back top to bottom."""
    for lines, _image, page in pages:
        read = [normalise_spaces(line.text) for line in page.lines]
        assert [line for line in read if line in lines] == [line for line in lines if line in read]


def invoice_in_mode(lines: list[str], mode: str) -> Image.Image:
    """``lines`` drawn black on white, converted to Pillow ``mode``."""
    with Image.open(io.BytesIO(render_invoice(lines))) as source:
        return source.convert("L").convert(mode) if mode == "I;16" else source.convert(mode)


def transparent_invoice(lines: list[str]) -> Image.Image:
    """Black text on a fully transparent page (the colour under the alpha is black too)."""
    with Image.open(io.BytesIO(render_invoice(lines))) as source:
        image = source.convert("RGBA")
    alpha = ImageOps.invert(image.convert("L"))
    transparent = Image.new("RGBA", image.size, (0, 0, 0, 0))
    transparent.putalpha(alpha)
    return transparent
