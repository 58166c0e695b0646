"""Tesseract engine: the ``tesseract`` command-line program, run once per image (once per
piece of print on a big scan).

The image goes to the program as PNG on stdin and the words come back as TSV on stdout;
words are grouped into lines by Tesseract's own block, paragraph and line numbers.
``OMP_THREAD_LIMIT=1`` keeps each run on one thread, since the service already runs one
worker process per CPU. Page segmentation mode 6 (one uniform block of text) keeps an
invoice or receipt row such as "Total due 352.50 EUR" on one line even when the label
and the amount are far apart, also on a photo turned by a degree or two, where mode 4
(one column of text of variable sizes, used before) dropped whole columns of amounts.

Before the program runs (:mod:`~ocrstream.engines.preprocessing`), a page longer than
OCR_MAX_SIDE is cut to its printed areas, each read by itself: a small receipt on an A4
scan at 600 dpi (same text, a third of the time), or several receipts scanned side by
side, whose rows mode 6 would join across the receipts into one line. In each part, faint
print (faded thermal paper) has its levels stretched, ink to black and paper to white,
since Tesseract's recogniser reads the grey image; the paper's level is taken three
quarters of the way from the ink's to the paper's, so that the paper's grain and the
faded strokes' edges go white (on 30 faint receipts of five seeds: 329 of 332 amounts
read, against 310 with the paper's own level). Any other part has its lighting evened
out (a phone photo lit from one side, where the program's global threshold loses the
figures in the darker corner). A part within OCR_MAX_SIDE whose rows of text are under
20 pixels high (a thermal receipt at 203 dpi) is read at twice its size, Tesseract's
accuracy falling off below about 8 pt at 300 dpi (capitals of 23 pixels). Each was
measured on rendered receipts (README, "Receipts").
The program's own cuts inside amounts ("RM324 .37") are mended
(:func:`~ocrstream.engines.base.mend_numbers`).

Needs the Debian packages ``tesseract-ocr`` and ``tesseract-ocr-eng``.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass

from PIL import Image

from ocrstream.core.documents import Word, clamp_confidence
from ocrstream.engines.base import (
    EngineOptions,
    EngineUnavailable,
    PageLine,
    PageText,
    fit_words,
    join_lines,
    mend_numbers,
)
from ocrstream.engines.preprocessing import (
    even_light,
    faint_levels,
    printed_areas,
    stretch_levels,
    text_height,
)

__all__ = ["NAME", "TesseractError", "check_available", "load", "recognize"]

NAME = "tesseract"

_LANGUAGE = "eng"
_PAGE_SEGMENTATION_MODE = 6
# Pages whose rows of text are shorter than this (pixels) are read at _UPSCALE times.
_MIN_TEXT_HEIGHT = 20
_UPSCALE = 2
# Faint print is stretched with its paper taken this far from its ink level to the paper's
# measured level: lighter pixels are paper (its grain, the lightest parts of faded strokes).
_FAINT_PAPER = 0.75
# Lighting is evened out on pages that are not faint (phone photos lit from one side).
_EVEN_LIGHT = True
_TIMEOUT_SECONDS = 300.0
_LIST_LANGS_TIMEOUT_SECONDS = 30.0
_TSV_COLUMNS = 12
_WORD_LEVEL = "5"

# Path of the checked binary, set by load(); None until then.
_binary: str | None = None
_options = EngineOptions()


class TesseractError(RuntimeError):
    """Tesseract failed on one image (non-zero exit, timeout or unreadable output)."""


@dataclass(slots=True)
class _Line:
    words: list[Word]
    x0: int
    y0: int
    x1: int
    y1: int


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_THREAD_LIMIT": "1"}


def _find_binary() -> str:
    """Check that the binary and the English data are there and return the binary's path.

    Raises:
        EngineUnavailable: The binary is not on PATH, does not run, or has no "eng" data.
    """
    binary = shutil.which("tesseract")
    if binary is None:
        raise EngineUnavailable(
            "tesseract binary not found on PATH (install the tesseract-ocr package)"
        )
    try:
        listed = subprocess.run(
            [binary, "--list-langs"],
            capture_output=True,
            env=_environment(),
            timeout=_LIST_LANGS_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(f"cannot run {binary} --list-langs: {exc}") from exc
    # Tesseract 5 lists on stdout, 4 on stderr; the first line is a heading either way.
    output = (listed.stdout + listed.stderr).decode("utf-8", errors="replace")
    languages = {line.strip() for line in output.splitlines()}
    if listed.returncode != 0 or _LANGUAGE not in languages:
        raise EngineUnavailable(
            f"tesseract at {binary} has no {_LANGUAGE!r} language data"
            " (install the tesseract-ocr-eng package)"
        )
    return binary


def check_available() -> None:
    """Check that Tesseract can run here; always looks afresh.

    Raises:
        EngineUnavailable: The binary is missing or the English language data is.
    """
    _find_binary()


def _loaded_binary() -> str:
    global _binary
    if _binary is None:
        _binary = _find_binary()
    return _binary


def load(options: EngineOptions | None = None) -> None:
    """Check availability once per process and remember the binary's path.

    Args:
        options: the settings' options for the engine; None keeps the current ones.

    Raises:
        EngineUnavailable: The binary is missing or the English language data is.
    """
    global _options
    if options is not None:
        _options = options
    _loaded_binary()


def _flattened(image: Image.Image) -> Image.Image:
    """``image`` in L or RGB, any transparency flattened onto white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode not in ("L", "RGB"):
        return image.convert("RGB")
    return image


def _png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG, flattening any transparency onto white."""
    image = _flattened(image)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _run(binary: str, png: bytes, *, psm: int = _PAGE_SEGMENTATION_MODE) -> str:
    """Run Tesseract on ``png`` in page segmentation mode ``psm``; return its TSV output.

    Raises:
        TesseractError: The program could not start, timed out or exited non-zero.
    """
    command = [
        binary,
        "stdin",
        "stdout",
        "--psm",
        str(psm),
        "-l",
        _LANGUAGE,
        "tsv",
    ]
    try:
        done = subprocess.run(
            command,
            input=png,
            capture_output=True,
            env=_environment(),
            timeout=_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TesseractError(f"tesseract timed out after {exc.timeout:g} s") from exc
    except OSError as exc:
        raise TesseractError(f"cannot run {binary}: {exc}") from exc
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace").strip()
        raise TesseractError(
            f"tesseract exited with status {done.returncode}: {stderr or '(no stderr)'}"
        )
    return done.stdout.decode("utf-8", errors="replace")


def _parse_tsv(
    tsv: str, width: int, height: int, offset: tuple[int, int] = (0, 0), scale: int = 1
) -> list[PageLine]:
    """Group TSV word rows into lines, in the order Tesseract numbered them; boxes are
    divided by ``scale`` (the part read was enlarged that much) and moved by ``offset``
    (where the part read lies on the ``width`` x ``height`` page).

    Raises:
        TesseractError: A word row has fields that are not numbers.
    """
    lines: dict[tuple[str, str, str, str], _Line] = {}
    for row in tsv.splitlines()[1:]:
        fields = row.split("\t", _TSV_COLUMNS - 1)
        if len(fields) != _TSV_COLUMNS or fields[0] != _WORD_LEVEL:
            continue
        text = fields[11].strip()
        if not text:
            continue
        try:
            left, top, box_width, box_height = (int(value) for value in fields[6:10])
            confidence = float(fields[10])
            left, top = left // scale + offset[0], top // scale + offset[1]
            box_width, box_height = -(-box_width // scale), -(-box_height // scale)
        except ValueError as exc:
            raise TesseractError(f"unreadable tesseract TSV row: {row!r}") from exc
        x0 = min(max(left, 0), width)
        y0 = min(max(top, 0), height)
        x1 = min(max(left + box_width, x0), width)
        y1 = min(max(top + box_height, y0), height)
        key = (fields[1], fields[2], fields[3], fields[4])
        word = Word(text=text, confidence=confidence, bbox=(x0, y0, x1, y1))
        line = lines.get(key)
        if line is None:
            lines[key] = _Line([word], x0, y0, x1, y1)
        else:
            line.words.append(word)
            line.x0, line.y0 = min(line.x0, x0), min(line.y0, y0)
            line.x1, line.y1 = max(line.x1, x1), max(line.y1, y1)
    return [_page_line(line) for line in lines.values()]


def _page_line(line: _Line) -> PageLine:
    """One line: its words joined by spaces and mended, confidences in 0..1, and the
    words boxed by Tesseract's own word boxes (those the mending joined, by their union)."""
    words = [
        Word(text=word.text, confidence=clamp_confidence(word.confidence / 100), bbox=word.bbox)
        for word in line.words
    ]
    mean = sum(word.confidence for word in line.words) / len(line.words) / 100
    bbox = (line.x0, line.y0, line.x1, line.y1)
    text = mend_numbers(" ".join(word.text for word in words))
    confidence = clamp_confidence(mean)
    return PageLine(
        text=text,
        confidence=confidence,
        bbox=bbox,
        words=fit_words(text, words, bbox, confidence),
    )


def recognize(image: Image.Image) -> PageText:
    """Read the text on an upright image.

    Args:
        image: The decoded image, already turned upright per its EXIF orientation.

    Returns:
        The lines top to bottom, each with its words joined by single spaces, the mean
        word confidence in 0..1 and the union of the word boxes in image pixels.

    Raises:
        EngineUnavailable: Tesseract is not available (when :func:`load` was not called).
        TesseractError: Tesseract failed on this image.
    """
    binary = _loaded_binary()
    width, height = image.size
    if width == 0 or height == 0:
        return PageText(text="", lines=())
    image = _flattened(image)
    areas = printed_areas(image) if max(width, height) > _options.max_side else []
    if not areas:
        lines = _read(binary, image, width, height, (0, 0))
    else:
        lines = [
            line
            for area in areas
            for line in _read(binary, image.crop(area.box), width, height, area.offset)
        ]
    if not lines:
        return PageText(text="", lines=())
    return join_lines(lines)


def _read(
    binary: str, image: Image.Image, width: int, height: int, offset: tuple[int, int]
) -> list[PageLine]:
    """The lines on ``image``, a part of a ``width`` x ``height`` page lying at
    ``offset`` on it: faint print stretched or the lighting evened out, small print
    enlarged, and the boxes placed on the page."""
    if (levels := faint_levels(image)) is not None:
        ink, paper = levels
        image = stretch_levels(image, ink, ink + round(_FAINT_PAPER * (paper - ink)))
    elif _EVEN_LIGHT:
        image = even_light(image)
    scale = 1
    # Enlarged only when the part fits OCR_MAX_SIDE (so the result stays within twice
    # it): Tesseract's time grows with the pixels.
    small_rows = (rows := text_height(image)) is not None and rows < _MIN_TEXT_HEIGHT
    if small_rows and max(image.size) <= _options.max_side:
        scale = _UPSCALE
        enlarged = (image.width * scale, image.height * scale)
        image = image.resize(enlarged, Image.Resampling.LANCZOS)
    return _parse_tsv(_run(binary, _png_bytes(image)), width, height, offset, scale)
