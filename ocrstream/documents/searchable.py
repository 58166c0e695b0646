"""The ``format=pdf`` export: a searchable PDF (SPEC "Results and exports").

Runs in a worker process (it parses the uploaded bytes). A PDF input keeps its own pages
as they are: qpdf (pikepdf) adds to each page one Form XObject holding only invisible text
(render mode 3) and two tiny content streams around the page's own (``q`` before, ``Q`` and
the form after), so the original content streams keep every byte. An image input becomes
PDF pages through img2pdf, which embeds JPEG, PNG, TIFF (CCITT G4 too) data as it is or
re-encodes the pixels losslessly; the same text layer is then added on top.

The text is set in a tiny TrueType font of one glyph, a box filling the glyph's cell that
render mode 3 never paints (an empty glyph, as Tesseract's glyphless font has, gives text
of no extent, which PDFium leaves out of its text when the page is rotated), used as a
Type0 font with Identity-H: each distinct character of the document gets
its own two-byte code, and the ToUnicode CMap maps each code back to its character, so
extraction gives any Unicode text (astral characters too). Each word is scaled
horizontally (``Tz``) to fill its box, and a space fills the gap to the next word.
"""

from __future__ import annotations

import base64
import io
import math
import zlib
from typing import TYPE_CHECKING

import img2pdf  # type: ignore[import-untyped]
import pikepdf
from PIL import Image, ImageOps, TiffImagePlugin

from ocrstream.core.documents import Document, Line, Page, with_words

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DEFAULT_IMAGE_DPI", "build_searchable_pdf"]

#: The resolution an image without a stored one is given: 72 dpi, one pixel per point.
DEFAULT_IMAGE_DPI = 72.0
#: Built with fontTools' FontBuilder: unitsPerEm 1000, glyphs .notdef (empty) and "cell" (a
#: box from 0,-200 to 500,800), both 500 units wide; ascent 800, descent -200
#: (tests/test_searchable_pdf.py reads it back).
_GLYPHLESS_FONT = base64.b64decode(
    "AAEAAAAKAIAAAwAgT1MvMkUAQ7AAAAEoAAAAYGNtYXAADABzAAABkAAAADRnbHlmA24B+AAAAcwAAAAaaGVhZGEL"
    "QzgAAACsAAAANmhoZWEFFgEuAAAA5AAAACRobXR4AfQAAAAAAYgAAAAGbG9jYQANAAAAAAHEAAAABm1heHAABAAG"
    "AAABCAAAACBuYW1lGZ8ZNAAAAegAAABycG9zdGZycGMAAAJcAAAAKwABAAAAAQAARDR0cl8PPPUAAwPoAAAAAAAA"
    "AAAAAAAAAAAAAAAA/zgB9AMgAAAAAwACAAAAAAAAAAEAAAMg/zgAAAH0AAAAAAH0AAEAAAAAAAAAAAAAAAAAAAAB"
    "AAEAAAACAAQAAQAAAAAAAgAAAAAAAAAAAAAAAAAAAAAAAwH0AZAABQAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAABAAAAAAAAAAAAAAAAPz8/PwAAACAAIAMg/zgAAAMgAMgAAAAAAAAAAAAAAAAAAAAgAAAB9AAA"
    "AAAAAAAAAAIAAAADAAAAFAADAAEAAAAUAAQAIAAAAAQABAABAAAAIP//AAAAIP///+EAAQAAAAAAAAAAAA0AAAAB"
    "AAD/OAH0AyAAAwAAFREhEQH0yAPo/BgAAAAAAAAEADYAAQAAAAAAAQANAAAAAQAAAAAAAgAHAA0AAwABBAkAAQAa"
    "ABQAAwABBAkAAgAOAC5HbHlwaExlc3NGb250UmVndWxhcgBHAGwAeQBwAGgATABlAHMAcwBGAG8AbgB0AFIAZQBn"
    "AHUAbABhAHIAAAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIAAAECBGNlbGwA"
)
#: Every glyph's advance, and the font's ascent and descent, as fractions of the font size.
_ADVANCE, _ASCENT, _DESCENT = 0.5, 0.8, 0.2
#: Two-byte codes: at most this many distinct characters get one (code 0 is unused).
_MAX_CODES = 0xFFFF
#: The font's PostScript name, also its key in the text layer's resources.
_FONT_KEY = "/OCRStreamGlyphless"
_FONT_NAME = pikepdf.Name(_FONT_KEY)
#: EXIF orientations that mirror the image: a PDF page's /Rotate cannot express them.
_FLIPPED = {2, 4, 5, 7}
_EXIF_ORIENTATION = 0x0112
_X_RESOLUTION = 282
_Matrix = tuple[float, float, float, float, float, float]


def build_searchable_pdf(data: bytes, *, format: str, document: Document) -> bytes:
    """A searchable PDF of one recognised file: its pages, each under an invisible text layer.

    A PDF input (``format == "PDF"``) keeps its pages unchanged: their content streams,
    resources and boxes are left as they are, and only a text layer is added. Pages whose
    text was read from their own text layer (``source == "text_layer"``) get none, or
    every word would be extracted twice; pages the Document does not have are left alone.

    Any other input becomes one page per image (per frame for a TIFF; the first frame of
    other formats), upright as the Document's coordinates are (EXIF orientation is honoured
    with the page's /Rotate, or by turning the pixels for mirrored orientations), sized
    from the image's stored resolution, 72 dpi when it has none. The pixels are kept
    losslessly: img2pdf embeds JPEG and CCITT data as they are and PNG-style data without
    re-quantising, unlike a render through a drawing library.

    Args:
        data: the uploaded file's bytes.
        format: the file's format as validation named it (``PDF``, ``PNG``, ``TIFF`` …).
        document: its recognised pages; word boxes are pixels of each page's raster.

    Returns:
        The PDF's bytes.
    """
    source = data if format == "PDF" else _image_pdf(data, first_frame_only=format != "TIFF")
    with pikepdf.open(io.BytesIO(source)) as pdf:
        _add_text_layers(pdf, document)
        output = io.BytesIO()
        # Streams are written as they were read: an uncompressed original stays so.
        pdf.save(
            output,
            compress_streams=False,
            stream_decode_level=pikepdf.StreamDecodeLevel.none,
        )
    return output.getvalue()


def _add_text_layers(pdf: pikepdf.Pdf, document: Document) -> None:
    targets: list[tuple[pikepdf.Page, Page, list[Line]]] = []
    for page in document.pages:
        if page.source != "ocr" or page.width <= 0 or page.height <= 0:
            continue
        if not 0 <= page.page_index < len(pdf.pages):
            continue
        lines = [line for line in map(with_words, page.lines) if line.words]
        if lines:
            targets.append((pdf.pages[page.page_index], page, lines))
    if not targets:
        return
    characters = sorted({c for _, _, lines in targets for c in _layer_text(lines)})
    codes = {char: number for number, char in enumerate(characters[:_MAX_CODES], start=1)}
    font = _font(pdf, codes)
    for pdf_page, page, lines in targets:
        content = _text_content(page, lines, codes)
        form = pikepdf.Stream(pdf, zlib.compress(content))
        form.Type = pikepdf.Name.XObject
        form.Subtype = pikepdf.Name.Form
        form.BBox = pikepdf.Array([0, 0, page.width, page.height])
        form.Matrix = pikepdf.Array(_raster_to_user(pdf_page, page))
        form.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary({_FONT_KEY: font}))
        form.Filter = pikepdf.Name.FlateDecode
        name = pdf_page.add_resource(form, pikepdf.Name.XObject, prefix="OCRStreamText")
        # The page's own content may leave its graphics state changed: bracket it.
        pdf_page.contents_add(pikepdf.Stream(pdf, b"q\n"), prepend=True)
        pdf_page.contents_add(pikepdf.Stream(pdf, b"Q\nq " + name.unparse() + b" Do Q\n"))


def _layer_text(lines: list[Line]) -> Iterator[str]:
    yield " "
    for line in lines:
        for word in line.words:
            yield from word.text


def _raster_to_user(pdf_page: pikepdf.Page, page: Page) -> _Matrix:
    """The matrix from raster pixels (origin bottom left, y up) to the page's user space.

    PDFium renders the CropBox (clipped to the MediaBox) turned clockwise by /Rotate; the
    raster's width and height then span that view, whatever DPI it was rendered at.
    """
    media = _rectangle(pdf_page.mediabox)
    crop = _rectangle(pdf_page.cropbox)
    x0, y0 = max(media[0], crop[0]), max(media[1], crop[1])
    x1, y1 = min(media[2], crop[2]), min(media[3], crop[3])
    if x1 <= x0 or y1 <= y0:
        x0, y0, x1, y1 = media
    rotation = (int(pdf_page.rotation) // 90) % 4
    # The view's size in points, then its unit vectors and origin in user space.
    width, height = (x1 - x0, y1 - y0) if rotation % 2 == 0 else (y1 - y0, x1 - x0)
    sx, sy = width / page.width, height / page.height
    a, b, c, d, e, f = {
        0: (1, 0, 0, 1, x0, y0),
        1: (0, 1, -1, 0, x1, y0),
        2: (-1, 0, 0, -1, x1, y1),
        3: (0, -1, 1, 0, x0, y1),
    }[rotation]
    return (a * sx, b * sx, c * sy, d * sy, e, f)


def _rectangle(box: pikepdf.Array) -> tuple[float, float, float, float]:
    left, bottom, right, top = (float(value) for value in box)
    return min(left, right), min(bottom, top), max(left, right), max(bottom, top)


def _text_content(page: Page, lines: list[Line], codes: dict[str, int]) -> bytes:
    """The text layer of one page, in raster pixels with y up (the form's own space)."""
    out = ["BT", "3 Tr"]
    for line in lines:
        size = max(1, line.bbox[3] - line.bbox[1])
        # The glyph cell (descent to ascent) spans the line's box.
        baseline = page.height - line.bbox[3] + _DESCENT * size
        out.append(f"{_FONT_KEY} {size} Tf")
        for number, word in enumerate(line.words):
            encoded = _encode(word.text, codes)
            width = max(1, word.bbox[2] - word.bbox[0])
            out.append(f"{_scale(width, len(encoded) // 4, size)} Tz")
            out.append(f"1 0 0 1 {word.bbox[0]} {_number(baseline)} Tm <{encoded}> Tj")
            if number + 1 < len(line.words):
                gap = max(1, line.words[number + 1].bbox[0] - word.bbox[2])
                out.append(f"{_scale(gap, 1, size)} Tz <{_encode(' ', codes)}> Tj")
    out.append("ET")
    return ("\n".join(out) + "\n").encode("ascii")


def _encode(text: str, codes: dict[str, int]) -> str:
    return "".join(f"{codes.get(char, codes[' ']):04X}" for char in text)


def _scale(width: float, glyphs: int, size: float) -> str:
    # Tz in percent: the glyphs' natural width stretched (or squeezed) to ``width``.
    return _number(100 * width / (max(1, glyphs) * _ADVANCE * size))


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def _font(pdf: pikepdf.Pdf, codes: dict[str, int]) -> pikepdf.Object:
    """The Type0 font, each code in ``codes`` drawn with the 500-unit "cell" glyph."""
    file = pikepdf.Stream(pdf, zlib.compress(_GLYPHLESS_FONT))
    file.Filter = pikepdf.Name.FlateDecode
    file.Length1 = len(_GLYPHLESS_FONT)
    descriptor = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.FontDescriptor,
            FontName=_FONT_NAME,
            Flags=5,  # fixed pitch, symbolic
            FontBBox=pikepdf.Array([0, -1000 * _DESCENT, 1000 * _ADVANCE, 1000 * _ASCENT]),
            ItalicAngle=0,
            Ascent=1000 * _ASCENT,
            Descent=-1000 * _DESCENT,
            CapHeight=1000 * _ASCENT,
            StemV=80,
            FontFile2=file,
        )
    )
    # Every code is drawn with glyph 1, the cell (0 is .notdef).
    gids = pikepdf.Stream(pdf, zlib.compress(b"\x00\x00" + b"\x00\x01" * len(codes)))
    gids.Filter = pikepdf.Name.FlateDecode
    cid_font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.CIDFontType2,
            BaseFont=_FONT_NAME,
            CIDSystemInfo=pikepdf.Dictionary(Registry="Adobe", Ordering="Identity", Supplement=0),
            FontDescriptor=descriptor,
            DW=1000 * _ADVANCE,
            CIDToGIDMap=gids,
        )
    )
    to_unicode = pikepdf.Stream(pdf, zlib.compress(_to_unicode(codes)))
    to_unicode.Filter = pikepdf.Name.FlateDecode
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type0,
            BaseFont=_FONT_NAME,
            Encoding=pikepdf.Name("/Identity-H"),
            DescendantFonts=pikepdf.Array([cid_font]),
            ToUnicode=to_unicode,
        )
    )


def _to_unicode(codes: dict[str, int]) -> bytes:
    """A ToUnicode CMap (PDF 32000-1 9.10.3) mapping each code to its character's UTF-16BE."""
    entries = [
        f"<{code:04X}> <{char.encode('utf-16-be', 'surrogatepass').hex().upper()}>"
        for char, code in codes.items()
    ]
    body = []
    for start in range(0, len(entries), 100):  # at most 100 entries per block
        chunk = entries[start : start + 100]
        body += [f"{len(chunk)} beginbfchar", *chunk, "endbfchar"]
    lines = [
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        "<0000> <FFFF>",
        "endcodespacerange",
        *body,
        "endcmap",
        "CMapName currentdict /CMap defineresource pop",
        "end",
        "end",
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def _image_pdf(data: bytes, *, first_frame_only: bool) -> bytes:
    """The image's frames as PDF pages, upright, at their stored resolution."""
    with Image.open(io.BytesIO(data)) as image:
        frames = 1 if first_frame_only else getattr(image, "n_frames", 1)
        resolutions = []
        flipped = False
        for index in range(frames):
            image.seek(index)
            resolutions.append(_resolution(image))
            flipped |= image.getexif().get(_EXIF_ORIENTATION, 1) in _FLIPPED
        if flipped:
            # A mirrored orientation cannot be a /Rotate: turn the pixels (still lossless).
            return _convert(_upright_frames(image, frames), resolutions, img2pdf.Rotation.none)
    try:
        return _convert([data], resolutions, None, first_frame_only=first_frame_only)
    except (img2pdf.AlphaChannelError, img2pdf.ImageOpenError, ValueError):
        # Modes img2pdf refuses (16-bit alpha, for one): decoded pixels, as PNG.
        with Image.open(io.BytesIO(data)) as image:
            return _convert(_upright_frames(image, frames), resolutions, img2pdf.Rotation.none)


def _convert(
    images: list[bytes],
    resolutions: list[tuple[float, float]],
    rotation: object,
    *,
    first_frame_only: bool = False,
) -> bytes:
    sizes = iter(resolutions)

    def layout(width: int, height: int, _dpi: object) -> tuple[float, float, float, float]:
        # img2pdf calls this once per page, in page order, with the stored (unrotated) size.
        dpi_x, dpi_y = next(sizes, (DEFAULT_IMAGE_DPI, DEFAULT_IMAGE_DPI))
        page_width, page_height = width * 72 / dpi_x, height * 72 / dpi_y
        return page_width, page_height, page_width, page_height

    converted: bytes = img2pdf.convert(
        images, layout_fun=layout, rotation=rotation, first_frame_only=first_frame_only
    )
    return converted


def _upright_frames(image: Image.Image, frames: int) -> list[bytes]:
    encoded = []
    for index in range(frames):
        image.seek(index)
        frame = ImageOps.exif_transpose(image)
        if frame.mode not in {"1", "L", "RGB", "CMYK"}:
            frame = frame.convert("RGBA" if "A" in frame.mode else "RGB")
            if frame.mode == "RGBA":
                white = Image.new("RGB", frame.size, "white")
                white.paste(frame, mask=frame.getchannel("A"))
                frame = white
        buffer = io.BytesIO()
        frame.save(buffer, format="TIFF" if frame.mode == "CMYK" else "PNG")
        encoded.append(buffer.getvalue())
    return encoded


def _resolution(image: Image.Image) -> tuple[float, float]:
    """The current frame's stored resolution; 72 dpi when it has none."""
    dpi = image.info.get("dpi")
    if isinstance(image, TiffImagePlugin.TiffImageFile) and _X_RESOLUTION not in image.tag_v2:
        dpi = None  # Pillow reports (1, 1) for a TIFF without resolution tags
    if isinstance(dpi, tuple) and len(dpi) == 2:
        x, y = (float(value) for value in dpi)
        if all(math.isfinite(v) and 1 <= v <= 100_000 for v in (x, y)):
            return x, y
    return DEFAULT_IMAGE_DPI, DEFAULT_IMAGE_DPI
