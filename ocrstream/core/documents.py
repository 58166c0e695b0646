"""A recognised file as pages, lines and words: what the results route and every export
(JSON, text, hOCR, ALTO, searchable PDF) are made from.

Pure values. Coordinates are integer pixels ``[x0, y0, x1, y1]`` of the page's raster,
origin top left: for a PDF page the raster it was rendered at (``dpi``), for an image
the image itself, upright. Confidences are within 0..1. A word is a maximal run without
spaces in its line (SPEC "Results and exports"); engines that cannot box words get
:func:`split_words`, which boxes them in proportion to their characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "PAGE_SEPARATOR",
    "Bbox",
    "Document",
    "Line",
    "Page",
    "PageSource",
    "Word",
    "clamp_confidence",
    "document_from_json",
    "page_from_json",
    "page_to_json",
    "split_words",
    "with_words",
]

Bbox = tuple[int, int, int, int]
#: Where a page's text came from: recognised by the engine, or read from a PDF's text layer.
PageSource = Literal["ocr", "text_layer"]
#: What separates pages in a file's text (SPEC: a form feed).
PAGE_SEPARATOR = "\f"


def clamp_confidence(value: float) -> float:
    """``value`` brought within 0..1 (engines report a little outside it at times)."""
    return min(1.0, max(0.0, float(value)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Word:
    """One word: a maximal run of its line's text without spaces, and its box."""

    text: str
    confidence: float
    bbox: Bbox


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    """One line of text with its box, and its words (empty until an engine or
    :func:`with_words` boxes them)."""

    text: str
    confidence: float
    bbox: Bbox
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page's result.

    Attributes:
        page_index: 0-based, in the file's page order.
        source: ``ocr`` or ``text_layer``.
        width: the raster's width in pixels (the coordinates' frame).
        height: its height in pixels.
        dpi: the render DPI of a PDF page; an image's stored resolution, or None.
        text: the lines in reading order, joined by LF.
        lines: the lines, each with its words.
    """

    page_index: int
    source: PageSource
    width: int
    height: int
    dpi: float | None
    text: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One recognised file: every page, in page order."""

    file_index: int
    file_name: str
    format: str
    page_count: int
    pages: tuple[Page, ...] = field(default=())

    @property
    def text(self) -> str:
        """The pages' texts in page order, joined by a form feed."""
        return PAGE_SEPARATOR.join(page.text for page in self.pages)

    def to_json(self) -> dict[str, object]:
        """The ``format=json`` document of SPEC "Results and exports"."""
        return {
            "file_index": self.file_index,
            "file_name": self.file_name,
            "format": self.format,
            "page_count": self.page_count,
            "pages": [_page_json(page) for page in self.pages],
        }


def document_from_json(data: object) -> Document:
    """The way back from :meth:`Document.to_json` (the document as another instance
    stored it).

    Raises:
        ValueError: not such a document.
    """
    fields = _object(data)
    return Document(
        file_index=_int(fields["file_index"]),
        file_name=_str(fields["file_name"]),
        format=_str(fields["format"]),
        page_count=_int(fields["page_count"]),
        pages=tuple(_page_from_json(page) for page in _list(fields["pages"])),
    )


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return {str(name): item for name, item in value.items()}


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _bbox(value: object) -> Bbox:
    x0, y0, x1, y1 = (_int(item) for item in _list(value))
    return (x0, y0, x1, y1)


def _word_from_json(data: object) -> Word:
    fields = _object(data)
    return Word(
        text=_str(fields["text"]),
        confidence=_float(fields["confidence"]),
        bbox=_bbox(fields["bbox"]),
    )


def _line_from_json(data: object) -> Line:
    fields = _object(data)
    return Line(
        text=_str(fields["text"]),
        confidence=_float(fields["confidence"]),
        bbox=_bbox(fields["bbox"]),
        words=tuple(_word_from_json(word) for word in _list(fields["words"])),
    )


def _page_from_json(data: object) -> Page:
    fields = _object(data)
    source = fields["source"]
    if source != "ocr" and source != "text_layer":
        raise ValueError(f"unknown page source {source!r}")
    dpi = fields["dpi"]
    return Page(
        page_index=_int(fields["page_index"]),
        source=source,
        width=_int(fields["width"]),
        height=_int(fields["height"]),
        dpi=None if dpi is None else _float(dpi),
        text=_str(fields["text"]),
        lines=tuple(_line_from_json(line) for line in _list(fields["lines"])),
    )


def page_to_json(page: Page) -> dict[str, object]:
    """One page as plain JSON values (its shape in :meth:`Document.to_json`)."""
    return _page_json(page)


def page_from_json(data: object) -> Page:
    """The page :func:`page_to_json` made ``data`` from.

    Raises:
        ValueError: not such a page.
    """
    return _page_from_json(data)


def _page_json(page: Page) -> dict[str, object]:
    return {
        "page_index": page.page_index,
        "source": page.source,
        "width": page.width,
        "height": page.height,
        "dpi": page.dpi,
        "text": page.text,
        "lines": [
            {
                "text": line.text,
                "confidence": line.confidence,
                "bbox": list(line.bbox),
                "words": [
                    {"text": word.text, "confidence": word.confidence, "bbox": list(word.bbox)}
                    for word in line.words
                ],
            }
            for line in page.lines
        ],
    }


def split_words(text: str, bbox: Bbox, confidence: float) -> tuple[Word, ...]:
    """The words of a line whose engine gave no word boxes, boxed in proportion to
    their characters' positions along the line (as if every character had one width).

    Args:
        text: the line's text.
        bbox: the line's box.
        confidence: the line's confidence, given to each word.
    """
    x0, y0, x1, y1 = bbox
    length = len(text)
    if length == 0:
        return ()
    span = max(0, x1 - x0)
    words: list[Word] = []
    start: int | None = None
    for position, character in enumerate(f"{text} "):
        if character.isspace():
            if start is not None:
                left = x0 + round(span * start / length)
                right = max(left + 1, x0 + round(span * position / length)) if span else left
                box = (left, y0, right, y1)
                words.append(Word(text=text[start:position], confidence=confidence, bbox=box))
                start = None
        elif start is None:
            start = position
    return tuple(words)


def with_words(line: Line) -> Line:
    """``line`` itself when it has its words, else a copy boxed by :func:`split_words`."""
    if line.words or not line.text.strip():
        return line
    return Line(
        text=line.text,
        confidence=line.confidence,
        bbox=line.bbox,
        words=split_words(line.text, line.bbox, line.confidence),
    )
