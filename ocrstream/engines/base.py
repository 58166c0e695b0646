"""What an OCR engine is to the rest of the service.

An engine is a synchronous function run inside a worker process (never on the Trio
thread): image bytes in, a :class:`PageText` out. Each engine module exposes::

    NAME: str                                   # "rapidocr", "tesseract", "fake"
    def check_available() -> None               # raises EngineUnavailable with a clear message
    def load(options: EngineOptions | None = None) -> None
                                                # load the model once per worker process;
                                                # options (None: the defaults) hold from then on
    def recognize(image: Image.Image) -> PageText

``recognize`` gets an RGB(A)/L image already decoded and turned upright per its EXIF
orientation; it returns the full text in reading order (lines joined with "\\n") and
the lines with text, confidence in 0..1 and bbox [x0, y0, x1, y1] in image pixels, and
each line's words: exactly ``line.text.split()``, in order, each with its confidence and
its box inside the page (:func:`fit_words` keeps an engine's own word boxes when the
text is mended).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocrstream.core.documents import Bbox, Line, Word, split_words

# Raised by every engine's check_available(); it is part of the one error tree.
from ocrstream.core.errors import EngineUnavailable

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_MAX_SIDE",
    "EngineOptions",
    "EngineUnavailable",
    "PageLine",
    "PageText",
    "fit_words",
    "join_lines",
    "mend_numbers",
    "mended",
]

# A separator cut off from its digits by a space, where the digits after it make an
# amount's decimals (".00"), a thousands group (",826") or a time's minutes (":38").
_CUT_NUMBER = re.compile(
    r"(?<=\d)(?: ([.:]) ?| ?([.:]) )(?=\d{2}(?!\d))|(?<=\d)(?: (,) ?| ?(,) )(?=\d{3}(?!\d))"
)

#: OCR_MAX_SIDE's default: RapidOCR's own working size, in pixels.
DEFAULT_MAX_SIDE = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """What the settings tell an engine.

    Attributes:
        max_side: OCR_MAX_SIDE, pixels: a page whose long side is longer is cut to its
            printed area first; RapidOCR's detector then works on it scaled to this
            long side and reads the lines at full resolution.
    """

    max_side: int = DEFAULT_MAX_SIDE


#: One recognised line, with its words (:class:`ocrstream.core.documents.Line`; an engine
#: that cannot box its words leaves them empty and the service boxes them).
PageLine = Line


@dataclass(frozen=True, slots=True, kw_only=True)
class PageText:
    """A page's recognised text: ``text`` is the lines in reading order, joined by LF."""

    text: str
    lines: tuple[PageLine, ...]


def mend_numbers(text: str) -> str:
    """Take out the spaces an engine put inside a number ("RM324 .37", "7 ,826.70",
    "15 :38" become "RM324.37", "7,826.70", "15:38").

    Only where the separator has a digit before it and, after it, exactly the digits of
    an amount's decimals or minutes (two) or of a thousands group (three, after a
    comma): a list number and a word ("1. 25 PCS") would be joined too, which on
    receipts is far rarer than a cut amount.
    """
    return _CUT_NUMBER.sub(lambda match: next(group for group in match.groups() if group), text)


def mended(line: PageLine) -> PageLine:
    """``line`` with :func:`mend_numbers` applied to its text, its words fitted to it."""
    text = mend_numbers(line.text)
    if text == line.text:
        return line
    return Line(
        text=text,
        confidence=line.confidence,
        bbox=line.bbox,
        words=fit_words(text, line.words, line.bbox, line.confidence),
    )


def fit_words(text: str, pieces: Sequence[Word], bbox: Bbox, confidence: float) -> tuple[Word, ...]:
    """The words of ``text`` (exactly ``text.split()``), boxed from the engine's ``pieces``.

    ``pieces`` are the engine's own words, from which ``text`` was made by taking out or
    putting in spaces only ("324 .37" mended into "324.37", two boxes of a line joined):
    a word made of several pieces gets the union of their boxes and their confidence
    weighted by length; a word cut out of a piece gets its share of the piece's box, in
    proportion to its characters. Where ``text`` is not made of the pieces' characters
    (or there are none), the words are boxed by
    :func:`~ocrstream.core.documents.split_words` of the line.

    Args:
        text: the line's text.
        pieces: the engine's words, in reading order.
        bbox: the line's box.
        confidence: the line's confidence (for the fallback).
    """
    tokens = text.split()
    inked = ["".join(piece.text.split()) for piece in pieces]
    if not pieces or "".join(inked) != "".join(tokens):
        return split_words(text, bbox, confidence)
    # Each character of the pieces (spaces left out): its piece and its place in it.
    owners = [(number, place) for number, chars in enumerate(inked) for place in range(len(chars))]
    words: list[Word] = []
    start = 0
    for token in tokens:
        places: dict[int, list[int]] = {}
        for number, place in owners[start : start + len(token)]:
            places.setdefault(number, []).append(place)
        start += len(token)
        boxes: list[Bbox] = []
        weighted = 0.0
        for number, taken in places.items():
            length = len(inked[number])
            x0, y0, x1, y1 = pieces[number].bbox
            left = x0 + round((x1 - x0) * min(taken) / length)
            right = x0 + round((x1 - x0) * (max(taken) + 1) / length)
            boxes.append((left, y0, max(left, right), y1))
            weighted += pieces[number].confidence * len(taken)
        box = (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        words.append(Word(text=token, confidence=weighted / len(token), bbox=box))
    return tuple(words)


def join_lines(lines: list[PageLine]) -> PageText:
    """Order lines top to bottom, then left to right, and build the page text.

    Lines whose vertical centres are within half a line height of each other count as
    one row (a label and its amount on the same row stay in left-to-right order).
    """
    rows: list[list[PageLine]] = []
    for line in sorted(lines, key=lambda item: (item.bbox[1] + item.bbox[3]) / 2):
        centre = (line.bbox[1] + line.bbox[3]) / 2
        height = max(1, line.bbox[3] - line.bbox[1])
        if rows:
            last = rows[-1][-1]
            last_centre = (last.bbox[1] + last.bbox[3]) / 2
            if abs(centre - last_centre) < height / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    ordered = [line for row in rows for line in sorted(row, key=lambda item: item.bbox[0])]
    return PageText(text="\n".join(line.text for line in ordered), lines=tuple(ordered))
