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
the lines with text, confidence in 0..1 and bbox [x0, y0, x1, y1] in image pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Raised by every engine's check_available(); it is part of the one error tree.
from ocrstream.core.documents import Line
from ocrstream.core.errors import EngineUnavailable

__all__ = [
    "DEFAULT_MAX_SIDE",
    "EngineOptions",
    "EngineUnavailable",
    "PageLine",
    "PageText",
    "join_lines",
    "mend_numbers",
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
