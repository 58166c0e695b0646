"""One page of a file in the worker: a TIFF frame turned upright by its own EXIF
orientation (an upright page's pixels never copied), an image's stored resolution as the
page's dpi."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image, TiffImagePlugin

from ocrstream.engines.worker import PageRequest, recognize_page
from tests.images import scripted_png

if TYPE_CHECKING:
    import pytest


def _tiff_with_orientations(orientations: list[int]) -> bytes:
    out = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(out, new=True) as writer:
        for index, orientation in enumerate(orientations):
            tags = TiffImagePlugin.ImageFileDirectory_v2()
            tags[274] = orientation
            tags[270] = f"frame {index}"
            Image.new("RGB", (60, 20), "white").save(writer, format="TIFF", tiffinfo=tags)
            writer.newFrame()
    return out.getvalue()


def test_each_tiff_frame_is_turned_upright_by_its_own_orientation() -> None:
    data = _tiff_with_orientations([1, 6, 1])
    pages = [
        recognize_page("fake", data, PageRequest(format="TIFF", page_index=index))
        for index in range(3)
    ]
    assert [(page.width, page.height) for page in pages] == [(60, 20), (20, 60), (60, 20)]
    assert [page.text for page in pages] == ["frame 0", "frame 1", "frame 2"]
    assert [page.page_index for page in pages] == [0, 1, 2]


def test_an_upright_pages_pixels_are_not_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's exif_transpose returns a copy of an image it does not turn: for a scan at
    # 600 dpi, 100 MB more at the worker's peak for nothing.
    copies: list[tuple[int, int]] = []
    copy = Image.Image.copy

    def counted(image: Image.Image) -> Image.Image:
        copies.append(image.size)
        return copy(image)

    monkeypatch.setattr(Image.Image, "copy", counted)
    page = recognize_page("fake", scripted_png("upright"))
    assert (page.text, copies) == ("upright", [])
    turned = recognize_page("fake", _tiff_with_orientations([6]), PageRequest(format="TIFF"))
    assert (turned.width, turned.height) == (20, 60)


def test_an_images_stored_resolution_is_its_pages_dpi() -> None:
    out = io.BytesIO()
    with Image.open(io.BytesIO(scripted_png("dpi"))) as image:
        image.save(out, format="PNG", dpi=(300, 300), pnginfo=_text("dpi"))
    page = recognize_page("fake", out.getvalue())
    assert page.dpi == 300
    assert recognize_page("fake", scripted_png("none")).dpi is None


def _text(text: str) -> object:
    from PIL import PngImagePlugin

    from ocrstream.engines.fake import TEXT_KEY

    info = PngImagePlugin.PngInfo()
    info.add_text(TEXT_KEY, text)
    return info
