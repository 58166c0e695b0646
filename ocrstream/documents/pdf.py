"""PDF documents read with PDFium (pypdfium2): probing, text layers and rendering.

Everything here parses untrusted bytes, so it runs in worker processes, never on the
server's event loop (SPEC "Documents and pages": "No byte of an uploaded PDF is parsed in
the server's own process"). Every function opens the document from ``data``, does one
thing and closes every PDFium object before it returns, so a long-lived worker does not
leak. Forms are never initialised (no ``init_forms``), so PDFium runs no JavaScript, and
attachments are never read.

Frames: a page's raster is what ``PdfPage.render(scale=dpi / 72)`` draws, i.e. the page's
CropBox (clipped to its MediaBox) turned by its ``/Rotate``, ``ceil(size_pt * dpi / 72)``
pixels a side. Text-layer boxes are mapped into that same raster with PDFium's own
``FPDF_PageToDevice``, so they fall on the rendered pixels of their words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]

from ocrstream.core.documents import Page
from ocrstream.core.errors import InvalidImage
from ocrstream.documents.textlayer import TextLayer, read_text_layer

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "PdfFacts",
    "RenderedPage",
    "fit_dpi",
    "probe_pdf",
    "read_pdf_page",
    "scripted_text",
]

#: PDF's own unit: 72 points to the inch.
_POINTS_PER_INCH = 72.0
#: The lowest resolution a page is rendered at before the file is refused (SPEC).
_MIN_DPI = 72.0
#: Bisection steps of fit_dpi: enough to reach a float's resolution from [72, dpi].
_BISECTION_STEPS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class PdfFacts:
    """What validation reports of a PDF, read without rendering.

    Attributes:
        page_count: the number of pages (at least 1).
        width: the first page's raster width in pixels at its render dpi.
        height: the first page's raster height in pixels.
        dpi: the first page's render dpi (RENDER_DPI, or lower if that raster is too large).
    """

    page_count: int
    width: int
    height: int
    dpi: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedPage:
    """A page rendered for OCR.

    Attributes:
        image: the raster, mode ``RGB``.
        dpi: the resolution it was rendered at.
    """

    image: Image.Image
    dpi: float


def _raster_size(width_pt: float, height_pt: float, dpi: float) -> tuple[int, int]:
    # Exactly pypdfium2's own arithmetic in PdfPage.render, so the size is the render's.
    scale = dpi / _POINTS_PER_INCH
    return math.ceil(width_pt * scale), math.ceil(height_pt * scale)


def _fits(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> bool:
    width, height = _raster_size(width_pt, height_pt, dpi)
    return width * height <= max_pixels


def fit_dpi(width_pt: float, height_pt: float, *, dpi: float, max_pixels: int) -> float:
    """The resolution a page of this size is rendered at.

    Pure: ``dpi`` itself when the raster fits in ``max_pixels``, otherwise the highest dpi
    (to a float's resolution) at which it does; the raster is ``ceil(size_pt * dpi / 72)``
    pixels a side, as PDFium renders it.

    Args:
        width_pt: the page's width in points, as displayed (after ``/Rotate``).
        height_pt: its height in points.
        dpi: the wanted resolution (RENDER_DPI).
        max_pixels: the most pixels a raster may have (MAX_IMAGE_PIXELS).

    Returns:
        ``dpi``, or the highest dpi below it whose raster fits.

    Raises:
        InvalidImage: ``image_too_large`` when the raster does not fit at 72 dpi or above.
        ValueError: a size, ``dpi`` or ``max_pixels`` that is not positive and finite.
    """
    if not all(math.isfinite(v) and v > 0 for v in (width_pt, height_pt, dpi, max_pixels)):
        raise ValueError("page size, dpi and max_pixels must be positive and finite")
    if _fits(width_pt, height_pt, dpi, max_pixels):
        return dpi
    if dpi < _MIN_DPI or not _fits(width_pt, height_pt, _MIN_DPI, max_pixels):
        width, height = _raster_size(width_pt, height_pt, _MIN_DPI)
        raise InvalidImage(
            "image_too_large",
            f"a page of {width_pt:g} x {height_pt:g} pt is {width} x {height} pixels even at "
            f"{_MIN_DPI:g} dpi, over MAX_IMAGE_PIXELS ({max_pixels})",
        )
    # The raster never has fewer pixels than the exact area, so no dpi above `ceiling` fits.
    ceiling = _POINTS_PER_INCH * math.sqrt(max_pixels / (width_pt * height_pt))
    low, high = _MIN_DPI, min(dpi, ceiling)
    if _fits(width_pt, height_pt, high, max_pixels):
        return high
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if _fits(width_pt, height_pt, middle, max_pixels):
            low = middle
        else:
            high = middle
    return low


def _open(data: bytes) -> Any:
    """The document, or InvalidImage; the caller closes it."""
    # Opened through the raw API so a document PDFium loads with no pages is closed too
    # (pypdfium2's PdfDocument(bytes) raises without closing it).
    raw = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if not raw:
        error = pdfium_c.FPDF_GetLastError()
        if error == pdfium_c.FPDF_ERR_PASSWORD:
            raise InvalidImage("encrypted_document", "the PDF is encrypted and needs a password")
        if error == pdfium_c.FPDF_ERR_SECURITY:
            raise InvalidImage(
                "encrypted_document", "the PDF is encrypted with a scheme that is not supported"
            )
        reason = {
            pdfium_c.FPDF_ERR_FORMAT: "it is not a well-formed PDF",
            pdfium_c.FPDF_ERR_FILE: "it could not be read",
            pdfium_c.FPDF_ERR_PAGE: "its pages could not be found",
        }.get(error, f"PDFium error {error}")
        raise InvalidImage("corrupt_image", f"the PDF does not open: {reason}")
    document = pdfium.PdfDocument(raw)
    if len(document) < 1:
        document.close()
        raise InvalidImage("corrupt_image", "the PDF does not open: it has no pages")
    return document


def _page_size(document: Any, index: int) -> tuple[float, float]:
    try:
        width, height = document.get_page_size(index)
    except pdfium.PdfiumError:
        raise InvalidImage("corrupt_image", f"page {index + 1} of the PDF is unreadable") from None
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise InvalidImage(
            "corrupt_image", f"page {index + 1} of the PDF has no area ({width:g} x {height:g} pt)"
        )
    return float(width), float(height)


def _fit_page(index: int, size: tuple[float, float], *, dpi: float, max_pixels: int) -> float:
    try:
        return fit_dpi(*size, dpi=dpi, max_pixels=max_pixels)
    except InvalidImage as error:
        raise InvalidImage(error.code, f"page {index + 1}: {error.message}") from None


def probe_pdf(data: bytes, *, max_pages: int, dpi: float, max_pixels: int) -> PdfFacts:
    """Open a PDF and read its page count and every page's size, without rendering.

    Args:
        data: the file's bytes.
        max_pages: the most pages a file may have (MAX_PAGES).
        dpi: the render resolution (RENDER_DPI).
        max_pixels: the most pixels a page's raster may have (MAX_IMAGE_PIXELS).

    Returns:
        The page count and the first page's raster size and dpi.

    Raises:
        InvalidImage: ``encrypted_document`` (needs a password; a PDF whose user password
            is empty opens, as in any viewer, and is read), ``corrupt_image`` (does not
            open, no pages, a page without size), ``too_many_pages`` (checked before any
            page is looked at) or ``image_too_large`` (a page too large even at 72 dpi).
    """
    document = _open(data)
    try:
        page_count = len(document)
        if page_count > max_pages:
            raise InvalidImage(
                "too_many_pages",
                f"the PDF has {page_count} pages, over MAX_PAGES ({max_pages})",
            )
        first: tuple[int, int, float] | None = None
        for index in range(page_count):
            size = _page_size(document, index)
            page_dpi = _fit_page(index, size, dpi=dpi, max_pixels=max_pixels)
            if first is None:
                first = (*_raster_size(*size, page_dpi), page_dpi)
        assert first is not None  # page_count >= 1
        width, height, first_dpi = first
        return PdfFacts(page_count=page_count, width=width, height=height, dpi=first_dpi)
    finally:
        document.close()


def _load_page(document: Any, page_index: int) -> Any:
    try:
        return document[page_index]
    except pdfium.PdfiumError:
        raise InvalidImage(
            "corrupt_image", f"page {page_index + 1} of the PDF is unreadable"
        ) from None


def read_pdf_page(
    data: bytes, page_index: int, *, dpi: float, max_pixels: int, use_text_layer: bool
) -> Page | RenderedPage:
    """One page of a PDF: read from its text layer, or rendered for OCR.

    Args:
        data: the file's bytes.
        page_index: 0-based page number.
        dpi: the render resolution (RENDER_DPI); lowered by :func:`fit_dpi` if needed.
        max_pixels: the most pixels a raster may have (MAX_IMAGE_PIXELS).
        use_text_layer: read a page whose text layer holds text from that layer
            (PDF_TEXT ``auto``) instead of rendering it.

    Returns:
        A :class:`~ocrstream.core.documents.Page` with source ``text_layer`` (exact text,
        word boxes in pixels of the raster at the fitted dpi, confidence 1.0) when
        ``use_text_layer`` and the visible part of the page has text; otherwise a
        :class:`RenderedPage` (RGB) at the fitted dpi.

    Raises:
        InvalidImage: as :func:`probe_pdf` (``encrypted_document``, ``corrupt_image``,
            ``image_too_large``), or ``corrupt_image`` when PDFium cannot draw the page.
        IndexError: ``page_index`` is not a page of the document.
    """
    document = _open(data)
    try:
        if not 0 <= page_index < len(document):
            raise IndexError(
                f"page_index {page_index} is not a page of this {len(document)}-page PDF"
            )
        size = _page_size(document, page_index)
        page_dpi = _fit_page(page_index, size, dpi=dpi, max_pixels=max_pixels)
        width, height = _raster_size(*size, page_dpi)
        page = _load_page(document, page_index)
        try:
            if use_text_layer:
                read = _text_layer(page, raster=(width, height))
                if read is not None:
                    return Page(
                        page_index=page_index,
                        source="text_layer",
                        width=width,
                        height=height,
                        dpi=page_dpi,
                        text=read.text,
                        lines=read.lines,
                    )
            return RenderedPage(image=_render(page, page_index, page_dpi), dpi=page_dpi)
        finally:
            page.close()
    finally:
        document.close()


def _text_layer(page: Any, *, raster: tuple[int, int]) -> TextLayer | None:
    try:
        return read_text_layer(page, raster=raster)
    except pdfium.PdfiumError:
        return None  # a text page PDFium cannot load: the page is recognised instead


def _render(page: Any, page_index: int, dpi: float) -> Image.Image:
    try:
        bitmap = page.render(scale=dpi / _POINTS_PER_INCH)
    except (pdfium.PdfiumError, ValueError, MemoryError):
        raise InvalidImage(
            "corrupt_image", f"page {page_index + 1} of the PDF could not be drawn"
        ) from None
    try:
        # A BGR bitmap: to_pil() converts, so the image owns a copy, not PDFium's buffer.
        image: Image.Image = bitmap.to_pil()
    finally:
        bitmap.close()
    return image if image.mode == "RGB" else image.convert("RGB")


def scripted_text(data: bytes, page_index: int) -> str | None:
    """The text of one page's text layer (lines joined by LF), or None when it has none
    or does not open.

    A seam for the fake engine only: it scripts the result of a rendered page from the
    text its test PDF carries.

    Args:
        data: the file's bytes.
        page_index: 0-based page number.
    """
    try:
        document = _open(data)
    except InvalidImage:
        return None
    try:
        if not 0 <= page_index < len(document):
            return None
        page = document[page_index]
        try:
            textpage = page.get_textpage()
            try:
                text: str = textpage.get_text_range()
            finally:
                textpage.close()
        finally:
            page.close()
    except pdfium.PdfiumError:
        return None
    finally:
        document.close()
    # PDFium ends lines with CRLF; a script's lines are LF-separated like any page text.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.strip() else None
