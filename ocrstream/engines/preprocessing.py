"""What a page goes through before an engine reads it: big pages cut to their print,
faint print darkened.

A small receipt scanned on an A4 page at 600 dpi is 4961 x 7016 pixels, most of them
blank. An engine that scales every page to a working size (RapidOCR's detector works
on at most OCR_MAX_SIDE pixels on the long side) shrinks the receipt's small print
with it until it is illegible. :func:`printed_area` finds the part of the page that
holds ink, so that only that part is read and, when it fits the working size, at full
resolution.

Faded thermal print is light grey on grey paper. :func:`faint_levels` tells such a page
(no dark ink at all, some light ink) and :func:`stretch_levels` maps its ink to black
and its paper to white. Whether an engine gains from that was measured per engine (see
the engines' modules): Tesseract does, RapidOCR does not.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

__all__ = [
    "Crop",
    "even_light",
    "faint_levels",
    "printed_area",
    "printed_areas",
    "stretch_levels",
    "text_height",
]

# The page is judged on a copy reduced by whole blocks to about this long side; a block
# keeps its darkest pixel, so thin or faint strokes survive the reduction.
_PROBE_SIDE = 1024
# A block is ink when it is this much darker than the page's paper (0-255).
_INK_CONTRAST = 40
# Rows and columns with fewer ink blocks than this are specks (dust, JPEG noise).
_MIN_INK_BLOCKS = 2
# The printed area is widened by this share of the page's long side on every side.
_MARGIN = 0.01
# Cropping is only worth it when it drops at least this share of the page's pixels.
_MIN_SAVING = 0.25
# Pieces of print (receipts scanned side by side) are apart by a blank band across the
# whole piece at least this share of the page's long side wide; rows of one receipt or
# columns of one table are far closer (a row's gap is about half its height).
_MIN_GAP = 0.01
# Neighbouring columns whose rows of ink coincide for this share are one table's columns.
_ALIGNED_ROWS = 0.9

# Faint print: at most this share of pixels darker than _DARK (so no real dark ink) ...
_DARK = 128
_MAX_DARK_SHARE = 0.0005
# ... and at least this share of ink, pixels this much darker than the paper ...
_MIN_INK_SHARE = 0.0005
_INK_BELOW_PAPER = 16
# ... whose ink (its darkest tenth, as a level) lies this far below the paper at least.
_INK_QUANTILE = 0.1
_MIN_FAINT_CONTRAST = 24
# The paper's level: this share of the page is at most as light.
_PAPER_QUANTILE = 0.9


# Uneven light: the paper's level is taken on a copy reduced this many times, as the
# lightest pixel within _LIGHT_WINDOW pixels of it (wider than any stroke), smoothed.
_LIGHT_REDUCTION = 4
_LIGHT_WINDOW = 5
_LIGHT_BLUR = 8


@dataclass(frozen=True, slots=True)
class Crop:
    """A part of a page: ``box`` is (left, top, right, bottom) in page pixels."""

    box: tuple[int, int, int, int]

    @property
    def offset(self) -> tuple[int, int]:
        """Where the part's origin lies on the page."""
        return self.box[0], self.box[1]


def printed_area(image: Image.Image) -> Crop | None:
    """The part of ``image`` that holds ink, with a small margin.

    Args:
        image: the page, any mode.

    Returns:
        The area, or None when it is not much smaller than the page (or blank).
    """
    import numpy as np

    width, height = image.size
    block = max(1, max(width, height) // _PROBE_SIDE)
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    rows, columns = height // block, width // block
    if rows == 0 or columns == 0:
        return None
    darkest = _block_minimum(grey[: rows * block, : columns * block], block)
    paper = float(np.percentile(darkest, 75))
    ink = darkest < paper - _INK_CONTRAST
    row_hits = np.flatnonzero(ink.sum(axis=1) >= _MIN_INK_BLOCKS)
    column_hits = np.flatnonzero(ink.sum(axis=0) >= _MIN_INK_BLOCKS)
    if row_hits.size == 0 or column_hits.size == 0:
        return None
    margin = round(_MARGIN * max(width, height))
    left = max(0, int(column_hits[0]) * block - margin)
    top = max(0, int(row_hits[0]) * block - margin)
    right = min(width, (int(column_hits[-1]) + 1) * block + margin)
    bottom = min(height, (int(row_hits[-1]) + 1) * block + margin)
    if (right - left) * (bottom - top) > (1 - _MIN_SAVING) * width * height:
        return None
    return Crop((left, top, right, bottom))


def printed_areas(image: Image.Image) -> list[Crop]:
    """The separate pieces of print on ``image`` (receipts scanned together on one page),
    in reading order, each with a small margin.

    The page is cut recursively at blank bands across the whole of a piece (rows first,
    then columns) at least _MIN_GAP of the page's long side wide; a piece without such
    a band is one area.

    Args:
        image: the page, any mode.

    Returns:
        The areas; one (:func:`printed_area`) when there is one piece of print, none when
        that is not much smaller than the page (or the page is blank).
    """
    import numpy as np

    width, height = image.size
    block = max(1, max(width, height) // _PROBE_SIDE)
    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    rows, columns = height // block, width // block
    if rows == 0 or columns == 0:
        return []
    darkest = _block_minimum(grey[: rows * block, : columns * block], block)
    paper = float(np.percentile(darkest, 75))
    ink = darkest < paper - _INK_CONTRAST
    gap = max(1, round(_MIN_GAP * max(width, height) / block))
    pieces = _cut(ink, (0, 0, columns, rows), gap)
    if not pieces:
        return []
    if len(pieces) == 1:  # as printed_area finds it
        margin = round(_MARGIN * max(width, height))
        left, top, right, bottom = pieces[0]
        box = (
            max(0, left * block - margin),
            max(0, top * block - margin),
            min(width, right * block + margin),
            min(height, bottom * block + margin),
        )
        if (box[2] - box[0]) * (box[3] - box[1]) > (1 - _MIN_SAVING) * width * height:
            return []
        return [Crop(box)]
    margin = round(min(_MARGIN, _MIN_GAP / 2) * max(width, height))
    return [
        Crop(
            (
                max(0, left * block - margin),
                max(0, top * block - margin),
                min(width, right * block + margin),
                min(height, bottom * block + margin),
            )
        )
        for left, top, right, bottom in pieces
    ]


def _cut(
    ink: NDArray[np.bool_], box: tuple[int, int, int, int], gap: int
) -> list[tuple[int, int, int, int]]:
    """The pieces of print within ``box`` (left, top, right, bottom in blocks of ``ink``),
    cut at blank bands at least ``gap`` blocks wide. Bands one above the other are cut
    only to find pieces side by side within them: bands of one piece each stay one piece
    (one run of the engine for a page of paragraphs)."""
    import numpy as np

    left, top, right, bottom = box
    part = ink[top:bottom, left:right]
    row_hits = np.flatnonzero(part.sum(axis=1) >= _MIN_INK_BLOCKS)
    column_hits = np.flatnonzero(part.sum(axis=0) >= _MIN_INK_BLOCKS)
    if row_hits.size == 0 or column_hits.size == 0:
        return []
    whole = (
        left + int(column_hits[0]),
        top + int(row_hits[0]),
        left + int(column_hits[-1]) + 1,
        top + int(row_hits[-1]) + 1,
    )
    for hits, across in ((row_hits, False), (column_hits, True)):
        breaks = np.flatnonzero(np.diff(hits) > gap)
        if not breaks.size:
            continue
        starts = [int(hits[0]), *(int(hits[index + 1]) for index in breaks)]
        ends = [*(int(hits[index]) + 1 for index in breaks), int(hits[-1]) + 1]
        if across:
            spans = _pieces(part, starts, ends, gap)
            if len(spans) == 1:
                break
            return [
                piece
                for start, end in spans
                for piece in _cut(ink, (left + start, top, left + end, bottom), gap)
            ]
        bands = [
            _cut(ink, (left, top + start, right, top + end), gap)
            for start, end in zip(starts, ends, strict=True)
        ]
        if any(len(band) > 1 for band in bands):
            return [piece for band in bands for piece in band]
    return [whole]


def _pieces(
    part: NDArray[np.bool_], starts: list[int], ends: list[int], gap: int
) -> list[tuple[int, int]]:
    """The columns ``starts[i]:ends[i]`` of ``part`` grouped into pieces of print of their
    own (receipts side by side) rather than the columns of one (labels, centred headings,
    amounts). A piece has rows all the way down, with no blank band ``gap`` high (a
    receipt's centred heading has one below it, its amounts where an item has none), and
    its rows do not line up with its neighbour's (a table's columns share their rows); a
    column that fails is joined to its nearer neighbour until every one passes."""
    import numpy as np

    spans = list(zip(starts, ends, strict=True))
    while len(spans) > 1:
        inked = [part[:, start:end].sum(axis=1) >= _MIN_INK_BLOCKS for start, end in spans]
        holed = [bool(np.any(np.diff(np.flatnonzero(rows)) > gap)) for rows in inked]
        join = None
        for index, (left, right) in enumerate(itertools.pairwise(inked)):
            shared = int(np.count_nonzero(left & right))
            if shared >= _ALIGNED_ROWS * min(int(left.sum()), int(right.sum())):
                join = index
                break
        if join is None:
            holes = [index for index, hole in enumerate(holed) if hole]
            if not holes:
                break
            index = holes[0]
            if index == 0:
                join = 0
            elif index == len(spans) - 1:
                join = index - 1
            else:
                before = spans[index][0] - spans[index - 1][1]
                after = spans[index + 1][0] - spans[index][1]
                join = index - 1 if before <= after else index
        spans[join : join + 2] = [(spans[join][0], spans[join + 1][1])]
    return spans


def _block_minimum(grey: NDArray[np.uint8], block: int) -> NDArray[np.uint8]:
    """The darkest pixel of each ``block`` x ``block`` block (the array's sides are
    multiples of ``block``); strided minimums, several times faster than a reshape."""
    import numpy as np

    rows = grey[0::block]
    for start in range(1, block):
        rows = np.minimum(rows, grey[start::block])
    darkest = rows[:, 0::block]
    for start in range(1, block):
        darkest = np.minimum(darkest, rows[:, start::block])
    return darkest


def faint_levels(image: Image.Image) -> tuple[int, int] | None:
    """The (ink, paper) grey levels of a page printed faintly, or None when it is not.

    A page is faint when hardly any pixel is darker than mid-grey while some are
    clearly darker than the paper (faded thermal print, a light pencil). The ink level
    is the darkest tenth of those pixels; the paper is the page's 90th percentile.

    Args:
        image: the page, any mode.
    """
    import numpy as np

    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    histogram = np.bincount(grey.ravel(), minlength=256)
    total = int(histogram.sum())
    if total == 0 or histogram[:_DARK].sum() > _MAX_DARK_SHARE * total:
        return None
    cumulative = np.cumsum(histogram)
    paper = int(np.searchsorted(cumulative, _PAPER_QUANTILE * total))
    ink_top = max(0, paper - _INK_BELOW_PAPER)
    ink_count = int(cumulative[ink_top - 1]) if ink_top > 0 else 0
    if ink_count < _MIN_INK_SHARE * total:
        return None
    ink = int(np.searchsorted(cumulative, _INK_QUANTILE * ink_count))
    if paper - ink < _MIN_FAINT_CONTRAST:
        return None
    return ink, paper


def stretch_levels(image: Image.Image, ink: int, paper: int) -> Image.Image:
    """``image`` in grey, with level ``ink`` (and darker) black and ``paper`` (and lighter)
    white, linearly in between."""
    span = max(1, paper - ink)
    table = [min(255, max(0, round((level - ink) * 255 / span))) for level in range(256)]
    return image.convert("L").point(table)


def text_height(image: Image.Image) -> float | None:
    """The median height of the page's rows of text, in pixels, or None without any.

    Rows of pixels holding ink (darker than halfway from the ink's level to the
    paper's) form runs, one per line of text; runs under 3 pixels are rules or specks.
    Skewed or touching lines make longer runs, so the figure errs on the large side.

    Args:
        image: the page, any mode.
    """
    import numpy as np

    grey = np.asarray(image.convert("L"), dtype=np.uint8)
    if grey.size == 0:
        return None
    ink, paper = np.percentile(grey, [1, 100 * _PAPER_QUANTILE])
    if paper - ink < _MIN_FAINT_CONTRAST:
        return None
    dark = grey < (ink + paper) / 2
    rows = dark.sum(axis=1) >= max(2, grey.shape[1] // 500)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows.astype(np.int8), [0]))))
    runs = edges[1::2] - edges[0::2]
    runs = runs[runs >= 3]
    return float(np.median(runs)) if runs.size else None


def even_light(image: Image.Image) -> Image.Image:
    """``image`` in grey with its lighting evened out: each pixel divided by the paper's
    level around it (the lightest level nearby, smoothed), so that paper is white
    everywhere and ink keeps its contrast to the paper next to it (a phone photo lit
    from one side, a shadow across a receipt).

    Args:
        image: the page, any mode.
    """
    import numpy as np
    from PIL import Image, ImageFilter

    grey = image.convert("L")
    reduced = grey.resize(
        (max(1, grey.width // _LIGHT_REDUCTION), max(1, grey.height // _LIGHT_REDUCTION)),
        Image.Resampling.BOX,
    )
    paper = (
        reduced.filter(ImageFilter.MaxFilter(_LIGHT_WINDOW))
        .filter(ImageFilter.GaussianBlur(_LIGHT_BLUR))
        .resize(grey.size, Image.Resampling.BILINEAR)
    )
    level = np.asarray(paper, dtype=np.float32)
    even = np.asarray(grey, dtype=np.float32) * 255 / np.maximum(level, 1)
    return Image.fromarray(np.clip(even, 0, 255).astype(np.uint8), "L")
