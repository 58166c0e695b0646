"""A PDF page's text layer as lines and words, boxed in pixels of the page's raster.

Characters come from PDFium's text page (``FPDFText_*``) in its text order. Lines break
where PDFium puts a line break (the ``\\r\\n`` it generates between lines) or where the next
character does not overlap the previous one, on either axis, by half its size (a fallback
for text PDFium did not break). Words are the maximal runs of characters that are not
spaces, generated or real. Boxes are PDFium's loose character boxes (the font's full
height, so a line's words share one top and bottom), mapped into the raster by
``FPDF_PageToDevice``: the same transform PDFium renders with, so ``/Rotate`` and an
offset CropBox are taken into account. Characters outside the raster (off the CropBox)
are left out, as they are never seen.
"""

from __future__ import annotations

import ctypes
import math
import unicodedata
from dataclasses import dataclass
from typing import Any

import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

from ocrstream.core.documents import Bbox, Line, Word

__all__ = ["TextLayer", "read_text_layer"]

#: A box in PDF page space: left, bottom, right, top, in points.
_PageBox = tuple[float, float, float, float]
#: Device coordinates are integers; PageToDevice is asked for a raster this many times
#: larger (within int32), so the transform is exact to a small fraction of a pixel.
_PRECISION = 1024
_INT32_ROOM = 2**30
#: A character continues the line when it overlaps the previous one by this share.
_OVERLAP = 0.5
#: Line confidence of text read from the layer: it is the document's own text.
_CONFIDENCE = 1.0
_BREAK = "\n"
_SPACE = " "


@dataclass(frozen=True, slots=True, kw_only=True)
class TextLayer:
    """The visible text of a page's text layer.

    Attributes:
        text: the lines' texts joined by LF.
        lines: the lines in PDFium's text order, each with its words.
    """

    text: str
    lines: tuple[Line, ...]


@dataclass(slots=True)
class _Char:
    text: str
    box: _PageBox | None


class _Frame:
    """The affine map from PDF page space to raster pixels (origin top left)."""

    def __init__(self, page: Any, raster: tuple[int, int]) -> None:
        width, height = raster
        factor = max(1, min(_PRECISION, _INT32_ROOM // max(width, height, 1)))
        left, bottom, right, top = page.get_bbox()
        x, y = ctypes.c_int(), ctypes.c_int()

        def device(px: float, py: float) -> tuple[float, float]:
            pdfium_c.FPDF_PageToDevice(
                page.raw, 0, 0, width * factor, height * factor, 0, px, py, x, y
            )
            return x.value / factor, y.value / factor

        span_x = (right - left) or 1.0
        span_y = (top - bottom) or 1.0
        self._left, self._bottom = left, bottom
        self._origin = device(left, bottom)
        corner_x, corner_y = device(right, bottom), device(left, top)
        self._ux = (
            (corner_x[0] - self._origin[0]) / span_x,
            (corner_x[1] - self._origin[1]) / span_x,
        )
        self._uy = (
            (corner_y[0] - self._origin[0]) / span_y,
            (corner_y[1] - self._origin[1]) / span_y,
        )
        self.width, self.height = width, height

    def _point(self, px: float, py: float) -> tuple[float, float]:
        dx, dy = px - self._left, py - self._bottom
        return (
            self._origin[0] + dx * self._ux[0] + dy * self._uy[0],
            self._origin[1] + dx * self._ux[1] + dy * self._uy[1],
        )

    def device_box(self, box: _PageBox) -> tuple[float, float, float, float]:
        left, bottom, right, top = box
        corners = [self._point(left, bottom), self._point(right, top)]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        return min(xs), min(ys), max(xs), max(ys)

    def visible(self, box: _PageBox) -> bool:
        x0, y0, x1, y1 = self.device_box(box)
        return x0 < self.width and y0 < self.height and x1 > 0 and y1 > 0

    def pixels(self, box: _PageBox) -> Bbox:
        x0, y0, x1, y1 = self.device_box(box)
        left = min(self.width, max(0, math.floor(x0)))
        top = min(self.height, max(0, math.floor(y0)))
        right = min(self.width, max(left, math.ceil(x1)))
        bottom = min(self.height, max(top, math.ceil(y1)))
        return (left, top, right, bottom)


def _char_box(textpage: Any, index: int, rect: Any) -> _PageBox | None:
    # Loose box first (the font's full height); the tight glyph box when that is empty.
    if pdfium_c.FPDFText_GetLooseCharBox(textpage, index, rect):
        box = (rect.left, rect.bottom, rect.right, rect.top)
        if box[2] > box[0] and box[3] > box[1]:
            return box
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    if pdfium_c.FPDFText_GetCharBox(textpage, index, left, right, bottom, top):
        box = (left.value, bottom.value, right.value, top.value)
        if box[2] > box[0] or box[3] > box[1]:
            return box
    return None


def _characters(textpage: Any) -> list[_Char | str]:
    """The text page as characters, ``_BREAK`` and ``_SPACE`` markers."""
    count = pdfium_c.FPDFText_CountChars(textpage)
    rect = pdfium_c.FS_RECTF()
    items: list[_Char | str] = []
    index = 0
    while index < count:
        code = pdfium_c.FPDFText_GetUnicode(textpage, index)
        box_index = index
        index += 1
        if 0xD800 <= code < 0xDC00 and index < count:
            low = pdfium_c.FPDFText_GetUnicode(textpage, index)
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                index += 1
        if code in (0x0A, 0x0D, 0x2028, 0x2029):
            items.append(_BREAK)
            continue
        if not 0 < code <= 0x10FFFF or 0xD800 <= code < 0xE000:
            continue  # no Unicode value PDFium could find, or a lone surrogate
        character = chr(code)
        if character.isspace():
            items.append(_SPACE)
        elif unicodedata.category(character) not in ("Cc", "Cf"):
            items.append(_Char(character, _char_box(textpage, box_index, rect)))
    return items


def _same_line(previous: _PageBox, box: _PageBox) -> bool:
    def overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
        size = min(a1 - a0, b1 - b0)
        return size > 0 and min(a1, b1) - max(a0, b0) >= _OVERLAP * size

    degenerate = min(previous[2] - previous[0], box[2] - box[0]) <= 0 and (
        min(previous[3] - previous[1], box[3] - box[1]) <= 0
    )
    return (
        degenerate
        or overlaps(previous[1], previous[3], box[1], box[3])
        or overlaps(previous[0], previous[2], box[0], box[2])
    )


def _group(items: list[_Char | str], frame: _Frame) -> list[list[list[_Char]]]:
    """Lines of words of visible characters."""
    lines: list[list[list[_Char]]] = []
    line: list[list[_Char]] = []
    word: list[_Char] = []
    previous: _PageBox | None = None

    def end_word() -> None:
        nonlocal word
        if word:
            line.append(word)
            word = []

    def end_line() -> None:
        nonlocal line, previous
        end_word()
        if line:
            lines.append(line)
            line = []
        previous = None

    for item in items:
        if item == _BREAK:
            end_line()
        elif item == _SPACE:
            end_word()
        elif isinstance(item, _Char):
            if item.box is not None and not frame.visible(item.box):
                continue
            if item.box is None and previous is not None:
                # No geometry of its own: a zero-width box where the previous one ends.
                item.box = (previous[2], previous[1], previous[2], previous[3])
            if item.box is not None:
                if previous is not None and not _same_line(previous, item.box):
                    end_line()
                previous = item.box
            word.append(item)
    end_line()
    return lines


def _union(boxes: list[_PageBox]) -> _PageBox | None:
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _pixel_union(boxes: list[Bbox]) -> Bbox:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _line(words: list[list[_Char]], frame: _Frame) -> Line:
    boxed: list[Word] = []
    for chars in words:
        page_box = _union([c.box for c in chars if c.box is not None])
        bbox = frame.pixels(page_box) if page_box is not None else (0, 0, 0, 0)
        text = "".join(c.text for c in chars)
        boxed.append(Word(text=text, confidence=_CONFIDENCE, bbox=bbox))
    return Line(
        text=" ".join(w.text for w in boxed),
        confidence=_CONFIDENCE,
        bbox=_pixel_union([w.bbox for w in boxed]),
        words=tuple(boxed),
    )


def read_text_layer(page: Any, *, raster: tuple[int, int]) -> TextLayer | None:
    """The visible text of ``page``'s text layer, boxed in its raster's pixels.

    Args:
        page: an open ``pypdfium2.PdfPage`` (left open).
        raster: the raster's (width, height) in pixels, as rendered at the page's dpi.

    Returns:
        The lines and text, or None when the visible page holds no text (no characters
        but spaces), so the page should be rendered and recognised instead.
    """
    textpage = page.get_textpage()
    try:
        items = _characters(textpage)
    finally:
        textpage.close()
    frame = _Frame(page, raster)
    lines = tuple(_line(words, frame) for words in _group(items, frame))
    if not lines:
        return None
    return TextLayer(text="\n".join(line.text for line in lines), lines=lines)
