"""Code that runs inside an OCR worker process.

Functions here are picklable top-level callables handed to trio-parallel: ``init``
loads the engine once per process (single-threaded), ``recognize_bytes`` decodes an
image, turns it upright per its EXIF orientation and runs the engine, and ``retire``
tells trio-parallel to replace a worker that has done enough work or grown too big
(OCR engines are known to leak memory in long-running servers).
"""

from __future__ import annotations

import importlib
import io
import os
import signal
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

if TYPE_CHECKING:
    from types import ModuleType

    from ocrstream.engines.base import EngineOptions, PageText

__all__ = ["ENGINE_MODULES", "engine_module", "init", "recognize_bytes", "retire", "rss_bytes"]

#: Engine name -> module implementing the engine contract.
ENGINE_MODULES = {
    "rapidocr": "ocrstream.engines.rapidocr",
    "tesseract": "ocrstream.engines.tesseract",
    "fake": "ocrstream.engines.fake",
}
# One process runs one computation at a time: many threads per process only fight
# over the same cores (two oversubscribed rapidocr processes ran at 1.9 images/s
# against 3.1 single-threaded on 2 cores).
_SINGLE_THREAD = {"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

_tasks_done = 0
_max_tasks = 0
_max_rss = 0


def engine_module(name: str) -> ModuleType:
    """The module of engine ``name``.

    Raises:
        KeyError: unknown engine name.
    """
    return importlib.import_module(ENGINE_MODULES[name])


def init(name: str, max_tasks: int, max_rss: int, options: EngineOptions | None = None) -> bool:
    """Worker start-up: single-threaded environment, then load the engine once, with
    ``options`` (from the settings; None: the engine's defaults).

    Workers ignore SIGINT and SIGTERM: a Ctrl-C or a signal to the whole process group
    must not kill them under the server, which ends them itself (gracefully at
    shutdown, with SIGKILL when their job is cancelled).
    """
    global _max_tasks, _max_rss
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.update(_SINGLE_THREAD)
    _max_tasks, _max_rss = max_tasks, max_rss
    engine_module(name).load(options)
    return True


def recognize_bytes(name: str, data: bytes) -> PageText:
    """Decode ``data``, apply its EXIF orientation and recognise it with engine ``name``."""
    global _tasks_done
    _tasks_done += 1
    with Image.open(io.BytesIO(data)) as opened:
        info = dict(opened.info)
        upright = ImageOps.exif_transpose(opened)
        upright.info.update(info)
        return engine_module(name).recognize(upright)  # type: ignore[no-any-return]


def rss_bytes() -> int:
    """This process's resident set size in bytes (Linux), 0 when unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def retire() -> bool:
    """True when this worker should be replaced (never raises, as trio-parallel requires)."""
    try:
        if _max_tasks and _tasks_done >= _max_tasks:
            return True
        return bool(_max_rss and rss_bytes() > _max_rss)
    except Exception:
        return True
