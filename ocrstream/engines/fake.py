"""A deterministic engine for tests and benchmarks: no model, instant, scriptable.

It "recognises" the text stored in a PNG's ``ocrstream:text`` text chunk (one line per
``\\n``), or, without one, reports the image's size; a line's words are boxed in
proportion to their characters along it (:func:`~ocrstream.core.documents.split_words`).
A few markers script failures, so tests can drive every error path through real worker
processes:

* ``FAIL`` anywhere in the text: raises (the service reports ``ocr_failed``);
* ``CRASH``: the worker process exits at once (``ocr_failed``, the pool recovers);
* ``SLEEP:<seconds>``: sleeps first (timeouts, cancellation, fairness);
* ``SPIN:<seconds>``: keeps a CPU busy first (to watch CPU being freed on cancel);
* ``PID``: replaced by the worker's process id (to watch a worker being killed);
* ``MAX_SIDE``: replaced by the OCR_MAX_SIDE the worker was given (to watch the
  settings reach the workers).
"""

from __future__ import annotations

import os
import re
import time
from typing import TYPE_CHECKING

from ocrstream.core.documents import with_words
from ocrstream.engines.base import EngineOptions, PageLine, PageText, join_lines

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["NAME", "TEXT_KEY", "FakeEngineError", "check_available", "load", "recognize"]

NAME = "fake"
#: The PNG text chunk the fake engine reads.
TEXT_KEY = "ocrstream:text"

_SLEEP = re.compile(r"SLEEP:(\d+(?:\.\d+)?)")
_SPIN = re.compile(r"SPIN:(\d+(?:\.\d+)?)")
_options = EngineOptions()


class FakeEngineError(RuntimeError):
    """The scripted ``FAIL`` marker."""


def check_available() -> None:
    """Always available."""


def load(options: EngineOptions | None = None) -> None:
    """Nothing to load; the options are kept for the ``MAX_SIDE`` marker."""
    global _options
    if options is not None:
        _options = options


def recognize(image: Image.Image) -> PageText:
    """Return the scripted text of ``image`` (see the module docstring)."""
    text = str(image.info.get(TEXT_KEY, f"{image.width}x{image.height}"))
    if match := _SLEEP.search(text):
        time.sleep(float(match.group(1)))
    if match := _SPIN.search(text):
        deadline = time.monotonic() + float(match.group(1))
        while time.monotonic() < deadline:
            pass
    if "CRASH" in text:
        os._exit(3)
    text = text.replace("PID", str(os.getpid()))
    text = text.replace("MAX_SIDE", str(_options.max_side))
    if "FAIL" in text:
        raise FakeEngineError("scripted failure")
    rows = [row for row in text.split("\n") if row]
    height = max(1, image.height // max(1, len(rows)))
    # Its words are boxed in proportion to their characters along the line.
    lines = [
        with_words(
            PageLine(text=row, confidence=1.0, bbox=(0, i * height, image.width, (i + 1) * height))
        )
        for i, row in enumerate(rows)
    ]
    return join_lines(lines)
