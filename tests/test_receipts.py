"""Receipts, per engine: the service against the raw engine on rendered receipts.

The receipts (``tests/receipts.py``) are monospace and letter-spaced thermal print on
58 and 80 mm rolls, clean, faint, small on an A4 page at 600 dpi, or photographed.
What matters on a receipt is its figures: every amount, date and time must come out
exact, and the service must never cut more numbers ("73. 00") or read fewer rows
exactly than the engine does by itself.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from ocrstream.engines.base import EngineOptions
from ocrstream.engines.worker import engine_module
from tests.receipts import (
    KINDS,
    Score,
    fonts_available,
    raw_read,
    receipt_set,
    receipt_sheet,
    score,
)
from tests.text import normalise_spaces

if TYPE_CHECKING:
    from collections.abc import Callable

    from ocrstream.engines.base import PageText
    from tests.receipts import Kind, Receipt

pytestmark = pytest.mark.skipif(
    not fonts_available(), reason="DejaVu fonts missing (apt-get install fonts-dejavu-core)"
)

RECEIPTS = 12  # three of each kind
SHEETS = 2  # A4 pages of four receipts each
MIN_FIGURES = 0.97
#: The rows printed in the receipts' small font (0.8 of the body's size).
SMALL_PRINT = ("THANK YOU COME AGAIN", "PRINTED ")


@dataclass
class Reading:
    """Each receipt with what the service and the raw engine read on it."""

    engine: str
    pages: list[tuple[Receipt, PageText, PageText]]

    def service(self, kind: Kind | None = None) -> Score:
        """The service's figures, over every receipt or those of one kind."""
        return self._score(1, kind)

    def raw(self, kind: Kind | None = None) -> Score:
        """The raw engine's figures."""
        return self._score(2, kind)

    def _score(self, which: int, kind: Kind | None) -> Score:
        score = Score()
        for receipt, service, raw in self.pages:
            if kind is None or receipt.kind == kind:
                score.add(receipt, service if which == 1 else raw)
        return score


@pytest.fixture(scope="module")
def receipts() -> list[Receipt]:
    return receipt_set(RECEIPTS)


@pytest.fixture(scope="module", params=["rapidocr", "tesseract"])
def reading(request: pytest.FixtureRequest, receipts: list[Receipt]) -> Reading:
    engine: str = request.param
    if engine == "tesseract" and shutil.which("tesseract") is None:
        pytest.skip("tesseract binary not installed (apt-get install tesseract-ocr)")
    module = engine_module(engine)
    module.load(EngineOptions())
    pages = [
        (receipt, module.recognize(receipt.image), raw_read(engine, receipt.image))
        for receipt in receipts
    ]
    result = Reading(engine, pages)
    _report(result)
    return result


def _report(reading: Reading) -> None:
    print(f"\n{reading.engine}: service / raw")
    for kind in (*KINDS, None):
        service, raw = reading.service(kind), reading.raw(kind)
        print(
            f"  {kind or 'all':<6} amounts {service.amounts_found}/{raw.amounts_found}"
            f" of {service.amounts}, dates {service.dates_found}/{raw.dates_found}"
            f" of {service.dates}, rows {service.rows_exact}/{raw.rows_exact}"
            f" of {service.rows}, number cuts {service.splits}/{raw.splits}"
        )


def test_amounts_exact(reading: Reading, record_property: Callable[[str, object], None]) -> None:
    service, raw = reading.service(), reading.raw()
    record_property("amounts", f"{service.amounts_found}/{service.amounts}")
    assert service.amount_accuracy >= MIN_FIGURES, _missed(reading)
    assert service.amounts_found >= raw.amounts_found


def test_dates_and_times_exact(reading: Reading) -> None:
    service, raw = reading.service(), reading.raw()
    assert service.date_accuracy >= MIN_FIGURES, _missed(reading)
    assert service.dates_found >= raw.dates_found


def test_totals_at_least_as_raw(reading: Reading) -> None:
    service, raw = reading.service(), reading.raw()
    assert service.totals_found >= raw.totals_found, _missed(reading)
    if reading.engine == "rapidocr":
        assert service.totals_found == service.totals, _missed(reading)


def test_no_more_numbers_cut_than_raw(reading: Reading) -> None:
    assert reading.service().splits <= reading.raw().splits


@pytest.mark.parametrize("kind", [*KINDS, None])
def test_rows_exact_at_least_as_raw(reading: Reading, kind: Kind | None) -> None:
    service, raw = reading.service(kind), reading.raw(kind)
    assert service.rows_exact >= raw.rows_exact, _missed(reading)


def test_small_print_on_a4_reads(reading: Reading) -> None:
    service = reading.service("a4")
    assert service.amount_accuracy >= MIN_FIGURES, _missed(reading)
    for receipt, page, _raw in reading.pages:
        if receipt.kind != "a4":
            continue
        read = {normalise_spaces(line.text) for line in page.lines}
        small = [row for row in receipt.rows if row.startswith(SMALL_PRINT)]
        assert small
        assert all(row in read for row in small), (small, sorted(read))


def _missed(reading: Reading) -> str:
    """What the service did not read exactly, receipt by receipt (for failures)."""
    out = []
    for receipt, page, _raw in reading.pages:
        text = "\n".join(normalise_spaces(line.text) for line in page.lines)
        missing = [row for row in receipt.rows if row not in text.splitlines()]
        if missing:
            out.append(f"{receipt!r}: {missing} in {text.splitlines()}")
    return "\n".join(out)


def test_receipts_scanned_side_by_side_read_apart() -> None:
    """Four receipts on one A4 page: Tesseract reads each by itself (in one block, mode 6
    joined the rows of receipts side by side into one line)."""
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract binary not installed (apt-get install tesseract-ocr)")
    module = engine_module("tesseract")
    module.load(EngineOptions())
    rng = random.Random(11)
    sheets = [receipt_sheet(rng) for _ in range(SHEETS)]
    service = score((sheet, module.recognize(sheet.image)) for sheet in sheets)
    raw = score((sheet, raw_read("tesseract", sheet.image)) for sheet in sheets)
    print(
        f"\ntesseract, {SHEETS} A4 pages of 4 receipts: service / raw"
        f" amounts {service.amounts_found}/{raw.amounts_found} of {service.amounts},"
        f" dates {service.dates_found}/{raw.dates_found} of {service.dates},"
        f" rows {service.rows_exact}/{raw.rows_exact} of {service.rows}"
    )
    assert service.amount_accuracy >= MIN_FIGURES
    assert service.date_accuracy >= MIN_FIGURES
    assert service.amounts_found >= raw.amounts_found
    assert service.dates_found >= raw.dates_found
    assert service.rows_exact >= raw.rows_exact
