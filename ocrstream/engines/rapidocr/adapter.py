"""RapidOCR engine: PP-OCRv4 detection and recognition on ONNX Runtime, single-threaded.

The models ship inside the ``rapidocr-onnxruntime`` wheel (1.4.x); nothing is
downloaded. Each worker process builds the engine once (:func:`load`) with ONNX
Runtime's intra-op and inter-op thread pools at one thread: the service runs one
worker per CPU, and oversubscribed workers were measured slower than single-threaded
ones.

Word spacing is recovered from the recogniser's own evidence (see
:mod:`~ocrstream.engines.rapidocr.spacing`), read through hooks into the library
(:mod:`~ocrstream.engines.rapidocr.hooks`).

Big pages. The library shrinks every page to 2000 pixels on its long side, for the
detector and for the recogniser alike, so the small print of a receipt scanned on an
A4 page at 600 dpi (4961 x 7016) comes out 0.29 times its size and is lost. Here a page
longer than OCR_MAX_SIDE is first cut to its printed area
(:func:`~ocrstream.engines.preprocessing.printed_area`); if that still does not fit,
the detector works on it scaled to OCR_MAX_SIDE and the lines it finds are cut from the
full-resolution page for the recogniser, which scales each line to 48 pixels high
itself. The detector's cost, which grows with its input's area, stays that of a
2000-pixel page. Pages that fit are read exactly as before.

Faint print: a levels stretch of faint pages (as Tesseract gets) was measured and does
not help RapidOCR (12 faint receipts of a seed the tests do not use: every amount read
either way; dates and times 48/48 without, 47/48 with; rows exact 200/207 without,
196/207 with), so it is not applied here.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrstream.core.documents import Bbox, Word, split_words
from ocrstream.engines.base import (
    EngineOptions,
    EngineUnavailable,
    PageLine,
    PageText,
    fit_words,
    join_lines,
    mended,
)
from ocrstream.engines.preprocessing import printed_area
from ocrstream.engines.rapidocr.hooks import install_spacing

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from PIL import Image

__all__ = ["NAME", "check_available", "load", "recognize"]

NAME = "rapidocr"

_REQUIREMENT = "rapidocr-onnxruntime>=1.4.4,<1.5"

# Boxes on one row at most this many line heights apart are one line.
_MERGE_GAP = 0.5
# Images longer than _MAX_RATIO:1 are padded to _PADDED_RATIO:1 (see _pad_to_ratio).
_MAX_RATIO = 8
_PADDED_RATIO = 4
# The library's own page limit, set out of reach: the adapter does the scaling.
_NO_LIBRARY_LIMIT = 1 << 30


@dataclass(slots=True)
class _Engine:
    """The process's RapidOCR instance; ``spacing`` tells whether spaces are recovered.

    The lock keeps one recognition at a time: the spacing taps hold per-call state.
    """

    ocr: Any
    spacing: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


_ENGINE: _Engine | None = None
_OPTIONS = EngineOptions()


def check_available() -> None:
    """Check that rapidocr-onnxruntime imports and its bundled models are in place.

    Raises:
        EngineUnavailable: the package (or onnxruntime/OpenCV under it) cannot be
            imported, or a model file it names is missing.
    """
    try:
        import rapidocr_onnxruntime  # type: ignore[import-untyped]
    except ImportError as error:
        reason = " ".join(str(error).split())
        raise EngineUnavailable(
            f"rapidocr cannot be imported ({reason}); install {_REQUIREMENT!r}"
        ) from None
    package = Path(rapidocr_onnxruntime.__file__).parent
    try:
        config = (package / "config.yaml").read_text(encoding="utf-8")
    except OSError as error:
        raise EngineUnavailable(f"rapidocr configuration unreadable: {error}") from None
    models = re.findall(r"^\s*model_path:\s*(\S+)\s*$", config, flags=re.MULTILINE)
    if not models:
        raise EngineUnavailable(f"rapidocr names no model files in {package / 'config.yaml'}")
    for model in models:
        if not (package / model).is_file():
            raise EngineUnavailable(f"rapidocr model file missing: {package / model}")


def load(options: EngineOptions | None = None) -> None:
    """Build the RapidOCR engine once per process, ONNX Runtime at one thread.

    Later calls only take the new ``options``. :func:`recognize` calls this itself.

    Args:
        options: the settings' options for the engine; None keeps the current ones.

    Raises:
        EngineUnavailable: rapidocr-onnxruntime cannot be imported.
    """
    global _ENGINE, _OPTIONS
    if options is not None:
        _OPTIONS = options
    if _ENGINE is not None:
        return
    check_available()
    from rapidocr_onnxruntime import RapidOCR

    # The thread counts reach the det, cls and rec sessions' SessionOptions.
    ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, max_side_len=_NO_LIBRARY_LIMIT)
    _ENGINE = _Engine(ocr=ocr, spacing=install_spacing(ocr))


def recognize(image: Image.Image) -> PageText:
    """Recognise the text of an upright image.

    Args:
        image: the decoded image, any mode (transparent pixels count as white).

    Returns:
        The lines in reading order with confidence in 0..1 and pixel bounding boxes;
        no text found gives ``PageText(text="", lines=())``.
    """
    load()
    assert _ENGINE is not None
    width, height = image.size
    if width == 0 or height == 0:
        return PageText(text="", lines=())
    rgb = _to_rgb(image)
    offset = (0, 0)
    max_side = _OPTIONS.max_side
    if max(width, height) > max_side and (area := printed_area(rgb)) is not None:
        rgb, offset = rgb.crop(area.box), area.offset
    rgb = _pad_to_ratio(rgb)
    with _ENGINE.lock:
        if max(rgb.size) <= max_side:
            result, _elapsed = _ENGINE.ocr(_bgr(rgb))
            rows = list(result or ())
        else:
            rows = _read_big(_ENGINE.ocr, rgb, max_side)
    lines = [
        line
        for row in rows
        if (line := _page_line(row, width=width, height=height, offset=offset)) is not None
    ]
    # A number the model itself cut, or the detector split in two boxes, is mended.
    merged = _merge_split_lines(lines)
    return join_lines([mended(line) for line in merged])


def _bgr(image: Image.Image) -> NDArray[Any]:
    """An RGB image as the array RapidOCR takes: 3 channels in BGR (OpenCV) order."""
    import numpy as np

    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, ::-1])


def _read_big(ocr: Any, image: Image.Image, max_side: int) -> list[Any]:
    """Result rows ``[quad, text, score]`` of a page longer than ``max_side``: the
    detector on the page scaled to ``max_side``, the classifier and the recogniser on
    lines cut from the page at full resolution (rapidocr-onnxruntime 1.4.x's steps).
    """
    import numpy as np
    from PIL import Image

    scale = max_side / max(image.size)
    small = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
        Image.Resampling.BOX,
    )
    steps = ("auto_text_det", "get_crop_img_list", "text_cls", "text_rec", "text_score")
    if not all(hasattr(ocr, step) for step in steps):
        # Another release: let it read the scaled page, then scale its boxes back.
        result, _elapsed = ocr(_bgr(small))
        return [[np.asarray(row[0]) / scale, *row[1:]] for row in result or ()]
    boxes, _elapsed = ocr.auto_text_det(_bgr(small))
    if boxes is None:
        return []
    full_boxes = [np.asarray(box, dtype=np.float32) / scale for box in boxes]
    crops = ocr.get_crop_img_list(_bgr(image), full_boxes)
    crops, _angles, _elapsed = ocr.text_cls(crops)
    recognised, _elapsed = ocr.text_rec(crops)
    return [
        [box, *found]
        for box, found in zip(full_boxes, recognised, strict=True)
        if float(found[1]) >= ocr.text_score
    ]


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB, transparent areas composited on white."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _pad_to_ratio(image: Image.Image) -> Image.Image:
    """Pad an image longer than 8:1 with white below or to the right, to 4:1.

    RapidOCR fails on extreme ratios (a 3000x20 strip shrinks to zero rows); for wide
    images beyond 8:1 it pads to 4:1 itself, but with black bands and only after that
    shrinking. The padding is after the content, so boxes keep their coordinates.
    """
    from PIL import Image

    width, height = image.size
    if width > _MAX_RATIO * height:
        canvas = Image.new("RGB", (width, math.ceil(width / _PADDED_RATIO)), "white")
    elif height > _MAX_RATIO * width:
        canvas = Image.new("RGB", (math.ceil(height / _PADDED_RATIO), height), "white")
    else:
        return image
    canvas.paste(image, (0, 0))
    return canvas


def _page_line(
    row: Any, *, width: int, height: int, offset: tuple[int, int] = (0, 0)
) -> PageLine | None:
    """One RapidOCR result row ``[quad, text, score]`` (and the words' spans, when the
    hooks gave them) as a :class:`PageLine`; the quad's coordinates are moved by
    ``offset`` (where the part read lies on the page)."""
    quad, text, score = row[0], row[1], row[2]
    spans = row[3] if len(row) > 3 else None
    text = " ".join(str(text).split())
    if not text:
        return None
    xs = [float(point[0]) + offset[0] for point in quad]
    ys = [float(point[1]) + offset[1] for point in quad]
    bbox = (
        min(max(math.floor(min(xs)), 0), width),
        min(max(math.floor(min(ys)), 0), height),
        min(max(math.ceil(max(xs)), 0), width),
        min(max(math.ceil(max(ys)), 0), height),
    )
    confidence = float(score)
    confidence = 0.0 if math.isnan(confidence) else min(max(confidence, 0.0), 1.0)
    points = list(zip(xs, ys, strict=True))
    words = _boxed_words(text, spans, points, bbox, confidence)
    return PageLine(text=text, confidence=confidence, bbox=bbox, words=words)


def _boxed_words(
    text: str,
    spans: Any,
    quad: list[tuple[float, float]],
    bbox: Bbox,
    confidence: float,
) -> tuple[Word, ...]:
    """The line's words, placed along its quadrilateral by their ``spans`` (fractions of
    the line's width, :func:`~ocrstream.engines.rapidocr.spacing.word_spans`) and kept
    inside ``bbox``; in proportion to their characters where there are no spans, or
    where the library turned the crop upright (a box 1.5 times taller than wide)."""
    words = text.split()
    if len(quad) != 4 or not isinstance(spans, tuple) or len(spans) != len(words):
        return split_words(text, bbox, confidence)
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = quad
    along = max(math.hypot(bx - ax, by - ay), math.hypot(cx - dx, cy - dy))
    across = max(math.hypot(dx - ax, dy - ay), math.hypot(cx - bx, cy - by))
    if along < 1 or across / along >= 1.5:
        return split_words(text, bbox, confidence)
    x0, y0, x1, y1 = bbox
    boxed: list[Word] = []
    for word, (start, end) in zip(words, spans, strict=True):
        # The word's corners on the line's top edge (a to b) and bottom edge (d to c).
        corners = [(ax + f * (bx - ax), ay + f * (by - ay)) for f in (start, end)] + [
            (dx + f * (cx - dx), dy + f * (cy - dy)) for f in (start, end)
        ]
        left = min(max(math.floor(min(x for x, _ in corners)), x0), x1)
        right = min(max(math.ceil(max(x for x, _ in corners)), left), x1)
        top = min(max(math.floor(min(y for _, y in corners)), y0), y1)
        bottom = min(max(math.ceil(max(y for _, y in corners)), top), y1)
        boxed.append(Word(text=word, confidence=confidence, bbox=(left, top, right, bottom)))
    return tuple(boxed)


def _merge_split_lines(lines: list[PageLine]) -> list[PageLine]:
    """Join boxes the detector split one line into ("Blue", "River", "Logistics").

    Two boxes are one line when they share a row (vertical centres within half the
    smaller height) and the second starts at most half a height after the first ends;
    words of one line usually overlap, while separate columns stand much further apart.
    """
    merged: list[PageLine] = []
    for line in sorted(lines, key=lambda item: item.bbox[0]):
        for index, previous in enumerate(merged):
            if _continues(previous, line):
                merged[index] = _joined(previous, line)
                break
        else:
            merged.append(line)
    return merged


def _continues(left: PageLine, right: PageLine) -> bool:
    """Whether ``right`` carries on the line ``left`` (which starts no further right)."""
    height = min(left.bbox[3] - left.bbox[1], right.bbox[3] - right.bbox[1])
    if height <= 0:
        return False
    centre_left = (left.bbox[1] + left.bbox[3]) / 2
    centre_right = (right.bbox[1] + right.bbox[3]) / 2
    if abs(centre_left - centre_right) >= height / 2:
        return False
    gap = right.bbox[0] - left.bbox[2]
    return -height <= gap <= _MERGE_GAP * height


def _joined(left: PageLine, right: PageLine) -> PageLine:
    """One line from two: texts joined by a space, confidence weighted by length."""
    weight_left, weight_right = len(left.text), len(right.text)
    confidence = (left.confidence * weight_left + right.confidence * weight_right) / (
        weight_left + weight_right
    )
    bbox = (
        min(left.bbox[0], right.bbox[0]),
        min(left.bbox[1], right.bbox[1]),
        max(left.bbox[2], right.bbox[2]),
        max(left.bbox[3], right.bbox[3]),
    )
    text = f"{left.text} {right.text}"
    words = fit_words(text, (*left.words, *right.words), bbox, confidence)
    return PageLine(text=text, confidence=confidence, bbox=bbox, words=words)
