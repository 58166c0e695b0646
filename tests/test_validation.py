from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from ocrstream.core.errors import InvalidImage
from ocrstream.core.validation import (
    INLINE_MAX_BYTES,
    INLINE_MAX_PIXELS,
    ImageFacts,
    check_upload,
    identify_format,
    inspect_image,
    inspect_small_image,
    sniff_format,
)
from tests.images import FORMATS, bad_checksum_png, bomb_png, make_image, noisy_png, truncated

ALL = frozenset(FORMATS)


def _inspect(
    data: bytes, *, max_pixels: int = 40_000_000, allowed: frozenset[str] = ALL
) -> ImageFacts:
    return inspect_image(io.BytesIO(data), max_pixels=max_pixels, allowed_formats=allowed)


def _code(data: bytes, **kwargs: object) -> str:
    with pytest.raises(InvalidImage) as caught:
        _inspect(data, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message
    return caught.value.code


@pytest.mark.parametrize(
    ("fmt", "mode"), [(fmt, mode) for fmt, modes in FORMATS.items() for mode in modes]
)
def test_every_accepted_format_and_mode_validates(fmt: str, mode: str) -> None:
    facts = _inspect(make_image(fmt, (40, 30), mode))
    assert facts.format == fmt
    assert (facts.width, facts.height) == (40, 30)
    assert facts.mode


def test_format_comes_from_the_bytes_only() -> None:
    assert identify_format(make_image("GIF", mode="P")[:64]) == ("GIF", True)
    assert identify_format(b"%PDF-1.7\n") == ("PDF", True)
    assert identify_format(b" %PDF-1.7\n") is None
    assert identify_format(b"8BPS\x00\x01") == ("PSD", False)


def test_mpo_camera_jpegs_are_reported_as_jpeg() -> None:
    first, second = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    assert _inspect(out.getvalue()).format == "JPEG"


def test_check_upload_codes_and_limits_in_messages() -> None:
    with pytest.raises(InvalidImage) as caught:
        check_upload(file_index=20, size_bytes=5, max_files=20, max_file_size=10)
    assert caught.value.code == "too_many_files"
    assert "20" in caught.value.message
    with pytest.raises(InvalidImage) as caught:
        check_upload(file_index=0, size_bytes=0, max_files=20, max_file_size=10)
    assert caught.value.code == "empty_file"
    with pytest.raises(InvalidImage) as caught:
        check_upload(file_index=0, size_bytes=11, max_files=20, max_file_size=10)
    assert caught.value.code == "file_too_large"
    assert "11" in caught.value.message
    assert "10 bytes" in caught.value.message
    check_upload(file_index=19, size_bytes=10, max_files=20, max_file_size=10)


@pytest.mark.parametrize(
    "data",
    [b"hello, world", b"\x00" * 100, b"<html></html>", bytes(range(256))],
)
def test_non_images(data: bytes) -> None:
    assert _code(data) == "not_an_image"


def test_other_image_formats_are_unsupported() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="ICO")
    assert _code(out.getvalue()) == "unsupported_format"
    assert _code(b'<?xml version="1.0"?><svg xmlns="x"></svg>') == "unsupported_format"


def test_a_format_left_out_of_allowed_formats_is_unsupported() -> None:
    gif = make_image("GIF", mode="P")
    code = _code(gif, allowed=frozenset({"PNG"}))
    assert code == "unsupported_format"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_truncated_images_are_corrupt(fmt: str) -> None:
    data = make_image(fmt, (200, 200), FORMATS[fmt][0])
    assert _code(truncated(data, 0.5)) == "corrupt_image"


def test_bad_png_checksum_is_corrupt() -> None:
    assert _code(bad_checksum_png()) == "corrupt_image"


def _bad_text_chunk_after_the_pixels() -> bytes:
    """A PNG that decodes whole, with a tEXt chunk after its IDAT whose CRC is wrong."""
    data = make_image("PNG", (32, 32))
    end = data.rindex(b"IEND") - 4
    text = b"Comment\x00after the pixels"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + b"\x00\x00\x00\x00"
    return data[:end] + chunk + data[end:]


@pytest.mark.parametrize("data", [bad_checksum_png(), _bad_text_chunk_after_the_pixels()])
def test_every_png_chunk_checksum_is_checked_before_decoding(data: bytes) -> None:
    # Decoding alone skips CRCs (and never reads past the pixels); the chunk walk of
    # Pillow's verify runs first, so the message names the checksum, on both paths.
    for inspect in (_inspect, _inspect_small):
        with pytest.raises(InvalidImage) as caught:
            inspect(data)
        assert caught.value.code == "corrupt_image"
        assert "checksum" in caught.value.message


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    opened: list[object] = []
    real_open = Image.open

    def counting_open(*args: object, **kwargs: object) -> Image.Image:
        opened.append(args[0])
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


@pytest.mark.parametrize("fmt", sorted(INLINE_MAX_PIXELS))
def test_an_image_is_opened_once(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # One Image.open per image: header, budget, checksums and decode on the same open
    # image (a second open for verify() cost a third of a small image's validation).
    data = make_image(fmt, (40, 30), FORMATS[fmt][0])
    opened = _count_opens(monkeypatch)
    assert _inspect_small(data) == _inspect(data)
    assert len(opened) == 2, "one open inline, one in the thread's path"


def test_a_tiff_is_opened_once_for_all_its_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _tiff([(40, 30), (20, 10)])
    opened = _count_opens(monkeypatch)
    facts = _pages(data, max_pages=5)
    assert (facts.width, facts.height, facts.page_count) == (40, 30, 2)
    assert len(opened) == 1


def test_pixel_budget_is_checked_before_decoding() -> None:
    bomb = bomb_png(100_000, 100_000)  # 10 gigapixels in a few hundred bytes
    assert len(bomb) < 1000
    with pytest.raises(InvalidImage) as caught:
        _inspect(bomb)
    assert caught.value.code == "image_too_large"
    assert "40000000" in caught.value.message


def test_pixel_budget_is_configurable() -> None:
    assert _code(make_image("PNG", (100, 100)), max_pixels=9_999) == "image_too_large"
    assert _inspect(make_image("PNG", (100, 100)), max_pixels=10_000).width == 100


def _inspect_small(data: bytes, *, max_pixels: int = 40_000_000) -> ImageFacts | None:
    return inspect_small_image(
        io.BytesIO(data), size_bytes=len(data), max_pixels=max_pixels, allowed_formats=ALL
    )


@pytest.mark.parametrize(
    ("fmt", "mode"), [(fmt, mode) for fmt, modes in FORMATS.items() for mode in modes]
)
def test_a_small_image_gets_the_same_facts_inline(fmt: str, mode: str) -> None:
    data = make_image(fmt, (40, 30), mode)
    facts = _inspect_small(data)
    if fmt not in INLINE_MAX_PIXELS:
        assert facts is None, "a TIFF always goes to a thread"
    else:
        assert facts == _inspect(data)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, world",
        b"8BPS\x00\x01",
        bomb_png(100_000, 100_000),
        bad_checksum_png(),
        truncated(make_image("PNG", (40, 30)), 0.7),
    ],
    ids=["not-an-image", "unsupported", "bomb", "checksum", "truncated"],
)
def test_refusals_are_the_same_inline(data: bytes) -> None:
    with pytest.raises(InvalidImage) as inline:
        _inspect_small(data)
    assert inline.value.code == _code(data)


def test_images_past_the_line_go_to_a_thread() -> None:
    few_bytes_many_pixels = make_image("PNG", (512, 512))
    assert len(few_bytes_many_pixels) <= INLINE_MAX_BYTES
    assert _inspect_small(few_bytes_many_pixels) is None, "its header said too many pixels"
    big = noisy_png((100, 100))
    assert len(big) > INLINE_MAX_BYTES
    assert _inspect_small(big) is None
    assert _inspect(big).width == 100


def _tiff(sizes: list[tuple[int, int]]) -> bytes:
    out = io.BytesIO()
    frames = [Image.new("L", size, 255) for size in sizes]
    frames[0].save(out, format="TIFF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_every_tiff_frame_is_a_page() -> None:
    facts = _pages(_tiff([(40, 30), (20, 10), (50, 50)]), max_pages=5)
    assert (facts.format, facts.width, facts.height, facts.page_count) == ("TIFF", 40, 30, 3)


def test_a_single_image_has_one_page() -> None:
    assert _pages(make_image("GIF", (8, 8), "P"), max_pages=5).page_count == 1


def test_a_tiff_over_max_pages_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidImage) as caught:
        _pages(_tiff([(8, 8)] * 12), max_pages=10)
    assert caught.value.code == "too_many_pages"
    assert "MAX_PAGES" in caught.value.message


def test_a_tiff_of_a_thousand_frames_is_refused_at_max_pages() -> None:
    with pytest.raises(InvalidImage) as caught:
        _pages(_tiff([(2, 2)] * 1000), max_pages=100)
    assert caught.value.code == "too_many_pages"


def test_each_tiff_frame_is_held_to_the_pixel_budget_from_its_header() -> None:
    with pytest.raises(InvalidImage) as caught:
        _pages(_tiff([(10, 10), (10, 10), (400, 400)]), max_pages=5, max_pixels=10_000)
    assert caught.value.code == "image_too_large"
    assert "frame 3" in caught.value.message


def test_a_truncated_later_frame_is_corrupt() -> None:
    data = _tiff([(64, 64), (200, 200)])
    with pytest.raises(InvalidImage) as caught:
        _pages(data[: len(data) - 20_000] + data[-200:], max_pages=5)
    assert caught.value.code == "corrupt_image"


def test_pdfs_are_named_from_their_bytes_and_never_opened_here() -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    assert sniff_format(io.BytesIO(pdf), allowed_formats={"PDF"}) == "PDF"
    with pytest.raises(ValueError, match="worker process"):
        inspect_image(io.BytesIO(pdf), max_pixels=10**6, allowed_formats={"PDF"})
    with pytest.raises(InvalidImage) as caught:
        sniff_format(io.BytesIO(pdf), allowed_formats={"PNG"})
    assert caught.value.code == "unsupported_format"


def _pages(data: bytes, *, max_pages: int, max_pixels: int = 40_000_000) -> ImageFacts:
    return inspect_image(
        io.BytesIO(data),
        max_pixels=max_pixels,
        allowed_formats={"TIFF", "GIF", "PNG"},
        max_pages=max_pages,
    )
