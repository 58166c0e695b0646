"""Code that runs inside an OCR worker process.

Functions here are picklable top-level callables handed to trio-parallel: ``init``
loads the engine once per process (single-threaded), ``recognize_page`` reads one page
of a file (an image; a TIFF's frame; a PDF page from its text layer, or rendered),
turns it upright per its EXIF orientation and runs the engine, and ``retire`` tells
trio-parallel to replace a worker that has done enough work or grown too big (OCR
engines are known to leak memory in long-running servers).
"""

from __future__ import annotations

import importlib
import io
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from ocrstream.core.documents import Line, Page, Word, clamp_confidence, with_words

if TYPE_CHECKING:
    from types import ModuleType

    from ocrstream.engines.base import EngineOptions, PageText

__all__ = [
    "ENGINE_MODULES",
    "PageRequest",
    "engine_module",
    "ignore_signals",
    "init",
    "recognize_page",
    "retire",
    "rss_bytes",
]

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


def ignore_signals() -> bool:
    """Ignore SIGINT and SIGTERM in this worker (see :func:`init`); a trio-parallel init."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return True


def init(name: str, max_tasks: int, max_rss: int, options: EngineOptions | None = None) -> bool:
    """Worker start-up: single-threaded environment, then load the engine once, with
    ``options`` (from the settings; None: the engine's defaults).

    Workers ignore SIGINT and SIGTERM: a Ctrl-C or a signal to the whole process group
    must not kill them under the server, which ends them itself (gracefully at
    shutdown, with SIGKILL when their job is cancelled).
    """
    global _max_tasks, _max_rss
    ignore_signals()
    os.environ.update(_SINGLE_THREAD)
    _max_tasks, _max_rss = max_tasks, max_rss
    engine_module(name).load(options)
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class PageRequest:
    """Which page of a file to read, and how.

    Attributes:
        format: the file's format as validation named it.
        page_index: the page (a TIFF's frame, a PDF's page); 0 for other images.
        dpi: RENDER_DPI, for a PDF page.
        max_pixels: MAX_IMAGE_PIXELS, which caps a PDF page's raster.
        use_text_layer: read a PDF page from its text layer when it holds text
            (PDF_TEXT ``auto``), rather than rendering and recognising it.
    """

    format: str = "PNG"
    page_index: int = 0
    dpi: float = 200.0
    max_pixels: int = 40_000_000
    use_text_layer: bool = True


def recognize_page(name: str, data: bytes, request: PageRequest | None = None) -> Page:
    """Read page ``request.page_index`` of the file ``data`` with engine ``name``.

    A PDF page with a text layer (and ``use_text_layer``) is read from it and never sees
    the engine; any other page is decoded or rendered, turned upright and recognised.
    Every line comes back with its words (boxed by the engine, else in proportion).
    """
    global _tasks_done
    _tasks_done += 1
    request = request or PageRequest()
    if request.format == "PDF":
        return _pdf_page(name, data, request)
    with Image.open(io.BytesIO(data)) as opened:
        if request.page_index:
            opened.seek(request.page_index)
        info = dict(opened.info)
        if name == "fake" and request.format == "TIFF":
            # The test engine's script for a TIFF frame: its ImageDescription tag.
            from ocrstream.engines.fake import TEXT_KEY

            info.setdefault(TEXT_KEY, str(getattr(opened, "tag_v2", {}).get(270, "")))
        # In place: turned only when its EXIF says so (else Pillow would copy every page's
        # pixels, doubling the worker's peak memory for nothing).
        ImageOps.exif_transpose(opened, in_place=True)
        opened.info.update(info)
        text = _recognize(name, opened)
        return _ocr_page(text, opened, request.page_index, dpi=_stored_dpi(info.get("dpi")))


def _pdf_page(name: str, data: bytes, request: PageRequest) -> Page:
    from ocrstream.documents.pdf import RenderedPage, read_pdf_page, scripted_text

    read = read_pdf_page(
        data,
        request.page_index,
        dpi=request.dpi,
        max_pixels=request.max_pixels,
        use_text_layer=request.use_text_layer,
    )
    if not isinstance(read, RenderedPage):
        return read
    image = read.image
    if name == "fake":
        # The test engine's script for a rendered page: the text its PDF layer holds.
        from ocrstream.engines.fake import TEXT_KEY

        image.info[TEXT_KEY] = scripted_text(data, request.page_index) or ""
    return _ocr_page(_recognize(name, image), image, request.page_index, dpi=read.dpi)


def _recognize(name: str, image: Image.Image) -> PageText:
    return engine_module(name).recognize(image)  # type: ignore[no-any-return]


def _stored_dpi(dpi: object) -> float | None:
    """An image's stored resolution (Pillow's ``info["dpi"]``), or None; Pillow reports
    1 dpi for a TIFF without resolution tags, which is no resolution either (as the
    searchable PDF reads it)."""
    if isinstance(dpi, tuple) and dpi and isinstance(dpi[0], (int, float)) and dpi[0] > 1:
        # PNG stores pixels per metre: 300 dpi comes back as 299.9994.
        return round(float(dpi[0]), 2)
    return None


def _ocr_page(text: PageText, image: Image.Image, page_index: int, *, dpi: float | None) -> Page:
    width, height = image.size
    lines = tuple(
        with_words(
            Line(
                text=line.text,
                confidence=clamp_confidence(line.confidence),
                bbox=line.bbox,
                words=tuple(
                    Word(
                        text=word.text, confidence=clamp_confidence(word.confidence), bbox=word.bbox
                    )
                    for word in line.words
                ),
            )
        )
        for line in text.lines
    )
    return Page(
        page_index=page_index,
        source="ocr",
        width=width,
        height=height,
        dpi=dpi,
        text=text.text,
        lines=lines,
    )


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
