"""Where do the RapidOCR space-recovery constants come from? Fitted here, on lines of our own.

Draws its own text (pseudo-words, amounts, dates, times, codes; never the words or the
seeds of the tests' receipts and invoices) in every DejaVu face and Pillow's own font,
at 14-36 pixels, a share of it letter-spaced (0.05-0.5 em of extra tracking) or faint,
and runs it through the real engine (detector, recogniser, the adapter's line
assembly). For every line the recogniser read whose letters match a drawn run of words,
it keeps the evidence at each boundary the model put no space at (``spacing.evidence``)
and whether the drawn text has a space there. Then, for a grid of constants, it counts
the decisions the rule of ``spacing.spaces_in`` gets wrong, by kind of boundary:

* a false space inside a number (never allowed: the number guard is not fitted);
* a false space between two letters (a word cut in pieces, "PARK ING");
* a missed space (two words run together, "Totaldue").

A false space costs ``--false-cost`` (default 3) missed ones: a cut word or amount is
worse than a joined pair. The constants are fitted on the first half of the lines
(seed A) and the counts are reported on both halves, the second (seed B) unseen.

Usage: ``python benchmarks/fit_spacing.py [--images 600] [--cache PATH]``: the
constants in use come from the default 600 pages of 16 rows (300 a half), about 25 CPU
minutes; ``--cache`` keeps the gathered evidence (a pickle) so that a second run only
refits (seconds).
"""

from __future__ import annotations

import os

os.environ.update({"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})

import argparse
import itertools
import math
import pickle
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocrstream.engines.rapidocr import adapter, hooks, spacing
from tests.receipts import FACES, Piece, Row, draw_rows

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# Seeds of the two halves; the tests use other seeds (receipts 11, invoices 7).
SEED_A, SEED_B = 1001, 2002

_CONSONANTS = "BCDFGHJKLMNPRSTVWZ"
_VOWELS = "AEIOU"


# -- the lines -----------------------------------------------------------------------


def _word(rng: random.Random) -> str:
    syllables = rng.choice([1, 2, 2, 3, 3, 4])
    word = "".join(
        rng.choice(_CONSONANTS)
        + rng.choice(_VOWELS)
        + (rng.choice(_CONSONANTS) * (rng.random() < 0.3))
        for _ in range(syllables)
    )
    style = rng.random()
    if style < 0.3:
        return word.capitalize()
    if style < 0.4:
        return word.lower()
    return word


def _number(rng: random.Random) -> str:
    kind = rng.randrange(9)
    cents = int(10 ** rng.uniform(1, 7))
    if kind == 0:
        return f"{cents / 100:,.2f}"
    if kind == 1:
        return f"{cents / 100:.2f}"
    if kind == 2:
        return rng.choice(["RM", "$", "USD", "S$"]) + f"{cents / 100:,.2f}"
    if kind == 3:
        day, month, year = rng.randint(1, 31), rng.randint(1, 12), rng.randint(1990, 2039)
        return rng.choice(
            [
                f"{day:02d}/{month:02d}/{year}",
                f"{year}-{month:02d}-{day:02d}",
                f"{day:02d}.{month:02d}.{year % 100:02d}",
                f"{day:02d}-{month:02d}-{year}",
            ]
        )
    if kind == 4:
        hour, minute = rng.randint(0, 23), rng.randint(0, 59)
        second = rng.randint(0, 59)
        return rng.choice([f"{hour:02d}:{minute:02d}", f"{hour:02d}:{minute:02d}:{second:02d}"])
    if kind == 5:
        return f"{rng.randint(1, 30)}%"
    if kind == 6:
        return str(rng.randint(1, 999_999))
    if kind == 7:
        return f"{rng.randint(1, 9)}{rng.choice('xX')}"
    return f"{rng.choice(_CONSONANTS)}{rng.randint(10, 99)}-{rng.randint(100, 9999)}"


def _row_text(rng: random.Random) -> str:
    tokens = [_number(rng) if rng.random() < 0.4 else _word(rng) for _ in range(rng.randint(1, 5))]
    return " ".join(tokens)


@dataclass(frozen=True)
class _Style:
    face: str
    size: float
    tracking: float
    ink: int


def _style(rng: random.Random) -> _Style:
    face = rng.choice([*FACES, "pillow", "mono", "mono"])
    tracking = 0.0 if rng.random() < 0.55 else rng.uniform(0.05, 0.5)
    ink = 0 if rng.random() < 0.7 else rng.randint(60, 170)
    return _Style(face, rng.uniform(14, 36), tracking, ink)


# -- gathering the evidence -----------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    """One recognised line: its evidence, the truth at each boundary, how it was drawn."""

    line: spacing.LineEvidence
    truth: tuple[bool, ...]  # per boundary: the drawn text has a space there
    style: _Style


def _labels(chars: Sequence[str], drawn: str) -> tuple[int, ...] | None:
    """For each recognised character, its position among ``drawn``'s letters, if the
    letters agree (spaces aside); None otherwise."""
    letters = [char for char in chars if char != " "]
    if "".join(letters) != drawn.replace(" ", ""):
        return None
    positions = []
    count = 0
    for char in chars:
        positions.append(count)
        if char != " ":
            count += 1
    return tuple(positions)


def _truth(line: spacing.LineEvidence, drawn: str) -> tuple[bool, ...] | None:
    """Per boundary of ``line``: whether ``drawn`` has a space there."""
    positions = _labels(line.chars, drawn)
    if positions is None:
        return None
    space_before = set()
    count = 0
    for char in drawn:
        if char == " ":
            space_before.add(count)
        else:
            count += 1
    return tuple(positions[boundary.index] in space_before for boundary in line.boundaries)


def _gather(images: int, seed: int) -> list[_Sample]:
    """Draw ``images`` pages of rows, recognise them, keep the lines that match."""
    rng = random.Random(seed)
    recorded: list[spacing.LineEvidence] = []
    # The hooks call spacing.respace by the name they imported; swap that name.
    namespace = vars(hooks)
    original = namespace["respace"]

    def record(probs: Any, crop: Any, ratio: float, text: str, characters: list[str]) -> str:
        line = spacing.evidence(probs, crop, ratio, text, characters)
        if line is not None:
            recorded.append(line)
        return text

    namespace["respace"] = record
    samples: list[_Sample] = []
    try:
        adapter.load()
        for _ in range(images):
            style = _style(rng)
            texts = [_row_text(rng) for _ in range(16)]
            rows = [Row((Piece(text, face=style.face, tracking=style.tracking),)) for text in texts]
            image = draw_rows(rows, font_size=style.size, width=200, ink=style.ink)
            recorded.clear()
            adapter.recognize(image.convert("RGB"))
            # Every run of whole words of a drawn row may be what one detected box holds.
            runs = set()
            for text in texts:
                words = text.split(" ")
                for i, j in itertools.combinations(range(len(words) + 1), 2):
                    runs.add(" ".join(words[i:j]))
            by_letters = {run.replace(" ", ""): run for run in runs}
            for line in recorded:
                drawn = by_letters.get("".join(char for char in line.chars if char != " "))
                truth = _truth(line, drawn) if drawn is not None else None
                if truth is not None:
                    samples.append(_Sample(line, truth, style))
    finally:
        namespace["respace"] = original
    return samples


# -- judging a rule ------------------------------------------------------------------


@dataclass
class _Errors:
    boundaries: int = 0
    spaces: int = 0
    number_cuts: int = 0  # false spaces inside a number (digits, separators)
    word_cuts: int = 0  # false spaces between two letters
    other_false: int = 0
    missed: int = 0
    missed_in_numbers: int = 0  # of them: between two digits ("08 15:00")
    lines: int = 0
    lines_right: int = 0


def _judge(samples: Sequence[_Sample], rule: Callable[[spacing.LineEvidence], set[int]]) -> _Errors:
    errors = _Errors()
    for sample in samples:
        chosen = rule(sample.line)
        right = True
        for boundary, truth in zip(sample.line.boundaries, sample.truth, strict=True):
            errors.boundaries += 1
            errors.spaces += truth
            if (boundary.index in chosen) == truth:
                continue
            right = False
            inside = spacing.number_boundary(sample.line.chars, boundary.index)
            if truth:
                errors.missed += 1
                errors.missed_in_numbers += inside in ("digits", "separator")
            elif inside is not None:
                errors.number_cuts += 1
            elif sample.line.chars[boundary.index - 1].isalpha() and (
                sample.line.chars[boundary.index].isalpha()
            ):
                errors.word_cuts += 1
            else:
                errors.other_false += 1
        errors.lines += 1
        errors.lines_right += right
    return errors


def _rule(constants: spacing.SpacingConstants) -> Callable[[spacing.LineEvidence], set[int]]:
    return lambda line: spacing.spaces_in(line, constants=constants)


def _previous_rule(line: spacing.LineEvidence) -> set[int]:
    """The rule before issue 11: ``log10(max(p, 1e-7)) + 7 * extra >= -1.1``, numbers
    not guarded."""
    typical = line.typical_gap
    return {
        boundary.index
        for boundary in line.boundaries
        if math.log10(max(boundary.p_space, 1e-7)) + 7 * (boundary.gap - typical) / line.height
        >= -1.1
    }


def _no_spaces(line: spacing.LineEvidence) -> set[int]:
    return set()


@dataclass(frozen=True)
class _Features:
    """The general boundaries (outside numbers) of a set of lines, as arrays."""

    log_p: Any
    extra: Any
    contrast: Any
    truth: Any


def _features(samples: Sequence[_Sample]) -> tuple[_Features, list[float]]:
    """The general boundaries' features, and the extra gaps between digits of one number."""
    import numpy as np

    log_p, extra, contrast, truth, digit_gaps = [], [], [], [], []
    for sample in samples:
        typical = sample.line.typical_gap
        typical_log_p = sample.line.typical_log_p
        for boundary, is_space in zip(sample.line.boundaries, sample.truth, strict=True):
            gap = (boundary.gap - typical) / sample.line.height
            inside = spacing.number_boundary(sample.line.chars, boundary.index)
            if inside == "digits" and not is_space:
                digit_gaps.append(gap)
            if inside in (None, "figures"):  # judged by the general rule
                log_p.append(spacing.log_p(boundary.p_space))
                extra.append(gap)
                contrast.append(spacing.log_p(boundary.p_space) - typical_log_p)
                truth.append(is_space)
    features = _Features(
        np.array(log_p), np.array(extra), np.array(contrast), np.array(truth, dtype=bool)
    )
    return features, digit_gaps


def _fit(samples: Sequence[_Sample], false_cost: float) -> spacing.SpacingConstants:
    """The grid point with the lowest cost on ``samples``; among equals, the strictest
    (highest probability floor, minimum gap, contrast, gap with contrast, in that
    order); the digit gap above the widest gap seen inside a number, with a margin."""
    features, digit_gaps = _features(samples)
    ranked = []
    for gap_weight, threshold, floor, min_gap, contrast, contrast_gap in itertools.product(
        [4.0, 6.0, 8.0, 10.0, 12.0, 15.0],
        [-2.0, -1.5, -1.0, -0.75, -0.5, -0.25, 0.0],
        [1e-5, 1e-4, 3e-4, 1e-3],
        [0.1, 0.125, 0.15, 0.175, 0.2, 0.25],
        [2.0, 2.5, 3.0, 3.5, 4.0, math.inf],
        [0.0, 0.05, 0.075, 0.1, 0.125],
    ):
        loose = (features.contrast >= contrast) & (features.extra >= contrast_gap)
        said = (
            (features.log_p >= math.log10(floor))
            & ((features.extra >= min_gap) | loose)
            & (features.log_p + gap_weight * features.extra >= threshold)
        )
        false = int((said & ~features.truth).sum())
        missed = int((~said & features.truth).sum())
        cost = false_cost * false + missed
        ranked.append((cost, -floor, -min_gap, -contrast, -contrast_gap, gap_weight, threshold))
    best = min(ranked)
    number_gap = math.ceil((max(digit_gaps, default=0.0) + 0.05) / 0.05) * 0.05
    return spacing.SpacingConstants(
        gap_weight=best[5],
        threshold=best[6],
        min_space_probability=-best[1],
        min_extra_gap=-best[2],
        contrast=-best[3],
        contrast_extra_gap=-best[4],
        number_gap=round(number_gap, 2),
    )


def _print(label: str, errors: _Errors) -> None:
    print(
        f"{label:<40}{errors.boundaries:>7}{errors.spaces:>7}{errors.number_cuts:>8}"
        f"{errors.word_cuts:>8}{errors.other_false:>8}{errors.missed:>7}"
        f"{errors.missed_in_numbers:>8}{errors.lines_right:>7}/{errors.lines:<6}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=600, help="pages drawn, both halves")
    parser.add_argument("--false-cost", type=float, default=3.0)
    parser.add_argument("--cache", type=Path, help="keep the gathered evidence in this file")
    args = parser.parse_args()
    began = time.perf_counter()
    halves: tuple[list[_Sample], list[_Sample]]
    if args.cache and args.cache.exists():
        halves = pickle.loads(args.cache.read_bytes())
    else:
        first = args.images // 2
        halves = (_gather(first, SEED_A), _gather(args.images - first, SEED_B))
        if args.cache:
            args.cache.write_bytes(pickle.dumps(halves))
    fit_half, check_half = halves
    fitted = _fit(fit_half, args.false_cost)
    _, digit_gaps = _features(fit_half)
    spaced = [sample for sample in check_half if sample.style.tracking > 0]
    mono = [sample for sample in check_half if sample.style.face.startswith("mono")]

    print(f"RapidOCR space recovery: {len(fit_half)} + {len(check_half)} lines recognised\n")
    print(
        f"{'':<40}{'bounds':>7}{'spaces':>7}{'cut num':>8}{'cut wrd':>8}{'oth fls':>8}"
        f"{'missed':>7}{'in nums':>8}{'lines right':>13}"
    )
    for name, rule in (
        ("raw engine", _no_spaces),
        ("previous rule", _previous_rule),
        ("in use", _rule(spacing.CONSTANTS)),
        ("fitted here", _rule(fitted)),
    ):
        _print(f"{name}, fit half", _judge(fit_half, rule))
        _print(f"{name}, check half", _judge(check_half, rule))
        _print(f"{name}, check, letter-spaced", _judge(spaced, rule))
        _print(f"{name}, check, monospace", _judge(mono, rule))
    print(
        f"\nfitted: {fitted} (false space cost {args.false_cost:g}; widest gap between "
        f"digits of one number {max(digit_gaps, default=0.0):.3f}); "
        f"{time.perf_counter() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
