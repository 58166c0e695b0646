"""The checks every OCR engine's tests share (the engines' contract, ocrstream/engines/base.py)."""

from __future__ import annotations

import io
from collections.abc import Iterable

from PIL import Image, ImageOps

from ocrstream.engines.base import PageText
from tests.invoices import render_invoice
from tests.text import normalise_spaces

__all__ = ["assert_page_contract", "assert_reading_order", "invoice_in_mode", "transparent_invoice"]

Pages = Iterable[tuple[tuple[str, ...], Image.Image, PageText]]


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
