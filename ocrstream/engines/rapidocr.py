"""RapidOCR engine: PP-OCRv4 detection and recognition on ONNX Runtime, single-threaded.

The models ship inside the ``rapidocr-onnxruntime`` wheel (1.4.x); nothing is
downloaded. Each worker process builds the engine once (:func:`load`) with ONNX
Runtime's intra-op and inter-op thread pools at one thread: the service runs one
worker per CPU, and oversubscribed workers were measured slower than single-threaded
ones.

Word spacing. The bundled recogniser often reads a space as a CTC blank ("Total due"
comes back as "Totaldue"), but its output still carries the evidence: the space class
keeps some probability between the two words, and the line image the recogniser saw
(48 pixels high) has a wider run of blank columns there than between letters. Between
every two recognised characters with no space between them, a space is inserted when::

    log10(max space probability between them)
        + 7 * (blank run - the line's median blank run) / 48  >=  -1.1

Neither signal alone is reliable: a tabular "1" or a "." leaves a gap as wide as a
narrow font's space, and the space probability between two words ranges from 0.001 to
1 while between letters it is usually below 0.001. Comparing the gap with the line's
own median absorbs font size and letter spacing. Spaces the model emits are kept. The
two constants were fitted on lines drawn in Pillow's default font and six DejaVu faces
(Sans, Serif, Mono, Condensed, Bold, Serif Italic) at 14 to 40 pixels, not on the
invoices the tests check; on a second such set they get 19 of 9083 letter pairs wrong.

Both signals are read by wrapping two attributes of the engine's recogniser (its
ONNX session, to see the batch of crops, and its CTC decoder, to see the per-frame
probabilities); if a release changes them, recognition still works, without the
recovered spaces.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import EngineUnavailable, PageLine, PageText, join_lines

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

__all__ = ["NAME", "check_available", "load", "recognize"]

NAME = "rapidocr"

_REQUIREMENT = "rapidocr-onnxruntime>=1.4.4,<1.5"

# Space decision (see the module docstring):
# log10(p_space) + _GAP_WEIGHT * (blank_run - median_blank_run) / crop_height >= _THRESHOLD.
_GAP_WEIGHT = 7.0
_THRESHOLD = -1.1
_MIN_SPACE_PROBABILITY = 1e-7
# Boxes on one row at most this many line heights apart are one line.
_MERGE_GAP = 0.5
# Images longer than _MAX_RATIO:1 are padded to _PADDED_RATIO:1 (see _pad_to_ratio).
_MAX_RATIO = 8
_PADDED_RATIO = 4
# A crop whose grey levels span less than this (of 255) has no usable ink contrast.
_MIN_CONTRAST = 32


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
    _ENGINE = _Engine(ocr=ocr, spacing=_install_spacing(ocr))


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


def _install_spacing(ocr: Any) -> bool:
    """Wrap the recogniser's session and decoder so that decoded text gets its spaces.

    Returns:
        whether the recogniser had the expected shape (rapidocr-onnxruntime 1.4.x).
    """
    recogniser: Any = getattr(ocr, "text_rec", None)
    session: Any = getattr(recogniser, "session", None)
    decoder: Any = getattr(recogniser, "postprocess_op", None)
    characters: Any = getattr(decoder, "character", None)
    if not (callable(session) and callable(decoder) and isinstance(characters, list)):
        return False
    if not characters or characters[-1] != " ":
        return False
    tap = _BatchTap(session)
    recogniser.session = tap
    recogniser.postprocess_op = _SpacingDecoder(decoder, tap, [str(c) for c in characters])
    return True


class _BatchTap:
    """Stands in for the recogniser's ONNX session and keeps its last input batch."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.batch: NDArray[np.float32] | None = None

    def __call__(self, batch: NDArray[np.float32]) -> Any:
        self.batch = batch
        return self._session(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _SpacingDecoder:
    """Stands in for the CTC decoder; adds the spaces the greedy decoding dropped."""

    def __init__(self, decoder: Any, tap: _BatchTap, characters: list[str]) -> None:
        self._decoder = decoder
        self._tap = tap
        self._characters = characters
        self.character = decoder.character

    def __call__(self, preds: Any, return_word_box: bool = False, **kwargs: Any) -> Any:
        results = self._decoder(preds, return_word_box, **kwargs)
        batch, self._tap.batch = self._tap.batch, None
        ratios = kwargs.get("wh_ratio_list")
        if return_word_box or batch is None or ratios is None:
            return results
        if not (len(results) == len(preds) == len(batch) == len(ratios)):
            return results
        spaced = []
        for probs, crop, ratio, result in zip(preds, batch, ratios, results, strict=True):
            text = _respace(probs, crop, float(ratio), str(result[0]), self._characters)
            spaced.append((text, *result[1:]))
        return spaced

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)


def _respace(
    probs: NDArray[np.float32],
    crop: NDArray[np.float32],
    ratio: float,
    text: str,
    characters: list[str],
) -> str:
    """Re-decode one line greedily and insert the spaces the evidence supports.

    Args:
        probs: the line's per-frame class probabilities, frames x classes.
        crop: the line image as the recogniser saw it, channels x height x width,
            values in -1..1, the line at the left and padding after it.
        ratio: the line image's width/height before resizing (it fills
            ``ceil(height * ratio)`` columns of ``crop``).
        text: the decoder's text, returned unchanged if the re-decoding differs.
        characters: the decoder's classes (0 is the CTC blank, the last is a space).

    Returns:
        ``text`` with the recovered spaces.
    """
    import numpy as np

    best = probs.argmax(axis=1)
    first = np.ones(best.shape, dtype=bool)
    first[1:] = best[1:] != best[:-1]
    frames = np.flatnonzero(first & (best != 0))
    emitted = [characters[index] for index in best[frames]]
    if "".join(emitted) != text or len(emitted) < 2:
        return text
    space = len(characters) - 1
    _, crop_height, crop_width = crop.shape
    columns = _ink_columns(crop[:, :, : min(crop_width, math.ceil(crop_height * ratio))])
    frame_width = crop_width / probs.shape[0]
    candidates: list[tuple[int, float, int]] = []  # (index of right char, p_space, gap)
    for index in range(1, len(emitted)):
        if emitted[index - 1] != " " and emitted[index] != " ":
            start, end = int(frames[index - 1]), int(frames[index])
            p_space = float(probs[start : end + 1, space].max())
            x0 = math.floor((start + 0.5) * frame_width)
            x1 = math.ceil((end + 0.5) * frame_width)
            gap = _longest_blank_run(columns[x0 : x1 + 1]) if columns is not None else 0
            candidates.append((index, p_space, gap))
    if not candidates:
        return text
    typical = float(np.median([gap for _, _, gap in candidates]))
    spaces = {
        index
        for index, p_space, gap in candidates
        if _is_space(p_space, (gap - typical) / crop_height)
    }
    return "".join(f" {char}" if index in spaces else char for index, char in enumerate(emitted))


def _is_space(p_space: float, extra_gap: float) -> bool:
    """Whether the evidence between two characters amounts to a space.

    Args:
        p_space: the highest space probability over the frames from one character to
            the next.
        extra_gap: their blank run minus the line's median one, in crop heights.
    """
    p = max(p_space, _MIN_SPACE_PROBABILITY)
    return math.log10(p) + _GAP_WEIGHT * extra_gap >= _THRESHOLD


def _ink_columns(crop: NDArray[np.float32]) -> NDArray[np.bool_] | None:
    """Which columns of a line crop hold ink (Otsu threshold; ink is the minority).

    Returns:
        a boolean per column, or None when the crop has too little contrast.
    """
    import numpy as np

    if crop.size == 0:
        return None
    grey = np.clip((crop.mean(axis=0) + 1.0) * 127.5, 0, 255).astype(np.uint8)
    if int(grey.max()) - int(grey.min()) < _MIN_CONTRAST:
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


def _longest_blank_run(columns: NDArray[np.bool_]) -> int:
    """The longest run of columns without ink."""
    longest = run = 0
    for has_ink in columns.tolist():
        run = 0 if has_ink else run + 1
        longest = max(longest, run)
    return longest


def _thread_settings() -> list[tuple[int, int]]:
    """(intra-op, inter-op) threads of each ONNX Runtime session of the loaded engine.

    For tests and diagnostics; reads rapidocr-onnxruntime 1.4.x internals.
    """
    load()
    assert _ENGINE is not None
    ocr = _ENGINE.ocr
    sessions = [ocr.text_det.infer, ocr.text_cls.infer, ocr.text_rec.session]
    settings = []
    for wrapper in sessions:
        options = wrapper.session.get_session_options()
        settings.append((int(options.intra_op_num_threads), int(options.inter_op_num_threads)))
    return settings
