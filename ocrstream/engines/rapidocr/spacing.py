"""The word-spacing recovery for RapidOCR: pure, on the recogniser's own evidence.

The bundled recogniser often reads a space as a CTC blank ("Total due" comes back as
"Totaldue"), but its output still carries the evidence: the space class keeps some
probability between the two words, and the line image the recogniser saw (48 pixels
high) has a wider run of blank columns there than between letters. Between two
recognised characters with no space between them, with ``p`` the highest space
probability over the frames from one to the other, ``extra`` their blank run minus the
line's median one, in crop heights, and ``contrast`` log10(p) minus the line's median
log10(p), a space is inserted when::

    p >= 3e-4  and  log10(p) + 12 * extra >= -0.25
    and  (extra >= 0.15  or  (extra >= 0.1 and contrast >= 3.5))

Each signal alone misleads: a tabular "1" or a "." leaves a gap as wide as a narrow
font's space, and in letter-spaced print ("S O L A R I S") the model gives the space
class 0.1 to 0.5 between letters of one word. So a space needs both: the model must
not rule it out, and the gap must stand out from the line's own letter spacing (the
median absorbs font size and tracking); a narrower gap will do only where the model's
space probability stands out just as clearly from the rest of the line, which it never
does in letter-spaced print. Where the evidence is weaker, the recogniser's own text
stands.

Numbers are never cut: no space goes next to a separator between digits ("73.00",
"1,234.56", "14/03/2026", "13:45", "2026-03-14"), nor between a digit and "%". Between
two digits the rule above decides only where a whole date, time or amount with two
decimals ends and another begins ("2026-03-14 13:45", "4.00 12.50"); elsewhere a space
needs a blank run 0.4 crop heights wider than the line's median (a whole character
cell), which no run of digits in the fitting set came within 0.32 of. Spaces the model
emits are kept (where it cut an amount itself, ``mend_numbers`` in the adapter joins it).

The constants were fitted by ``benchmarks/fit_spacing.py`` on lines of its own (pseudo-
words, amounts, dates, codes; every DejaVu face and Pillow's font, 14 to 36 pixels, 45%
of them letter-spaced, some faint), never on the receipts or invoices the tests check,
a false space costing three missed ones. On the script's second, unseen half (4,034
lines, 53,010 boundaries, 4,428 spaces) the rule makes 13 false spaces (11 inside words)
and misses 173 spaces, 137 of them between two digits where no whole date, time or
amount ends; 3,870 lines come out right. The rule it replaced (``log10(p) + 7 * extra
>= -1.1``, no floor, numbers not guarded) made 822 false spaces (475 inside numbers,
299 inside words) and got 3,520 lines right; the raw engine, 2,032.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CONSTANTS",
    "MIN_CONTRAST",
    "Boundary",
    "LineEvidence",
    "SpacingConstants",
    "evidence",
    "ink_columns",
    "is_space",
    "log_p",
    "longest_blank_run",
    "number_boundary",
    "respace",
    "spaces_in",
    "word_spans",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpacingConstants:
    """The constants of the space decision (see the module docstring).

    Attributes:
        gap_weight: weight of the extra blank run (crop heights) against log10(p).
        threshold: the bar ``log10(p) + gap_weight * extra`` must reach.
        min_space_probability: below this space probability, never a space.
        min_extra_gap: below this extra blank run (crop heights), no space, unless ...
        contrast: ... log10 p stands this far above the line's median log10 p, and
        contrast_extra_gap: the extra blank run is at least this.
        number_gap: the extra blank run a space between two digits needs.
    """

    gap_weight: float
    threshold: float
    min_space_probability: float
    min_extra_gap: float
    contrast: float
    contrast_extra_gap: float
    number_gap: float


#: The constants in use, fitted by benchmarks/fit_spacing.py.
CONSTANTS = SpacingConstants(
    gap_weight=12.0,
    threshold=-0.25,
    min_space_probability=3e-4,
    min_extra_gap=0.15,
    contrast=3.5,
    contrast_extra_gap=0.1,
    number_gap=0.4,
)
_LOWEST_P = 1e-12
# Characters that join the digits on either side into one number.
_SEPARATORS = frozenset(".,:/-")
# A whole date (2026-03-14, 14/03/2026, 14.03.26), time (13:45, 13:45:09) or amount with
# two decimals (1,234.56), at the end or the start of a run of characters.
_FIGURE = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"
    r"|\d{1,2}:\d{2}(?::\d{2})?|\d[\d,]*\.\d{2})"
)
_FIGURE_ENDS = re.compile(rf"(?<![\d.,:/-]){_FIGURE}$")
_FIGURE_STARTS = re.compile(rf"{_FIGURE}(?!\d)")
# A crop whose grey levels span less than this (of 255) has no usable ink contrast.
MIN_CONTRAST = 32


@dataclass(frozen=True, slots=True)
class Boundary:
    """The evidence between two recognised characters the model put no space between.

    Attributes:
        index: position of the right-hand character in the line's text.
        p_space: the highest space probability over the frames from one to the other.
        gap: their longest run of blank columns, in pixels of the recogniser's crop.
    """

    index: int
    p_space: float
    gap: int


@dataclass(frozen=True, slots=True)
class LineEvidence:
    """One line as the greedy decoding read it, with the evidence at every boundary.

    Attributes:
        chars: the decoded characters (spaces the model emitted included).
        boundaries: one per pair of neighbours without a space between them.
        height: the recogniser crop's height in pixels (48 for PP-OCR).
    """

    chars: tuple[str, ...]
    boundaries: tuple[Boundary, ...]
    height: int

    @property
    def typical_gap(self) -> float:
        """The line's median blank run between characters, in pixels."""
        return statistics.median(boundary.gap for boundary in self.boundaries)

    @property
    def typical_log_p(self) -> float:
        """The line's median log10 space probability between characters."""
        return statistics.median(log_p(boundary.p_space) for boundary in self.boundaries)


def log_p(p_space: float) -> float:
    """log10 of a space probability, floored at 1e-12 (the model's zeros)."""
    return math.log10(max(p_space, _LOWEST_P))


def evidence(
    probs: NDArray[np.float32],
    crop: NDArray[np.float32],
    ratio: float,
    text: str,
    characters: list[str],
) -> LineEvidence | None:
    """Re-decode one line greedily and gather the evidence between its characters.

    Args:
        probs: the line's per-frame class probabilities, frames x classes.
        crop: the line image as the recogniser saw it, channels x height x width,
            values in -1..1, the line at the left and padding after it.
        ratio: the line image's width/height before resizing (it fills
            ``ceil(height * ratio)`` columns of ``crop``).
        text: the decoder's text.
        characters: the decoder's classes (0 is the CTC blank, the last is a space).

    Returns:
        The evidence, or None when the re-decoding differs from ``text`` or leaves no
        boundary to judge.
    """
    import numpy as np

    best = probs.argmax(axis=1)
    first = np.ones(best.shape, dtype=bool)
    first[1:] = best[1:] != best[:-1]
    frames = np.flatnonzero(first & (best != 0))
    emitted = tuple(characters[index] for index in best[frames])
    if "".join(emitted) != text or len(emitted) < 2:
        return None
    space = len(characters) - 1
    _, crop_height, crop_width = crop.shape
    columns = ink_columns(crop[:, :, : min(crop_width, math.ceil(crop_height * ratio))])
    frame_width = crop_width / probs.shape[0]
    boundaries: list[Boundary] = []
    for index in range(1, len(emitted)):
        if emitted[index - 1] != " " and emitted[index] != " ":
            start, end = int(frames[index - 1]), int(frames[index])
            p_space = float(probs[start : end + 1, space].max())
            x0 = math.floor((start + 0.5) * frame_width)
            x1 = math.ceil((end + 0.5) * frame_width)
            gap = longest_blank_run(columns[x0 : x1 + 1]) if columns is not None else 0
            boundaries.append(Boundary(index, p_space, gap))
    if not boundaries:
        return None
    return LineEvidence(emitted, tuple(boundaries), crop_height)


def respace(
    probs: NDArray[np.float32],
    crop: NDArray[np.float32],
    ratio: float,
    text: str,
    characters: list[str],
) -> str:
    """The decoder's ``text`` with the spaces the evidence supports (see :func:`evidence`).

    Returns:
        ``text`` with the recovered spaces, or unchanged when the re-decoding differs.
    """
    line = evidence(probs, crop, ratio, text, characters)
    if line is None:
        return text
    spaces = spaces_in(line)
    return "".join(f" {char}" if index in spaces else char for index, char in enumerate(line.chars))


def word_spans(
    probs: NDArray[np.float32],
    crop: NDArray[np.float32],
    ratio: float,
    decoded: str,
    text: str,
    characters: list[str],
) -> tuple[tuple[float, float], ...] | None:
    """Where each word of ``text`` lies along the line, from the characters' CTC frames.

    A character is placed at the middle of its run of frames; two words part at the
    longest run of blank columns between the last character of one and the first of the
    next (at the midpoint where the crop shows no such run), and the line's words start
    and end where its ink does.

    Args:
        probs: the line's per-frame class probabilities, frames x classes.
        crop: the line image as the recogniser saw it (see :func:`evidence`).
        ratio: the line image's width/height before resizing.
        decoded: the decoder's own text.
        text: ``decoded`` with spaces put in or taken out (:func:`respace`).
        characters: the decoder's classes (0 is the CTC blank, the last is a space).

    Returns:
        One ``(start, end)`` per word of ``text.split()``, as fractions 0..1 of the
        line's width, in order; None when the re-decoding differs from ``decoded`` or
        ``text`` is not made of its characters.
    """
    import numpy as np

    frame_count = probs.shape[0]
    if frame_count == 0:
        return None
    best = probs.argmax(axis=1)
    changes = np.flatnonzero(np.concatenate(([True], best[1:] != best[:-1])))
    ends = np.concatenate((changes[1:], [frame_count]))
    runs = [(int(a), int(b)) for a, b in zip(changes, ends, strict=True) if best[a] != 0]
    emitted = [characters[int(best[a])] for a, _b in runs]
    if "".join(emitted) != decoded:
        return None
    centres = [
        (start + end) / 2
        for (start, end), char in zip(runs, emitted, strict=True)
        if not char.isspace()
    ]
    words = text.split()
    if "".join(words) != "".join(char for char in emitted if not char.isspace()):
        return None
    if not words:
        return ()
    _, crop_height, crop_width = crop.shape
    width = max(1, min(crop_width, math.ceil(crop_height * ratio)))
    frame_width = crop_width / frame_count
    columns = ink_columns(crop[:, :, :width])
    inked = np.flatnonzero(columns) if columns is not None else np.array([], dtype=np.int64)
    # Crop columns: each character's centre; then each word's first and last character.
    middles = [centre * frame_width for centre in centres]
    firsts: list[int] = []
    position = 0
    for word in words:
        firsts.append(position)
        position += len(word)
    lefts: list[float] = []
    rights: list[float] = []
    for number, first in enumerate(firsts):
        last = first + len(words[number]) - 1
        if number == 0:
            start = float(inked[0]) if inked.size and inked[0] < middles[first] else 0.0
            lefts.append(min(start, middles[first] - frame_width / 2))
        else:
            gap = _blank_between(columns, middles[first - 1], middles[first])
            rights.append(gap[0])
            lefts.append(gap[1])
        if number == len(firsts) - 1:
            end = float(inked[-1] + 1) if inked.size and inked[-1] >= middles[last] else width
            rights.append(max(end, middles[last] + frame_width / 2))
    return tuple(
        (min(1.0, max(0.0, left / width)), min(1.0, max(0.0, right / width)))
        for left, right in zip(lefts, rights, strict=True)
    )


def _blank_between(
    columns: NDArray[np.bool_] | None, left: float, right: float
) -> tuple[float, float]:
    """The longest run of blank columns between crop columns ``left`` and ``right``, as
    ``(start, end)``; their midpoint twice when there is none."""
    middle = (left + right) / 2
    if columns is None:
        return middle, middle
    start = max(0, math.floor(left))
    best = (0, middle, middle)
    run_start: int | None = None
    window = columns[start : max(start, math.ceil(right) + 1)].tolist()
    for offset, has_ink in enumerate([*window, True]):
        if not has_ink:
            run_start = offset if run_start is None else run_start
        elif run_start is not None:
            length = offset - run_start
            if length > best[0]:
                best = (length, float(start + run_start), float(start + offset))
            run_start = None
    return best[1], best[2]


def spaces_in(line: LineEvidence, *, constants: SpacingConstants = CONSTANTS) -> set[int]:
    """The boundaries of ``line`` that get a space: the indices of their right characters.

    Args:
        line: the line's evidence.
        constants: the rule's constants.
    """
    typical = line.typical_gap
    typical_log_p = line.typical_log_p
    spaces = set()
    for boundary in line.boundaries:
        extra = (boundary.gap - typical) / line.height
        inside = number_boundary(line.chars, boundary.index)
        if inside == "separator":
            continue
        if inside == "digits":
            if boundary.p_space >= constants.min_space_probability and (
                extra >= constants.number_gap
            ):
                spaces.add(boundary.index)
        elif is_space(
            boundary.p_space,
            extra,
            contrast=log_p(boundary.p_space) - typical_log_p,
            constants=constants,
        ):
            spaces.add(boundary.index)
    return spaces


def number_boundary(chars: Sequence[str], index: int) -> str | None:
    """Whether the boundary before ``chars[index]`` lies inside a number, and how.

    Returns:
        ``"separator"`` beside a separator with digits on both sides ("73.00",
        "1,234.56", "14/03/2026", "13:45") or between a digit and "%"; ``"digits"``
        between two digits, unless a whole date, time or amount with two decimals ends
        there and another begins ("2026-03-14|13:45", "4.00|12.50"): then ``"figures"``;
        None elsewhere.
    """
    left, right = chars[index - 1], chars[index]
    if left.isdigit() and right.isdigit():
        before = "".join(chars[:index]).rsplit(" ", 1)[-1]
        after = "".join(chars[index:]).split(" ", 1)[0]
        if _FIGURE_ENDS.search(before) and _FIGURE_STARTS.match(after):
            return "figures"
        return "digits"
    if left.isdigit() and right == "%":
        return "separator"
    if left.isdigit() and right in _SEPARATORS:
        return "separator" if index + 1 < len(chars) and chars[index + 1].isdigit() else None
    if left in _SEPARATORS and right.isdigit():
        return "separator" if index >= 2 and chars[index - 2].isdigit() else None
    return None


def is_space(
    p_space: float,
    extra_gap: float,
    *,
    contrast: float = 0.0,
    constants: SpacingConstants = CONSTANTS,
) -> bool:
    """Whether the evidence between two characters (not inside a number) is a space.

    Args:
        p_space: the highest space probability over the frames from one character to
            the next.
        extra_gap: their blank run minus the line's median one, in crop heights.
        contrast: log10 of ``p_space`` minus the line's median log10 space probability.
        constants: the rule's constants.
    """
    if p_space < constants.min_space_probability:
        return False
    if extra_gap < constants.min_extra_gap and not (
        contrast >= constants.contrast and extra_gap >= constants.contrast_extra_gap
    ):
        return False
    return math.log10(p_space) + constants.gap_weight * extra_gap >= constants.threshold


def ink_columns(crop: NDArray[np.float32]) -> NDArray[np.bool_] | None:
    """Which columns of a line crop hold ink (Otsu threshold; ink is the minority).

    Returns:
        a boolean per column, or None when the crop has too little contrast.
    """
    import numpy as np

    if crop.size == 0:
        return None
    grey = np.clip((crop.mean(axis=0) + 1.0) * 127.5, 0, 255).astype(np.uint8)
    if int(grey.max()) - int(grey.min()) < MIN_CONTRAST:
        return None
    histogram = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    below = np.cumsum(histogram)
    above = below[-1] - below
    mass = np.cumsum(histogram * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (mass[-1] * below / below[-1] - mass) ** 2 / (below * above)
    threshold = int(np.argmax(np.nan_to_num(spread)))
    dark = grey <= threshold
    ink = dark if dark.mean() <= 0.5 else ~dark
    result: NDArray[np.bool_] = ink.any(axis=0)
    return result


def longest_blank_run(columns: NDArray[np.bool_]) -> int:
    """The longest run of columns without ink."""
    longest = run = 0
    for has_ink in columns.tolist():
        run = 0 if has_ink else run + 1
        longest = max(longest, run)
    return longest
