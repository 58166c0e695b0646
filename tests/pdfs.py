"""Real PDF bytes made in the tests: born-digital (fpdf2), scanned (img2pdf), edited with
pikepdf (rotated, cropped, encrypted, JavaScript and an attachment), and hand-written ones
(thousands of pages, a huge page, broken files) whose bytes the tests control exactly."""

from __future__ import annotations

import io
from dataclasses import dataclass

import img2pdf  # type: ignore[import-untyped]
import pikepdf
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "BORN_DIGITAL",
    "TextPage",
    "born_digital",
    "broken_xref",
    "concatenate",
    "cropped",
    "encrypted",
    "garbage",
    "huge_page",
    "many_pages",
    "raw_pdf",
    "rotated",
    "scanned",
    "sideways",
    "truncated_pdf",
    "with_javascript_and_attachment",
]

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@dataclass(frozen=True, slots=True, kw_only=True)
class TextPage:
    """One born-digital page: its size in points and its lines, each at a baseline.

    Attributes:
        size: (width, height) in points.
        lines: (x, baseline y from the top, text) in points, one per line.
        font_size: in points.
    """

    size: tuple[float, float]
    lines: tuple[tuple[float, float, str], ...]
    font_size: float = 14


#: Three pages of mixed sizes (A4 portrait, US letter landscape, a small square).
BORN_DIGITAL = (
    TextPage(
        size=(595.28, 841.89),
        lines=(
            (72, 100, "Invoice number 2024-117"),
            (72, 130, "Total due: 1,250.00 EUR"),
            (72, 160, "Thank you for your business."),
        ),
    ),
    TextPage(size=(792, 612), lines=((100, 300, "Landscape page two"),), font_size=20),
    TextPage(size=(200, 200), lines=((20, 50, "small"), (20, 80, "square page")), font_size=12),
)


def born_digital(pages: tuple[TextPage, ...] = BORN_DIGITAL) -> bytes:
    """A PDF whose pages hold real text (Helvetica) at the given places."""
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(auto=False)
    for page in pages:
        pdf.add_page(format=page.size)
        pdf.set_font("helvetica", size=page.font_size)
        for x, y, text in page.lines:
            pdf.text(x, y, text)
    return bytes(pdf.output())


def sideways() -> bytes:
    """A page whose text is drawn turned 90 degrees and shown upright by ``/Rotate 90``
    (how a landscape page often comes out of a scanner's PDF)."""
    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    with pdf.rotation(90, 300, 700):
        pdf.text(300, 700, "first line sideways")
        pdf.text(300, 720, "second line sideways")
    return rotated(bytes(pdf.output()), 90)


def scanned(
    text: str = "Scanned words", size: tuple[int, int] = (850, 1100), dpi: int = 100
) -> bytes:
    """A one-page image-only PDF: a Pillow-drawn page of text at ``dpi``, no text layer."""
    image = Image.new("L", size, 255)
    font = ImageFont.truetype(_FONT, 40)
    ImageDraw.Draw(image).text((80, 120), text, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi))
    layout = img2pdf.get_fixed_dpi_layout_fun((dpi, dpi))
    return bytes(img2pdf.convert(out.getvalue(), layout_fun=layout))


def concatenate(*documents: bytes) -> bytes:
    """The pages of ``documents`` in order, as one PDF (e.g. a mixed born-digital + scanned)."""
    result = pikepdf.new()
    sources = [pikepdf.open(io.BytesIO(data)) for data in documents]
    try:
        for source in sources:
            result.pages.extend(source.pages)
        return _save(result)
    finally:
        for source in sources:
            source.close()


def rotated(data: bytes, degrees: int) -> bytes:
    """``data`` with ``/Rotate degrees`` on every page."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages:
            page.Rotate = degrees
        return _save(pdf)


def cropped(data: bytes, box: tuple[float, float, float, float]) -> bytes:
    """``data`` with a ``/CropBox`` (left, bottom, right, top in points) on every page."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages:
            page.CropBox = pikepdf.Array(box)
        return _save(pdf)


def encrypted(data: bytes, *, user: str = "u", owner: str = "o") -> bytes:
    """``data`` encrypted (AES-256); ``user=""`` opens without a password."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        out = io.BytesIO()
        pdf.save(out, encryption=pikepdf.Encryption(user=user, owner=owner))
        return out.getvalue()


def with_javascript_and_attachment(data: bytes) -> bytes:
    """``data`` with an ``/OpenAction`` JavaScript and an embedded file."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        script = "app.alert('pwned'); this.exportDataObject({cName: 'payload.sh', nLaunch: 2});"
        pdf.Root.OpenAction = pikepdf.Dictionary(
            S=pikepdf.Name.JavaScript, JS=pikepdf.String(script)
        )
        spec = pikepdf.AttachedFileSpec(pdf, b"#!/bin/sh\necho pwned\n", filename="payload.sh")
        pdf.attachments["payload.sh"] = spec
        return _save(pdf)


def raw_pdf(objects: list[bytes], *, root: int = 1) -> bytes:
    """A PDF written byte by byte: ``objects[i]`` is object ``i + 1``'s body; a correct xref."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\n" % (len(objects) + 1, root)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def many_pages(count: int, *, size: tuple[float, float] = (612, 792)) -> bytes:
    """``count`` blank pages, each its own small object (cheap: no content streams)."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] >>" % size
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
        *([page] * count),
    ]
    return raw_pdf(objects)


def huge_page(inches: float = 200) -> bytes:
    """One blank page whose MediaBox is ``inches`` square."""
    return many_pages(1, size=(inches * 72, inches * 72))


def truncated_pdf(data: bytes, keep: float = 0.5) -> bytes:
    """The first ``keep`` of ``data``: no xref, no trailer."""
    return data[: int(len(data) * keep)]


def broken_xref(data: bytes) -> bytes:
    """``data`` whose ``startxref`` points past the end of the file."""
    head, _, _ = data.rpartition(b"startxref")
    return head + b"startxref\n%d\n%%%%EOF\n" % (len(data) * 10)


def garbage() -> bytes:
    """The PDF signature followed by noise."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8


def _save(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()
