"""Receipt-like images with known text: thermal-paper widths, monospace and letter-spaced
print, amounts, dates and times; clean, faint, small on an A4 page, or photographed.

Drawn with the DejaVu faces (Debian package ``fonts-dejavu-core``). Each receipt keeps
the rows drawn on it (a row's pieces joined by one space, left to right) and the amounts,
dates and times printed on it, so that tests and the benchmark score what matters on a
receipt: every figure exact, every row exact.
"""

from __future__ import annotations

import io
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ocrstream.engines.base import PageLine, PageText, join_lines
from tests.invoices import exact_lines
from tests.text import normalise_spaces

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "FACES",
    "FONT_DIR",
    "KINDS",
    "Piece",
    "Receipt",
    "Row",
    "Score",
    "digit_dot_splits",
    "draw_rows",
    "fonts_available",
    "raw_read",
    "receipt_set",
    "receipt_sheet",
    "render_receipt",
    "score",
]

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
#: The faces receipts are drawn in (files in FONT_DIR); "pillow" is Pillow's own font.
FACES = {
    "mono": "DejaVuSansMono.ttf",
    "mono-bold": "DejaVuSansMono-Bold.ttf",
    "sans": "DejaVuSans.ttf",
    "sans-bold": "DejaVuSans-Bold.ttf",
    "condensed": "DejaVuSansCondensed.ttf",
    "serif": "DejaVuSerif.ttf",
    "serif-italic": "DejaVuSerif-Italic.ttf",
}

Kind = Literal["clean", "faint", "a4", "photo", "sheet"]
#: The receipt kinds :func:`receipt_set` cycles through ("sheet": :func:`receipt_sheet`).
KINDS: tuple[Kind, ...] = ("clean", "faint", "a4", "photo")

#: Dots per inch of a thermal printer (its 58 and 80 mm rolls are 384 and 576 dots wide).
THERMAL_DPI = 203
#: A4 at 600 dpi, as a flatbed scanner makes it.
A4_600DPI = (4961, 7016)


def fonts_available() -> bool:
    """Whether the DejaVu faces the receipts are drawn in are installed."""
    return all((FONT_DIR / name).is_file() for name in FACES.values())


@dataclass(frozen=True)
class Piece:
    """A run of text drawn at one place on a row.

    ``align`` places it at the left margin, the right margin, the centre, or at
    ``column`` (a fraction of the printable width, left edge of the text).
    ``tracking`` is extra space after each character, in ems (letter-spaced print).
    """

    text: str
    align: Literal["left", "right", "centre", "column"] = "left"
    column: float = 0.0
    face: str = "mono"
    size: float = 1.0
    tracking: float = 0.0


@dataclass(frozen=True)
class Row:
    """One printed row: its pieces, left to right."""

    pieces: tuple[Piece, ...]

    @property
    def text(self) -> str:
        """The row as it reads: its pieces joined by one space."""
        return " ".join(piece.text for piece in self.pieces)


@dataclass(frozen=True)
class Receipt:
    """A rendered receipt, the rows drawn on it and the figures printed on it."""

    image: Image.Image
    rows: tuple[str, ...]
    amounts: tuple[str, ...]
    dates: tuple[str, ...]
    total: str
    kind: Kind
    format: str

    def encode(self) -> bytes:
        """The image as the bytes a client would upload (PNG, or JPEG for photos)."""
        out = io.BytesIO()
        options: dict[str, object] = {"quality": 80} if self.format == "JPEG" else {}
        self.image.save(out, format=self.format, compress_level=1, **options)
        return out.getvalue()

    def __repr__(self) -> str:
        return (
            f"Receipt({self.kind}, {self.image.width}x{self.image.height}, {len(self.rows)} rows)"
        )


# -- content -------------------------------------------------------------------------

_SHOPS = [
    "SOLARIS MART",
    "KEDAI RUNCIT AMAN",
    "PARKING CENTRAL",
    "BAKERY LUMIERE",
    "TECHNO HUB",
    "FRESHMART GROCER",
    "CAFE MERIDIAN",
    "HARDWARE DEPOT",
]
_STREETS = ["JALAN MERANTI", "JALAN SULTAN", "LORONG BUNGA", "MAIN STREET", "HARBOUR ROAD"]
_ITEMS = [
    "MILO 1KG",
    "SUGAR",
    "COFFEE BEANS",
    "PAPER TOWEL",
    "PARKING FEE",
    "BREAD LOAF",
    "MINERAL WATER",
    "USB CABLE",
    "CHOC CAKE",
    "DETERGENT",
    "RICE 5KG",
    "BATTERY AA",
]
_BIG_ITEMS = ["LAPTOP", "MONITOR", "PRINTER", "TABLET", "PHONE"]


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _date(rng: random.Random) -> str:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    return rng.choice(
        [f"{day:02d}/{month:02d}/2026", f"2026-{month:02d}-{day:02d}", f"{day:02d}.{month:02d}.26"]
    )


def _time(rng: random.Random) -> str:
    hour, minute, second = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return rng.choice([f"{hour:02d}:{minute:02d}", f"{hour:02d}:{minute:02d}:{second:02d}"])


@dataclass
class _Content:
    rows: list[Row]
    amounts: list[str]
    dates: list[str]
    total: str


def _content(rng: random.Random, *, table: bool) -> _Content:
    """The text of one receipt; ``table`` lays the items out in columns."""
    face = rng.choice(["mono", "mono", "mono-bold", "condensed"])
    spaced = rng.random() < 0.7
    currency = rng.choice(["RM", "", "$"])
    header = Piece(
        rng.choice(_SHOPS),
        "centre",
        face=rng.choice(["sans-bold", "mono-bold"]),
        size=1.3,
        tracking=rng.uniform(0.15, 0.4) if spaced else 0.0,
    )
    street = f"NO {rng.randint(1, 250)} {rng.choice(_STREETS)}"
    date, clock = _date(rng), _time(rng)
    rows = [
        Row((header,)),
        Row((Piece(street, "centre", face=face, tracking=0.1 if spaced else 0.0),)),
        Row((Piece(f"RECEIPT {rng.randint(1000, 999999):06d}", face=face),)),
        Row((Piece(date, face=face), Piece(clock, "right", face=face))),
    ]
    amounts: list[str] = []
    cents_total = 0
    names = rng.sample(_ITEMS, rng.randint(3, 5))
    if rng.random() < 0.4:
        names.append(rng.choice(_BIG_ITEMS))
    if table:
        rows.append(
            Row(
                (
                    Piece("ITEM", face=face),
                    Piece("QTY", "column", 0.5, face=face),
                    Piece("AMOUNT", "right", face=face),
                )
            )
        )
    for name in names:
        big = name in _BIG_ITEMS
        price = rng.randint(50_000, 899_999) if big else rng.randint(50, 9_999)
        quantity = 1 if big else rng.choice([1, 1, 2, 3])
        cents_total += price * quantity
        amount = _money(price * quantity)
        amounts.append(amount)
        if table:
            rows.append(
                Row(
                    (
                        Piece(name, face=face),
                        Piece(str(quantity), "column", 0.5, face=face),
                        Piece(amount, "right", face=face),
                    )
                )
            )
        elif quantity > 1:
            rows.append(Row((Piece(name, face=face),)))
            each = _money(price)
            amounts.append(each)
            rows.append(
                Row((Piece(f"{quantity} X {each}", face=face), Piece(amount, "right", face=face)))
            )
        else:
            rows.append(Row((Piece(name, face=face), Piece(amount, "right", face=face))))
    tax = round(cents_total * 0.06)
    total = _money(cents_total + tax)
    paid = (cents_total + tax + 999) // 1000 * 1000 + rng.choice([0, 0, 5000])
    amounts += [_money(cents_total), _money(tax), currency + total, _money(paid)]
    amounts.append(_money(paid - cents_total - tax))
    rows += [
        Row((Piece("SUBTOTAL", face=face), Piece(_money(cents_total), "right", face=face))),
        Row((Piece("SST 6%", face=face), Piece(_money(tax), "right", face=face))),
        Row(
            (
                Piece("TOTAL", face=face, size=1.15, tracking=0.2 if spaced else 0.0),
                Piece(currency + total, "right", face=face, size=1.15),
            )
        ),
        Row((Piece("CASH", face=face), Piece(_money(paid), "right", face=face))),
        Row(
            (
                Piece("CHANGE", face=face),
                Piece(_money(paid - cents_total - tax), "right", face=face),
            )
        ),
        Row((Piece("THANK YOU COME AGAIN", "centre", face=face, size=0.8),)),
        Row((Piece(f"PRINTED {date} {clock}", "centre", face=face, size=0.8),)),
    ]
    # Amounts are scored without their currency prefix (a token of digits, "," and ".").
    figures = [re.sub(r"^[^\d]+", "", amount) for amount in amounts]
    return _Content(rows, figures, [date, clock, date, clock], total)


# -- drawing -------------------------------------------------------------------------

_FONT_CACHE: dict[tuple[str, int], ImageFont.FreeTypeFont] = {}


def _font(face: str, size: int) -> ImageFont.FreeTypeFont:
    key = (face, size)
    if key not in _FONT_CACHE:
        if face == "pillow":  # Pillow's own scalable font (the invoices' font)
            _FONT_CACHE[key] = ImageFont.load_default(size=size)  # type: ignore[assignment]
        else:
            _FONT_CACHE[key] = ImageFont.truetype(str(FONT_DIR / FACES[face]), size)
    return _FONT_CACHE[key]


def _piece_width(piece: Piece, font: ImageFont.FreeTypeFont) -> float:
    if not piece.tracking:
        return font.getlength(piece.text)
    extra = piece.tracking * font.size
    return sum(font.getlength(char) + extra for char in piece.text) - extra


def draw_rows(
    rows: Sequence[Row],
    *,
    font_size: float,
    width: int,
    ink: int = 0,
    paper: int = 255,
    margin: float = 1.0,
    line_spacing: float = 1.55,
) -> Image.Image:
    """Draw ``rows`` on a ``width``-pixel strip of paper (grey levels), one row a line.

    ``font_size`` is the size of a ``Piece(size=1.0)`` in pixels; the margin is in ems.
    The strip is widened when a row does not fit.
    """
    base = round(font_size)
    pad = round(margin * font_size)
    placed: list[tuple[Piece, ImageFont.FreeTypeFont, float]] = []
    needed = 0.0
    for row in rows:
        widths = []
        for piece in row.pieces:
            font = _font(piece.face, max(8, round(base * piece.size)))
            widths.append(_piece_width(piece, font))
        needed = max(needed, sum(widths) + font_size * (len(widths) - 1) * 2)
    width = max(width, math.ceil(needed) + 2 * pad)
    heights = [max(round(base * piece.size) for piece in row.pieces) for row in rows]
    height = 2 * pad + sum(math.ceil(h * line_spacing) for h in heights)
    image = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(image)
    y = float(pad)
    for row, row_height in zip(rows, heights, strict=True):
        placed.clear()
        for piece in row.pieces:
            font = _font(piece.face, max(8, round(base * piece.size)))
            placed.append((piece, font, _piece_width(piece, font)))
        for piece, font, piece_width in placed:
            if piece.align == "left":
                x = float(pad)
            elif piece.align == "right":
                x = width - pad - piece_width
            elif piece.align == "centre":
                x = (width - piece_width) / 2
            else:
                x = pad + piece.column * (width - 2 * pad)
            top = y + (row_height - font.size) * 0.8
            if not piece.tracking:
                draw.text((x, top), piece.text, fill=ink, font=font)
                continue
            extra = piece.tracking * font.size
            for char in piece.text:
                draw.text((x, top), char, fill=ink, font=font)
                x += font.getlength(char) + extra
        y += math.ceil(row_height * line_spacing)
    return image


def _faded(image: Image.Image, rng: random.Random, *, ink: int, paper: int) -> Image.Image:
    """Thermal print gone faint: ink lifted towards ``ink`` grey, unevenly, with grain."""
    import numpy as np

    generator = np.random.default_rng(rng.randrange(1 << 30))
    grey = np.asarray(image, dtype=np.float32)
    coverage = (paper - grey) / max(1, paper)  # 0 on paper, ~1 in full ink
    width, height = image.size
    coarse = generator.uniform(0.55, 1.0, size=(max(1, height // 6), max(1, width // 6)))
    mottle = np.asarray(
        Image.fromarray((coarse * 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BILINEAR
        ),
        dtype=np.float32,
    )
    strength = coverage * mottle / 255.0
    faded = paper - (paper - ink) * strength + generator.normal(0, 3.0, size=grey.shape)
    return Image.fromarray(np.clip(faded, 0, 255).astype(np.uint8), "L")


def _photographed(image: Image.Image, rng: random.Random) -> Image.Image:
    """A phone photo of the receipt: on a table, slightly turned, lit unevenly, blurred."""
    import numpy as np

    table = rng.randint(70, 130)
    border = max(image.size) // 12
    canvas = Image.new("L", (image.width + 2 * border, image.height + 2 * border), table)
    canvas.paste(image, (border, border))
    turned = canvas.rotate(
        rng.uniform(-2.0, 2.0), resample=Image.Resampling.BICUBIC, expand=False, fillcolor=table
    )
    grey = np.asarray(turned, dtype=np.float32)
    height, width = grey.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xs / width) * math.cos(angle) + (ys / height) * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(1e-6, float(ramp.max() - ramp.min()))
    light = 1.0 - rng.uniform(0.2, 0.35) * ramp
    lit = Image.fromarray(np.clip(grey * light, 0, 255).astype(np.uint8), "L")
    blurred = lit.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.1))).convert("RGB")
    out = io.BytesIO()
    blurred.save(out, format="JPEG", quality=rng.randint(70, 85))
    out.seek(0)
    with Image.open(out) as decoded:
        return decoded.convert("RGB")


def _on_a4(image: Image.Image, rng: random.Random) -> Image.Image:
    """The receipt (drawn at 600 dpi) lying on a flatbed scanner's A4 page."""
    page = Image.new("L", A4_600DPI, 252)
    x = rng.randint(200, A4_600DPI[0] - image.width - 200)
    y = rng.randint(200, max(201, A4_600DPI[1] // 3 - image.height // 4))
    y = min(y, A4_600DPI[1] - image.height - 200)
    page.paste(image, (x, y))
    return page.convert("RGB")


def render_receipt(kind: Kind, rng: random.Random, *, table: bool = False) -> Receipt:
    """One receipt of ``kind`` with random content from ``rng``."""
    content = _content(rng, table=table)
    dots = rng.choice([384, 576])
    font_size = rng.uniform(19, 23) if dots == 576 else rng.uniform(17, 20)
    if kind == "a4":
        # A small receipt: its printer's small font (9 x 17 dots, "font B").
        font_size = rng.uniform(13, 16)
    scale = 600 / THERMAL_DPI if kind == "a4" else rng.uniform(1.4, 1.8) if kind == "photo" else 1
    paper = 255 if kind == "clean" else rng.randint(238, 248)
    strip = draw_rows(
        content.rows, font_size=font_size * scale, width=round(dots * scale), paper=paper
    )
    if kind == "faint":
        # 60-75% grey ink: its grey level is 60-75% of white.
        strip = _faded(strip, rng, ink=rng.randint(153, 191), paper=paper)
    if kind == "photo":
        image = _photographed(strip, rng)
        fmt = "JPEG"
    elif kind == "a4":
        image = _on_a4(strip, rng)
        fmt = "PNG"
    else:
        image = strip.convert("RGB")
        fmt = "PNG"
    return Receipt(
        image=image,
        rows=tuple(row.text for row in content.rows),
        amounts=tuple(content.amounts),
        dates=tuple(content.dates),
        total=content.total,
        kind=kind,
        format=fmt,
    )


def receipt_sheet(rng: random.Random, count: int = 4) -> Receipt:
    """``count`` small receipts (as :func:`render_receipt`'s "a4" kind draws them) scanned
    together on one A4 page at 600 dpi, two side by side per band, each placed at random
    in its cell. The sheet's rows, amounts and dates are the receipts' in turn; its total
    is the first receipt's."""
    columns = 2
    bands = -(-count // columns)
    cell_width, cell_height = A4_600DPI[0] // columns, A4_600DPI[1] // bands
    page = Image.new("L", A4_600DPI, 252)
    rows: list[str] = []
    amounts: list[str] = []
    dates: list[str] = []
    totals: list[str] = []
    for index in range(count):
        content = _content(rng, table=rng.random() < 0.3)
        dots = rng.choice([384, 576])
        scale = 600 / THERMAL_DPI
        strip = draw_rows(
            content.rows,
            font_size=rng.uniform(13, 16) * scale,
            width=round(dots * scale),
            paper=rng.randint(238, 248),
        )
        left, top = (index % columns) * cell_width, (index // columns) * cell_height
        x = left + rng.randint(60, max(60, cell_width - strip.width - 60))
        y = top + rng.randint(60, max(60, cell_height - strip.height - 60))
        page.paste(strip, (x, y))
        rows += [row.text for row in content.rows]
        amounts += content.amounts
        dates += content.dates
        totals.append(content.total)
    return Receipt(
        image=page.convert("RGB"),
        rows=tuple(rows),
        amounts=tuple(amounts),
        dates=tuple(dates),
        total=totals[0],
        kind="sheet",
        format="PNG",
    )


def receipt_set(count: int, *, seed: int = 11, kinds: Sequence[Kind] = KINDS) -> list[Receipt]:
    """``count`` receipts cycling through ``kinds``; every third one has an item table."""
    rng = random.Random(seed)
    return [
        render_receipt(kinds[index % len(kinds)], rng, table=index % 3 == 2)
        for index in range(count)
    ]


# -- the raw engines ----------------------------------------------------------------

_RAW_RAPIDOCR: list[object] = []


def raw_read(engine: str, image: Image.Image) -> PageText:
    """What ``engine`` reads on ``image`` by itself, without what ocrstream adds.

    ``rapidocr``: the library as it ships (its 2000-pixel page limit, no space
    recovery), its boxes through the adapter's line assembly so that lines compare;
    ``tesseract``: the program as the service ran it before issue 11 (``--psm 4``; its
    own default, 3, reads receipts worse still), on the image as it is (no cropping,
    levels stretch or enlarging).
    """
    import numpy as np

    width, height = image.size
    if engine == "rapidocr":
        from ocrstream.engines.rapidocr import adapter

        if not _RAW_RAPIDOCR:
            from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]

            _RAW_RAPIDOCR.append(RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1))
        rgb = adapter._pad_to_ratio(adapter._to_rgb(image))
        bgr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[:, :, ::-1])
        result, _elapsed = _RAW_RAPIDOCR[0](bgr)  # type: ignore[operator]
        lines = [
            line
            for row in result or ()
            if (line := adapter._page_line(row, width=width, height=height)) is not None
        ]
        return join_lines(adapter._merge_split_lines(lines))
    from ocrstream.engines import tesseract

    tesseract.load()
    tsv = tesseract._run(tesseract._loaded_binary(), tesseract._png_bytes(image), psm=4)
    found = tesseract._parse_tsv(tsv, width, height)
    return join_lines(found) if found else PageText(text="", lines=())


# -- scoring -------------------------------------------------------------------------

_DIGIT_DOT_SPLIT = re.compile(r"\d[.,:] \d|\d [.,:]\d")


def digit_dot_splits(text: str) -> int:
    """How many times a space cuts a number at its separator ("73. 00", "39 .60")."""
    return sum(len(_DIGIT_DOT_SPLIT.findall(line)) for line in text.splitlines())


def _figure_count(figure: str, text: str) -> int:
    """Occurrences of ``figure`` in ``text`` as a whole number (not inside a longer one)."""
    pattern = rf"(?<![\d.,:/-]){re.escape(figure)}(?![\d]|[.,:/-]\d)"
    return len(re.findall(pattern, text))


def _found(figures: Iterable[str], text: str) -> int:
    wanted = Counter(figures)
    return sum(min(count, _figure_count(figure, text)) for figure, count in wanted.items())


def _rows_read(page: PageText) -> PageText:
    """The page's lines plus, per row (as ``join_lines`` groups them), the row's lines
    joined by one space: a row reads exactly whether it came as one line or several."""
    rows: list[list[PageLine]] = []
    for line in page.lines:
        if rows and _same_row(rows[-1][-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    joined = [
        PageLine(
            text=" ".join(line.text for line in row),
            confidence=min(line.confidence for line in row),
            bbox=row[0].bbox,
        )
        for row in rows
        if len(row) > 1
    ]
    return PageText(text=page.text, lines=(*page.lines, *joined))


def _same_row(left: PageLine, right: PageLine) -> bool:
    centre_left = (left.bbox[1] + left.bbox[3]) / 2
    centre_right = (right.bbox[1] + right.bbox[3]) / 2
    height = max(1, right.bbox[3] - right.bbox[1])
    return abs(centre_left - centre_right) < height / 2 and right.bbox[0] >= left.bbox[0]


@dataclass
class Score:
    """Figures of merit over a set of receipts, as counts."""

    amounts: int = 0
    amounts_found: int = 0
    dates: int = 0
    dates_found: int = 0
    totals: int = 0
    totals_found: int = 0
    rows: int = 0
    rows_exact: int = 0
    splits: int = 0
    splits_drawn: int = 0

    def add(self, receipt: Receipt, page: PageText) -> None:
        """Score ``page`` as read from ``receipt``."""
        text = "\n".join(normalise_spaces(line.text) for line in page.lines)
        self.amounts += len(receipt.amounts)
        self.amounts_found += _found(receipt.amounts, text)
        self.dates += len(receipt.dates)
        self.dates_found += _found(receipt.dates, text)
        self.totals += 1
        self.totals_found += _found([receipt.total], text) > 0
        exact, drawn, _missed = exact_lines([(receipt.rows, _rows_read(page))])
        self.rows += drawn
        self.rows_exact += exact
        self.splits += digit_dot_splits(text)
        self.splits_drawn += digit_dot_splits("\n".join(receipt.rows))

    @property
    def amount_accuracy(self) -> float:
        """Share of the printed amounts read exactly."""
        return self.amounts_found / max(1, self.amounts)

    @property
    def date_accuracy(self) -> float:
        """Share of the printed dates and times read exactly."""
        return self.dates_found / max(1, self.dates)

    @property
    def row_accuracy(self) -> float:
        """Share of the printed rows read exactly (spaces folded, not ignored)."""
        return self.rows_exact / max(1, self.rows)


def score(pairs: Iterable[tuple[Receipt, PageText]]) -> Score:
    """Score every (receipt, page read from it) pair."""
    result = Score()
    for receipt, page in pairs:
        result.add(receipt, page)
    return result
