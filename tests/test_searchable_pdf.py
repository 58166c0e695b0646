"""The searchable PDF: a PDF's own pages kept byte for byte, an image's pixels as pages, and an
invisible text layer that pdftotext reads back where the word boxes say."""

from __future__ import annotations

import ctypes
import io
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

import pikepdf
import pypdfium2  # type: ignore[import-untyped]
import pytest
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fpdf import FPDF
from PIL import Image

from ocrstream.core.documents import Bbox, Document, Line, Page, Word
from ocrstream.documents import searchable
from ocrstream.documents.searchable import build_searchable_pdf

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

RENDER_DPI = 144  # two pixels per point
TEXT = 'Grüße <&"> 5€ 😀'
#: (MediaBox, CropBox or None, /Rotate) of each page of the test PDF.
LAYOUTS: list[tuple[list[float], list[float] | None, int]] = [
    ([0, 0, 300, 400], None, 0),
    ([0, 0, 300, 400], None, 90),
    ([100, 200, 400, 600], None, 0),
    ([-50, -20, 250, 380], [0, 10, 240, 350], 270),
    ([0, 0, 300, 400], None, 180),
]
_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
)


def _pdftotext(data: bytes, tmp_path: Path, *options: str) -> str:
    path = tmp_path / "out.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        ["pdftotext", *options, str(path), "-"], capture_output=True, check=True, text=True
    )
    return result.stdout


def _page_texts(data: bytes, tmp_path: Path) -> list[str]:
    return [" ".join(page.split()) for page in _pdftotext(data, tmp_path).split("\f")[:-1]]


def _word_boxes(data: bytes, tmp_path: Path) -> list[list[tuple[str, tuple[float, ...]]]]:
    """pdftotext's words of each page: text and box in points of the page as displayed."""
    pages = _pdftotext(data, tmp_path, "-bbox").split("<page ")[1:]
    return [
        [(m.group(5), tuple(float(m.group(i)) for i in range(1, 5))) for m in _WORD.finditer(p)]
        for p in pages
    ]


def _images(page: pikepdf.Page) -> list[pikepdf.Object]:
    xobjects = page.obj.Resources.get("/XObject", pikepdf.Dictionary())
    return [x for x in xobjects.values() if x.get("/Subtype") == pikepdf.Name.Image]


def _line(text: str, box: Bbox, words: tuple[Word, ...] = ()) -> Line:
    return Line(text=text, confidence=0.9, bbox=box, words=words)


def _page(index: int, size: tuple[int, int], lines: tuple[Line, ...], **kw: object) -> Page:
    source = kw.get("source", "ocr")
    assert source in ("ocr", "text_layer")
    return Page(
        page_index=index,
        source=source,
        width=size[0],
        height=size[1],
        dpi=RENDER_DPI,
        text="\n".join(line.text for line in lines),
        lines=lines,
    )


def _document(pages: list[Page], file_format: str = "PDF") -> Document:
    return Document(
        file_index=0,
        file_name="in",
        format=file_format,
        page_count=len(pages),
        pages=tuple(pages),
    )


def _marked_pdf() -> bytes:
    """Pages in every layout, each with a black box drawn near its top left as displayed."""
    pdf = pikepdf.new()
    for media, crop, rotate in LAYOUTS:
        page = pdf.add_blank_page()
        page.obj.MediaBox = pikepdf.Array(media)
        if crop:
            page.obj.CropBox = pikepdf.Array(crop)
        if rotate:
            page.obj.Rotate = rotate
        # A box in the middle of the page, wider than tall in user space.
        x0, y0, x1, y1 = crop or media
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        page.obj.Contents = pdf.make_stream(f"0 g {cx - 60} {cy - 10} 120 20 re f\n".encode())
    output = io.BytesIO()
    pdf.save(output)
    return output.getvalue()


def _rendered_boxes(data: bytes) -> list[tuple[tuple[int, int], Bbox]]:
    """Each page's raster size and the black box's pixel box, as PDFium renders them."""
    document = pypdfium2.PdfDocument(data)
    try:
        found = []
        for index in range(len(document)):
            page = document[index]
            image = page.render(scale=RENDER_DPI / 72).to_pil().convert("L")
            page.close()
            dark = image.point(lambda v: 255 if v < 128 else 0)
            box = dark.getbbox()
            assert box is not None
            found.append((image.size, box))
        return found
    finally:
        document.close()


def _pdfium_first_word_boxes(data: bytes, length: int) -> list[tuple[float, ...]]:
    """The box of each page's first ``length`` characters, in pixels of PDFium's raster."""
    document = pypdfium2.PdfDocument(data)
    boxes: list[tuple[float, ...]] = []
    try:
        for index in range(len(document)):
            page = document[index]
            width, height = (round(v * RENDER_DPI / 72) for v in page.get_size())
            text = page.get_textpage()
            xs, ys = [], []
            for char in range(length):
                left, bottom, right, top = text.get_charbox(char)
                for x, y in ((left, bottom), (right, top)):
                    device_x, device_y = ctypes.c_int(), ctypes.c_int()
                    pypdfium2.raw.FPDF_PageToDevice(
                        page.raw, 0, 0, width, height, 0, x, y, device_x, device_y
                    )
                    xs.append(device_x.value)
                    ys.append(device_y.value)
            text.close()
            page.close()
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
    finally:
        document.close()
    return boxes


def test_a_pdfs_pages_get_text_where_pdfium_drew_the_boxes(tmp_path: Path) -> None:
    data = _marked_pdf()
    rendered = _rendered_boxes(data)
    pages = []
    for index, (size, (x0, y0, x1, y1)) in enumerate(rendered):
        # A word on the drawn box, then a line of words boxed in proportion (with_words).
        word = Word(text=f"Box{index}", confidence=0.9, bbox=(x0, y0, x1, y1))
        below = _line(TEXT, (10, y1 + 20, size[0] - 10, y1 + 60))
        pages.append(_page(index, size, (_line(word.text, word.bbox, (word,)), below)))
    out = build_searchable_pdf(data, format="PDF", document=_document(pages))

    assert _page_texts(out, tmp_path) == [f"Box{i} {TEXT}" for i in range(len(LAYOUTS))]
    # PDFium, which renders the rasters, finds the word's characters on the drawn box.
    for index, found in enumerate(_pdfium_first_word_boxes(out, len("Box0"))):
        assert found == pytest.approx(rendered[index][1], abs=4), f"page {index}"
    # So does poppler, whose -bbox frame is the MediaBox as displayed (PDFium's the CropBox).
    for index, words in enumerate(_word_boxes(out, tmp_path)):
        text, found = words[0]
        assert text == f"Box{index}"
        dx, dy = (30, 10) if index == 3 else (0, 0)  # the CropBox's corner in the MediaBox
        left, top, right, bottom = (v * 72 / RENDER_DPI for v in rendered[index][1])
        expected = [left + dx, top + dy, right + dx, bottom + dy]
        assert found == pytest.approx(expected, abs=2), f"page {index}"

    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(io.BytesIO(out)) as after:
        assert len(after.pages) == len(before.pages)
        for old, new in zip(before.pages, after.pages, strict=True):
            assert list(new.mediabox) == list(old.mediabox)
            assert list(new.cropbox) == list(old.cropbox)
            assert new.rotation == old.rotation
            contents = new.obj.Contents
            assert isinstance(contents, pikepdf.Array)
            assert contents[1].read_raw_bytes() == old.obj.Contents.read_raw_bytes()
            assert contents[0].read_bytes() == b"q\n"


def test_an_image_only_pdf_page_keeps_its_image(tmp_path: Path) -> None:
    picture = Image.new("RGB", (200, 100), "white")
    picture.paste((0, 0, 0), (20, 20, 180, 80))
    sheet = FPDF(unit="pt", format=(200, 100))
    sheet.add_page()
    sheet.image(picture, x=0, y=0, w=200, h=100)
    data = bytes(sheet.output())
    line = _line("scanned words", (40, 40, 360, 160))
    out = build_searchable_pdf(
        data, format="PDF", document=_document([_page(0, (400, 200), (line,))])
    )
    assert _page_texts(out, tmp_path) == ["scanned words"]
    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(io.BytesIO(out)) as after:
        old_image = _images(before.pages[0])[0]
        new_image = _images(after.pages[0])[0]
        assert new_image.read_raw_bytes() == old_image.read_raw_bytes()


def test_text_layer_pages_and_pages_the_document_lacks_are_left_alone(tmp_path: Path) -> None:
    sheet = FPDF(unit="pt", format=(300, 200))
    sheet.set_font("helvetica", size=20)
    for words in ("Born digital", "Scanned", "Unseen"):
        sheet.add_page()
        if words == "Born digital":
            sheet.text(20, 50, words)
    data = bytes(sheet.output())
    born = _line("Born digital", (40, 60, 260, 110))
    document = _document(
        [
            _page(0, (600, 400), (born,), source="text_layer"),
            _page(1, (600, 400), (_line("Scanned", (40, 60, 200, 110)),)),
        ]
    )
    out = build_searchable_pdf(data, format="PDF", document=document)
    assert _page_texts(out, tmp_path) == ["Born digital", "Scanned", ""]
    with pikepdf.open(io.BytesIO(data)) as before, pikepdf.open(io.BytesIO(out)) as after:
        for index in (0, 2):
            old, new = before.pages[index].obj, after.pages[index].obj
            assert new.Contents.read_raw_bytes() == old.Contents.read_raw_bytes()
            assert set(new.Resources.keys()) == set(old.Resources.keys())


def _png(size: tuple[int, int], **save: object) -> bytes:
    image = Image.new("RGB", size, "white")
    image.paste((200, 30, 30), (5, 5, 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **save)
    return buffer.getvalue()


def test_a_png_becomes_a_page_at_its_resolution_losslessly(tmp_path: Path) -> None:
    data = _png((300, 200), dpi=(150, 150))
    line = _line("Hello image", (30, 60, 270, 100))
    out = build_searchable_pdf(
        data, format="PNG", document=_document([_page(0, (300, 200), (line,))], "PNG")
    )
    assert _page_texts(out, tmp_path) == ["Hello image"]
    with pikepdf.open(io.BytesIO(out)) as pdf:
        (page,) = pdf.pages
        width, height = (float(v) for v in page.mediabox[2:])
        assert (width, height) == pytest.approx((144, 96), abs=0.1)  # 300 px at 150 dpi
        (image,) = _images(page)
        assert isinstance(image, pikepdf.Stream)
        decoded = pikepdf.PdfImage(image).as_pil_image().convert("RGB")
        assert decoded.tobytes() == Image.open(io.BytesIO(data)).convert("RGB").tobytes()
    ((word, box), _) = _word_boxes(out, tmp_path)[0]
    assert word == "Hello"
    assert box[0] == pytest.approx(30 * 144 / 300, abs=2)
    assert box[1] == pytest.approx(60 * 144 / 300, abs=2)


def test_a_png_without_resolution_is_72_dpi() -> None:
    out = build_searchable_pdf(
        _png((120, 80)), format="PNG", document=_document([_page(0, (120, 80), ())], "PNG")
    )
    with pikepdf.open(io.BytesIO(out)) as pdf:
        assert [float(v) for v in pdf.pages[0].mediabox] == [0, 0, 120, 80]


def test_a_tiff_becomes_one_page_per_frame(tmp_path: Path) -> None:
    frames = [Image.new("L", (400, 300), shade) for shade in (255, 220, 190)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "TIFF", save_all=True, append_images=frames[1:], dpi=(200, 200))
    pages = [
        _page(i, (400, 300), (_line(f"frame number {i}", (20, 20, 380, 60)),)) for i in range(3)
    ]
    out = build_searchable_pdf(buffer.getvalue(), format="TIFF", document=_document(pages, "TIFF"))
    assert _page_texts(out, tmp_path) == ["frame number 0", "frame number 1", "frame number 2"]
    with pikepdf.open(io.BytesIO(out)) as pdf:
        assert len(pdf.pages) == 3
        for page in pdf.pages:
            assert [float(v) for v in page.mediabox[2:]] == pytest.approx([144, 108])


def test_an_exif_rotated_jpeg_is_upright(tmp_path: Path) -> None:
    stored = Image.new("RGB", (300, 200), "white")
    exif = stored.getexif()
    exif[0x0112] = 6  # shown turned 90° clockwise: 200 wide, 300 tall
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif)
    line = _line("upright text", (20, 250, 180, 280))
    out = build_searchable_pdf(
        buffer.getvalue(), format="JPEG", document=_document([_page(0, (200, 300), (line,))])
    )
    assert _page_texts(out, tmp_path) == ["upright text"]
    with pikepdf.open(io.BytesIO(out)) as pdf:
        (page,) = pdf.pages
        (image,) = _images(page)
        assert image.Filter == pikepdf.Name.DCTDecode  # the JPEG itself, not re-encoded
        assert image.read_raw_bytes() == buffer.getvalue()
    ((word, box), _) = _word_boxes(out, tmp_path)[0]
    assert word == "upright"
    assert box[:2] == pytest.approx((20, 250), abs=2)


def test_a_mirrored_exif_orientation_turns_the_pixels(tmp_path: Path) -> None:
    stored = Image.new("RGB", (300, 200), "white")
    exif = stored.getexif()
    exif[0x0112] = 5  # transposed: shown 200 wide, 300 tall
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", exif=exif)
    line = _line("mirror", (20, 250, 180, 280))
    out = build_searchable_pdf(
        buffer.getvalue(), format="JPEG", document=_document([_page(0, (200, 300), (line,))])
    )
    assert _page_texts(out, tmp_path) == ["mirror"]
    with pikepdf.open(io.BytesIO(out)) as pdf:
        assert [float(v) for v in pdf.pages[0].mediabox] == [0, 0, 200, 300]


def test_the_font_is_one_cell_glyph_half_an_em_wide() -> None:
    font = TTFont(io.BytesIO(searchable._GLYPHLESS_FONT))
    assert font.getGlyphOrder() == [".notdef", "cell"]
    assert font["head"].unitsPerEm == 1000
    assert {name: font["hmtx"][name][0] for name in font.getGlyphOrder()} == {
        ".notdef": 500,
        "cell": 500,
    }
    assert (font["hhea"].ascent, font["hhea"].descent) == (800, -200)
    cell = font["glyf"]["cell"]
    assert (cell.xMin, cell.yMin, cell.xMax, cell.yMax) == (0, -200, 500, 800)


def test_a_page_that_inherits_its_resources_keeps_them(tmp_path: Path) -> None:
    # Page.add_resource copies inherited resources onto the page before adding to them.
    pdf = pikepdf.new()
    page = pdf.add_blank_page(page_size=(300, 200))
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    pdf.Root.Pages.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    del page.obj["/Resources"]
    page.obj.Contents = pdf.make_stream(b"BT /F1 20 Tf 20 150 Td (Inherited) Tj ET")
    buffer = io.BytesIO()
    pdf.save(buffer)
    line = _line("Added", (40, 200, 200, 240))
    out = build_searchable_pdf(
        buffer.getvalue(), format="PDF", document=_document([_page(0, (600, 400), (line,))])
    )
    assert _page_texts(out, tmp_path) == ["Inherited Added"]
