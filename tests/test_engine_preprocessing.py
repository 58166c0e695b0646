"""Pages before the engines read them: big pages cut to their print, faint print darkened."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ocrstream.engines.preprocessing import (
    even_light,
    faint_levels,
    printed_area,
    printed_areas,
    stretch_levels,
)
from tests.invoices import invoice_set
from tests.receipts import A4_600DPI, KINDS, fonts_available, receipt_sheet, render_receipt

needs_fonts = pytest.mark.skipif(
    not fonts_available(), reason="DejaVu fonts missing (apt-get install fonts-dejavu-core)"
)


def test_printed_area_holds_the_ink_with_a_margin() -> None:
    page = Image.new("L", (4000, 6000), 250)
    ImageDraw.Draw(page).rectangle((1200, 700, 2100, 1900), fill=20)
    area = printed_area(page)
    assert area is not None
    left, top, right, bottom = area.box
    # The ink inside, with a margin of 1% of the long side (60 px), give or take a block.
    assert 1200 - 80 <= left <= 1200
    assert 700 - 80 <= top <= 700
    assert 2101 <= right <= 2101 + 80
    assert 1901 <= bottom <= 1901 + 80
    assert area.offset == (left, top)


def test_printed_area_ignores_specks() -> None:
    page = Image.new("L", (3000, 3000), 250)
    draw = ImageDraw.Draw(page)
    draw.rectangle((1000, 1000, 1500, 1400), fill=0)
    for x, y in [(50, 50), (2900, 2950), (100, 2800)]:  # dust, one pixel each
        draw.point((x, y), fill=0)
    area = printed_area(page)
    assert area is not None
    assert area.box[0] > 800
    assert area.box[2] < 1700


@pytest.mark.parametrize("size", [(2000, 3000), (1, 1), (0, 0)])
def test_no_area_for_a_blank_page(size: tuple[int, int]) -> None:
    assert printed_area(Image.new("RGB", size, "white")) is None


def test_no_area_when_the_print_fills_the_page() -> None:
    page = Image.new("L", (3000, 3000), 250)
    ImageDraw.Draw(page).rectangle((100, 100, 2900, 2900), outline=0, width=8)
    assert printed_area(page) is None


@needs_fonts
def test_printed_area_of_a_small_receipt_on_a4() -> None:
    receipt = render_receipt("a4", random.Random(3))
    area = printed_area(receipt.image)
    assert receipt.image.size == A4_600DPI
    assert area is not None
    left, top, right, bottom = area.box
    assert (right - left) * (bottom - top) < 0.15 * A4_600DPI[0] * A4_600DPI[1]


@needs_fonts
@pytest.mark.parametrize("kind", KINDS)
def test_only_faint_receipts_are_faint(kind: str) -> None:
    rng = random.Random(17)
    for _ in range(3):
        receipt = render_receipt(kind, rng)  # type: ignore[arg-type]
        image = receipt.image
        if kind == "a4":
            area = printed_area(image)
            assert area is not None
            image = image.crop(area.box)  # as the engines judge it
        levels = faint_levels(image)
        if kind == "faint":
            assert levels is not None
            ink, paper = levels
            assert 150 <= ink < paper <= 255
        else:
            assert levels is None


def test_invoices_are_not_faint() -> None:
    import io

    for invoice in invoice_set(4):
        with Image.open(io.BytesIO(invoice.data)) as image:
            assert faint_levels(image) is None


@pytest.mark.parametrize("paper", [255, 200])
def test_a_blank_page_is_not_faint(paper: int) -> None:
    assert faint_levels(Image.new("L", (300, 200), paper)) is None


def test_stretch_maps_ink_to_black_and_paper_to_white() -> None:
    page = Image.new("RGB", (40, 10), (240, 240, 240))
    ImageDraw.Draw(page).rectangle((5, 2, 15, 8), fill=(180, 180, 180))
    stretched = stretch_levels(page, 180, 240)
    assert stretched.mode == "L"
    assert stretched.getpixel((10, 5)) == 0
    assert stretched.getpixel((30, 5)) == 255
    assert stretch_levels(Image.new("L", (2, 2), 210), 180, 240).getpixel((0, 0)) == 128


@needs_fonts
def test_receipts_side_by_side_are_areas_of_their_own() -> None:
    rng = random.Random(5)
    for _ in range(2):
        sheet = receipt_sheet(rng)
        areas = printed_areas(sheet.image)
        assert len(areas) == 4
        for index, first in enumerate(areas):
            for second in areas[index + 1 :]:
                apart_x = first.box[2] <= second.box[0] or second.box[2] <= first.box[0]
                apart_y = first.box[3] <= second.box[1] or second.box[3] <= first.box[1]
                assert apart_x or apart_y


@needs_fonts
def test_one_receipt_is_one_area_whatever_its_columns() -> None:
    rng = random.Random(8)
    for table in (False, True, False, True):
        receipt = render_receipt("a4", rng, table=table)
        assert printed_areas(receipt.image) == [printed_area(receipt.image)]


def test_one_area_or_none_as_printed_area_finds_it() -> None:
    page = Image.new("L", (4000, 6000), 250)
    ImageDraw.Draw(page).rectangle((1000, 2000, 1800, 3000), fill=0)
    assert printed_areas(page) == [printed_area(page)]
    full = Image.new("L", (3000, 3000), 250)
    ImageDraw.Draw(full).rectangle((100, 100, 2900, 2900), outline=0, width=8)
    assert printed_areas(full) == []
    assert printed_areas(Image.new("L", (3000, 3000), 250)) == []


def test_even_light_whitens_paper_and_keeps_ink() -> None:
    page = Image.linear_gradient("L").resize((600, 400)).point(lambda level: 120 + level // 2)
    draw = ImageDraw.Draw(page)
    for x in range(40, 560, 60):
        draw.rectangle((x, 180, x + 6, 220), fill=40)
    even = np.asarray(even_light(page))
    assert min(even[20, 20], even[380, 20], even[20, 580]) >= 235  # paper, dark and light
    assert max(even[200, 43], even[200, 523]) <= 120  # ink, on dark and light paper
