"""Real image bytes made with Pillow, and multipart bodies, for the tests."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw, PngImagePlugin, TiffImagePlugin

from ocrstream.engines.fake import TEXT_KEY

__all__ = [
    "FORMATS",
    "Upload",
    "bad_checksum_png",
    "bomb_png",
    "make_image",
    "multipart_body",
    "noisy_png",
    "scripted_png",
    "scripted_tiff",
    "truncated",
]

#: Pillow save names of the formats the service accepts by default, with a mode each can hold.
FORMATS = {
    "JPEG": ("RGB", "L"),
    "PNG": ("RGB", "RGBA", "L", "P", "1"),
    "WEBP": ("RGB", "RGBA"),
    "TIFF": ("RGB", "L", "CMYK"),
    "BMP": ("RGB", "L", "P"),
    "GIF": ("P", "L"),
}


def make_image(fmt: str = "PNG", size: tuple[int, int] = (64, 32), mode: str = "RGB") -> bytes:
    """A small real image with some drawing on it, encoded as ``fmt``."""
    image = Image.new(mode, size, color=255 if mode in {"L", "1", "P"} else None)
    if mode not in {"1"}:
        draw = ImageDraw.Draw(image)
        draw.rectangle((2, 2, max(3, size[0] // 2), max(3, size[1] // 2)), outline=0)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def noisy_png(size: tuple[int, int], seed: int = 0) -> bytes:
    """An incompressible PNG (slow to decode, large on disk)."""
    out = io.BytesIO()
    _noise(size, seed).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    """The first ``keep`` of ``data`` (header intact, pixels cut)."""
    return data[: max(64, int(len(data) * keep))]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    # A few rows of real deflate data; the declared size is what matters.
    pixels = zlib.compress(b"\x00" + b"\x00" * ((width + 7) // 8) * 2)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def bad_checksum_png() -> bytes:
    """A PNG whose IDAT chunk has a wrong CRC."""
    data = bytearray(make_image("PNG", (32, 32)))
    index = data.index(b"IDAT")
    length = struct.unpack(">I", data[index - 4 : index])[0]
    crc_at = index + 4 + length
    data[crc_at : crc_at + 4] = bytes(b ^ 0xFF for b in data[crc_at : crc_at + 4])
    return bytes(data)


@dataclass(frozen=True, slots=True)
class Upload:
    """One part of a multipart body."""

    data: bytes
    filename: str | None = "image.png"
    content_type: str | None = "application/octet-stream"
    field: str = "files"


def multipart_body(parts: list[Upload], boundary: str = "ocrstream-test-boundary") -> bytes:
    """An RFC 7578 body for ``parts``; parts without a filename are plain fields."""
    out = bytearray()
    for part in parts:
        out += f"--{boundary}\r\n".encode()
        disposition = f'form-data; name="{part.field}"'
        if part.filename is not None:
            disposition += f'; filename="{part.filename}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if part.content_type is not None:
            out += f"Content-Type: {part.content_type}\r\n".encode()
        out += b"\r\n" + part.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def scripted_png(
    text: str, size: tuple[int, int] = (60, 20), *, noise_seed: int | None = None
) -> bytes:
    """A PNG the fake engine reads as ``text``: white, or noise (incompressible, so as
    large as its pixels) from ``noise_seed``."""
    info = PngImagePlugin.PngInfo()
    info.add_text(TEXT_KEY, text)
    image = Image.new("RGB", size, "white") if noise_seed is None else _noise(size, noise_seed)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def scripted_tiff(texts: list[str], size: tuple[int, int] = (60, 20)) -> bytes:
    """A multi-page TIFF, one white frame per text; the fake engine reads each frame's
    text from its ImageDescription tag (each frame has its own)."""
    out = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(out, new=True) as writer:
        for text in texts:
            Image.new("RGB", size, "white").save(
                writer, format="TIFF", description=text, compression="tiff_deflate"
            )
            writer.newFrame()
    return out.getvalue()
