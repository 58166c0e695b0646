"""The fake engine (shipped for tests and benchmarks) keeps the engines' contract too."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from ocrstream.engines import fake
from tests.engine_contract import assert_page_contract, assert_reading_order
from tests.images import scripted_png

LINES = ("Invoice 42", "Total 9.99", "Thank you")


def _image(text: str, size: tuple[int, int] = (300, 90)) -> Image.Image:
    image = Image.open(io.BytesIO(scripted_png(text, size)))
    image.load()
    return image


def test_name_and_availability() -> None:
    assert fake.NAME == "fake"
    fake.check_available()
    fake.load()


def test_the_scripted_text_keeps_the_page_contract() -> None:
    image = _image("\n".join(LINES))
    page = fake.recognize(image)
    assert page.text == "\n".join(LINES)
    pages = [(LINES, image, page)]
    assert_page_contract(pages, empty_boxes_allowed=False)
    assert_reading_order(pages)


def test_an_unscripted_image_reports_its_size() -> None:
    plain = Image.new("RGB", (40, 20), "white")
    assert fake.recognize(plain).text == "40x20"


def test_the_markers() -> None:
    assert fake.recognize(_image("worker PID")).text == f"worker {os.getpid()}"
    with pytest.raises(fake.FakeEngineError):
        fake.recognize(_image("please FAIL"))
    assert fake.recognize(_image("SLEEP:0 done")).text == "SLEEP:0 done"


def test_each_line_has_its_words_boxed_along_it() -> None:
    image = _image("Total 1,234.56 EUR\nThank you", size=(360, 80))
    total, thanks = fake.recognize(image).lines
    assert [word.text for word in total.words] == ["Total", "1,234.56", "EUR"]
    assert [word.text for word in thanks.words] == ["Thank", "you"]
    # In proportion to the characters along the line's box (0..360 wide, 18 characters).
    assert [word.bbox for word in total.words] == [
        (0, 0, 100, 40),
        (120, 0, 280, 40),
        (300, 0, 360, 40),
    ]
    assert all(word.confidence == 1.0 for word in total.words)
