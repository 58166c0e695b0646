"""Invoice-like images with known text, drawn with Pillow's scalable built-in font."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from tests.text import normalise_spaces

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from ocrstream.engines.base import PageText

__all__ = ["Invoice", "exact_lines", "invoice_set", "render_invoice"]

_COMPANIES = [
    "Acme Supplies Ltd",
    "Northwind Traders",
    "Blue River Logistics",
    "Harbor Office Goods",
    "Summit Paper Company",
    "Greenfield Farms Inc",
    "Orion Electrical Co",
    "Maple Street Bakery",
]
_ITEMS = ["Printer paper", "Toner cartridge", "Desk lamp", "Shipping fee", "Coffee beans", "Cables"]


@dataclass(frozen=True)
class Invoice:
    """An image and the lines drawn on it, top to bottom."""

    data: bytes
    lines: tuple[str, ...]
    format: str
    orientation: int

    def __repr__(self) -> str:
        return f"Invoice({self.format}, orientation={self.orientation}, {len(self.lines)} lines)"


def _text_lines(rng: random.Random) -> list[str]:
    number = rng.randint(10000, 99999)
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    lines = [
        rng.choice(_COMPANIES),
        f"Invoice No {number}",
        f"Date 2026-{month:02d}-{day:02d}",
    ]
    total = 0.0
    for item in rng.sample(_ITEMS, 3):
        amount = rng.randint(100, 99999) / 100
        total += amount
        lines.append(f"{item} {amount:.2f}")
    lines.append(f"Total due {total:.2f} EUR")
    return lines


def render_invoice(
    lines: list[str], *, fmt: str = "PNG", orientation: int = 1, font_size: int = 28
) -> bytes:
    """Draw ``lines`` black on white; with ``orientation`` 3/6/8 the pixels are stored
    rotated and the EXIF tag says how to turn them upright (like a phone photo)."""
    font = ImageFont.load_default(size=font_size)
    width = max(int(font.getlength(line)) for line in lines) + 2 * font_size
    line_height = int(font_size * 1.8)
    image = Image.new("RGB", (width, line_height * len(lines) + 2 * font_size), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((font_size, font_size + index * line_height), line, fill="black", font=font)
    exif = Image.Exif()
    if orientation != 1:
        # Store the pixels as the camera would have, so that applying the tag restores them.
        undo = {
            3: Image.Transpose.ROTATE_180,
            6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270,
        }
        image = image.transpose(undo[orientation])
        exif[0x0112] = orientation
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {}
    image.save(out, format=fmt, exif=exif.tobytes(), **options)
    return out.getvalue()


def invoice_set(count: int = 20, *, seed: int = 7) -> list[Invoice]:
    """``count`` invoices in PNG and JPEG, about a quarter of them rotated by EXIF."""
    rng = random.Random(seed)
    invoices = []
    for index in range(count):
        fmt = "PNG" if index % 2 == 0 else "JPEG"
        orientation = (1, 1, 1, 6, 1, 3, 1, 8)[index % 8]
        lines = _text_lines(rng)
        invoices.append(
            Invoice(
                render_invoice(lines, fmt=fmt, orientation=orientation),
                tuple(lines),
                fmt,
                orientation,
            )
        )
    return invoices


def exact_lines(
    pages: Iterable[tuple[Sequence[str], PageText]], *, ignore_spaces: bool = False
) -> tuple[int, int, list[str]]:
    """Score recognised pages against the lines drawn on them.

    A drawn line counts when some recognised line equals it once runs of whitespace
    are folded to one (spaces included, unless ``ignore_spaces``).

    Returns:
        (lines read exactly, lines drawn, the drawn lines that were missed).
    """

    def key(text: str) -> str:
        text = normalise_spaces(text)
        return text.replace(" ", "") if ignore_spaces else text

    drawn = exact = 0
    missed: list[str] = []
    for lines, page in pages:
        read = {key(line.text) for line in page.lines}
        for line in lines:
            drawn += 1
            if key(line) in read:
                exact += 1
            else:
                missed.append(line)
    return exact, drawn, missed
