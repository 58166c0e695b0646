"""RapidOCR engine: PP-OCRv4 detection and recognition on ONNX Runtime, single-threaded.

The models ship inside the ``rapidocr-onnxruntime`` wheel (1.4.x); nothing is
downloaded. Each worker process builds the engine once (:func:`load`) with ONNX
Runtime's intra-op and inter-op thread pools at one thread: the service runs one
worker per CPU, and oversubscribed workers were measured slower than single-threaded
ones.

Word spacing is recovered from the recogniser's own evidence (see
:mod:`~ocrstream.engines.rapidocr.spacing`), read through hooks into the library
(:mod:`~ocrstream.engines.rapidocr.hooks`).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrstream.engines.base import EngineUnavailable, PageLine, PageText, join_lines
from ocrstream.engines.rapidocr.hooks import install_spacing

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["NAME", "check_available", "load", "recognize"]

NAME = "rapidocr"

_REQUIREMENT = "rapidocr-onnxruntime>=1.4.4,<1.5"

# Boxes on one row at most this many line heights apart are one line.
_MERGE_GAP = 0.5
# Images longer than _MAX_RATIO:1 are padded to _PADDED_RATIO:1 (see _pad_to_ratio).
_MAX_RATIO = 8
_PADDED_RATIO = 4


@dataclass(slots=True)
class _Engine:
    """The process's RapidOCR instance; ``spacing`` tells whether spaces are recovered.

    The lock keeps one recognition at a time: the spacing taps hold per-call state.
    """

    ocr: Any
    spacing: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


_ENGINE: _Engine | None = None


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


def load() -> None:
    """Build the RapidOCR engine once per process, ONNX Runtime at one thread.

    Later calls return at once. :func:`recognize` calls this itself.

    Raises:
        EngineUnavailable: rapidocr-onnxruntime cannot be imported.
    """
    global _ENGINE
    if _ENGINE is not None:
        return
    check_available()
    from rapidocr_onnxruntime import RapidOCR

    # The keyword arguments reach the det, cls and rec sessions' SessionOptions.
    ocr = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    _ENGINE = _Engine(ocr=ocr, spacing=install_spacing(ocr))


def recognize(image: Image.Image) -> PageText:
    """Recognise the text of an upright image.

    Args:
        image: the decoded image, any mode (transparent pixels count as white).

    Returns:
        The lines in reading order with confidence in 0..1 and pixel bounding boxes;
        no text found gives ``PageText(text="", lines=())``.
    """
    import numpy as np

    load()
    assert _ENGINE is not None
    width, height = image.size
    if width == 0 or height == 0:
        return PageText(text="", lines=())
    rgb = _pad_to_ratio(_to_rgb(image))
    # RapidOCR takes a 3-channel array as BGR (OpenCV order), as its models expect.
    bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
    with _ENGINE.lock:
        result, _elapsed = _ENGINE.ocr(bgr)
    lines = [
        line
        for row in result or ()
        if (line := _page_line(row, width=width, height=height)) is not None
    ]
    return join_lines(_merge_split_lines(lines))


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


def _page_line(row: Any, *, width: int, height: int) -> PageLine | None:
    """One RapidOCR result row ``[quad, text, score]`` as a :class:`PageLine`."""
    quad, text, score = row[0], row[1], row[2]
    text = " ".join(str(text).split())
    if not text:
        return None
    xs = [float(point[0]) for point in quad]
    ys = [float(point[1]) for point in quad]
    bbox = (
        min(max(math.floor(min(xs)), 0), width),
        min(max(math.floor(min(ys)), 0), height),
        min(max(math.ceil(max(xs)), 0), width),
        min(max(math.ceil(max(ys)), 0), height),
    )
    confidence = float(score)
    confidence = 0.0 if math.isnan(confidence) else min(max(confidence, 0.0), 1.0)
    return PageLine(text=text, confidence=confidence, bbox=bbox)


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
    return PageLine(text=f"{left.text} {right.text}", confidence=confidence, bbox=bbox)
