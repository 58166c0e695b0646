"""Validation: a file's bytes become image facts, or a validation error with its code.

Pure and synchronous (callers run :func:`inspect_image` in a worker thread). The order
of checks is the SPEC's: count, emptiness and size first (no bytes need reading),
then the format judged from the bytes alone (never from the name or declared type),
then the pixel budget read from the header *before* any decoding, then a full decode
that catches truncation and corruption.

Decompression bombs: Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, see Pillow's
"Image file formats / Decompression bombs" docs) warns at one limit and raises at
twice it, process-wide. The service needs one configurable limit that refuses the
image unopened, so it checks ``width x height`` itself against MAX_IMAGE_PIXELS right
after the header is parsed, and turns Pillow's global guard off to avoid a second,
different threshold (and a warning that would race between threads).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ocrstream.core.errors import InvalidImage

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

__all__ = [
    "INLINE_MAX_BYTES",
    "INLINE_MAX_PIXELS",
    "SNIFF_BYTES",
    "ImageFacts",
    "check_upload",
    "identify_format",
    "inspect_image",
    "inspect_small_image",
    "sniff_format",
]

Image.MAX_IMAGE_PIXELS = None  # see the module docstring: the service enforces its own

#: Bytes read to identify a format.
SNIFF_BYTES = 64

# Where validating on the caller's (the event loop's) thread beats a worker thread. A
# hop to a thread and back cost 110-150 us of the loop's time here, measured beside
# inspect_image itself on a 2-core machine (Pillow 13): 45-70 us for a BMP, PNG or GIF
# of up to 32x32, 100 us for a JPEG, 60-90 us for a WEBP; growing with the pixels to
# 110-120 us for a 96x96 PNG or GIF, 130 us for a 64x64 JPEG, 140 us for a 48x48 WEBP;
# a TIFF costs 310 us at any size (its header alone), so it always goes to a thread.
# Below these lines an image blocks the loop for no longer than the hop would, and
# skips the hop's thread wake-ups (futex calls and GIL hand-offs) altogether.
#: Files up to this many bytes may be validated inline (they are in memory, and
#: reading their header and checking their structure costs in proportion to it)…
INLINE_MAX_BYTES = 16 * 1024
#: …when their format is one of these and their header says at most this many pixels.
INLINE_MAX_PIXELS = {
    "BMP": 128 * 128,
    "GIF": 96 * 96,
    "PNG": 96 * 96,
    "JPEG": 64 * 64,
    "WEBP": 48 * 48,
}

# Signatures of the formats the service can accept, as Pillow names them.
_ACCEPTABLE_SIGNATURES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("JPEG", re.compile(rb"\A\xff\xd8\xff")),
    ("PNG", re.compile(rb"\A\x89PNG\r\n\x1a\n")),
    ("GIF", re.compile(rb"\AGIF8[79]a")),
    ("WEBP", re.compile(rb"\ARIFF....WEBP", re.DOTALL)),
    ("TIFF", re.compile(rb"\A(?:II\*\x00|MM\x00\*|II\+\x00|MM\x00\+)")),
    ("BMP", re.compile(rb"\ABM")),
    # Judged here, opened only in a worker process (ocrstream.documents.pdf).
    ("PDF", re.compile(rb"\A%PDF-")),
)
# Other image formats, recognised only to say "unsupported" rather than "not an image".
_OTHER_SIGNATURES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("ICO", re.compile(rb"\A\x00\x00[\x01\x02]\x00")),
    ("PSD", re.compile(rb"\A8BPS")),
    ("JPEG2000", re.compile(rb"\A(?:\x00\x00\x00\x0cjP  \r\n\x87\n|\xff\x4f\xff\x51)")),
    ("PPM", re.compile(rb"\AP[1-7][ \t\r\n]")),
    ("HEIF", re.compile(rb"\A....ftyp(?:hei[cmsx]|hev[cmsx]|mif1|msf1|avif|avis)", re.DOTALL)),
    ("JPEGXL", re.compile(rb"\A(?:\xff\x0a|\x00\x00\x00\x0cJXL \r\n\x87\n)")),
    ("QOI", re.compile(rb"\Aqoif")),
    ("DDS", re.compile(rb"\ADDS ")),
    ("ICNS", re.compile(rb"\Aicns")),
    ("SVG", re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?<svg[\s>]", re.IGNORECASE)),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageFacts:
    """What validation learnt of a good image; ``format`` as SPEC.md names it; ``width``,
    ``height`` and ``mode`` are the first page's; ``page_count`` is a TIFF's frames, 1 for
    every other image."""

    format: str
    width: int
    height: int
    mode: str
    page_count: int = 1


def check_upload(*, file_index: int, size_bytes: int, max_files: int, max_file_size: int) -> None:
    """The checks that need no image bytes: count, emptiness, size.

    Args:
        file_index: the file's 0-based index in the body.
        size_bytes: the part's full size (counted even past the limit).
        max_files: MAX_FILES.
        max_file_size: MAX_FILE_SIZE in bytes.

    Raises:
        InvalidImage: ``too_many_files``, ``empty_file`` or ``file_too_large``.
    """
    if file_index >= max_files:
        raise InvalidImage(
            "too_many_files",
            f"file {file_index + 1} is over the limit of {max_files} files per request (MAX_FILES)",
        )
    if size_bytes == 0:
        raise InvalidImage("empty_file", "the file is empty (0 bytes)")
    if size_bytes > max_file_size:
        raise InvalidImage(
            "file_too_large",
            f"the file is {size_bytes} bytes; the limit is {max_file_size} bytes (MAX_FILE_SIZE)",
        )


def identify_format(head: bytes) -> tuple[str, bool] | None:
    """Name the image format of a file from its first bytes.

    Args:
        head: at least the first :data:`SNIFF_BYTES` bytes (fewer if the file is shorter).

    Returns:
        ``(format, acceptable)``: acceptable is True for the formats the service can
        be configured to accept; None when the bytes are no image format known here.
    """
    for name, signature in _ACCEPTABLE_SIGNATURES:
        if signature.match(head):
            return name, True
    for name, signature in _OTHER_SIGNATURES:
        if signature.match(head):
            return name, False
    return None


def _canonical(pillow_format: str | None, sniffed: str) -> str:
    # Pillow calls multi-picture camera JPEGs "MPO"; they are JPEG to a client.
    if pillow_format in {None, "MPO"}:
        return sniffed
    return pillow_format


def sniff_format(source: IO[bytes], *, allowed_formats: Collection[str]) -> str:
    """The format of ``source`` judged from its first bytes.

    Raises:
        InvalidImage: ``not_an_image`` or ``unsupported_format``.
    """
    return _sniff(source, allowed_formats)


def inspect_image(
    source: IO[bytes],
    *,
    max_pixels: int,
    allowed_formats: Collection[str],
    max_pages: int = 1,
) -> ImageFacts:
    """Identify, bound and fully decode one image (a TIFF: every frame).

    Args:
        source: a seekable binary file holding the whole image.
        max_pixels: MAX_IMAGE_PIXELS; a larger width x height (of any TIFF frame) is
            refused undecoded.
        allowed_formats: the formats accepted (ALLOWED_FORMATS).
        max_pages: MAX_PAGES, the frames a TIFF may have.

    Returns:
        The image's format, its first page's width, height and mode, its page count.

    Raises:
        InvalidImage: ``not_an_image``, ``unsupported_format``, ``image_too_large``,
            ``too_many_pages`` or ``corrupt_image``.
        ValueError: a PDF (PDFs are opened in worker processes only).
    """
    sniffed = _sniff(source, allowed_formats)
    if sniffed == "PDF":
        raise ValueError("a PDF is inspected in a worker process (ocrstream.documents.pdf)")
    with _decoding_errors(sniffed):
        if sniffed == "TIFF":
            return _inspect_frames(source, max_pixels=max_pixels, max_pages=max_pages)
        decoded = _check_and_decode(source, sniffed, max_pixels=max_pixels)
    assert decoded is not None, "no inline budget, so always decoded"
    return decoded


def _inspect_frames(source: IO[bytes], *, max_pixels: int, max_pages: int) -> ImageFacts:
    """Every frame of a TIFF is a page: check the first one's pixels from its header,
    count them (refusing more than ``max_pages`` before decoding any), check each one's
    pixels from its header, then decode each."""
    source.seek(0)
    with Image.open(source, formats=["TIFF"]) as image:
        facts = _facts(image, "TIFF")
        # The pixel budget is judged from the header alone, before any decoding.
        _check_pixels(facts.width, facts.height, max_pixels=max_pixels)
        count = 1
        while True:
            try:
                image.seek(count)
            except EOFError:
                break
            count += 1
            if count > max_pages:
                raise InvalidImage(
                    "too_many_pages",
                    f"the TIFF has more than {max_pages} frames; the limit is {max_pages} "
                    "pages per file (MAX_PAGES)",
                )
            width, height = image.size
            _check_pixels(width, height, max_pixels=max_pixels, what=f"frame {count}")
        for frame in range(count):
            image.seek(frame)
            image.load()
    return replace(facts, page_count=count)


def _check_pixels(width: int, height: int, *, max_pixels: int, what: str = "the image") -> None:
    if width * height > max_pixels:
        raise InvalidImage(
            "image_too_large",
            f"{what} is {width}x{height} = {width * height} pixels; the limit is "
            f"{max_pixels} pixels (MAX_IMAGE_PIXELS)",
        )
    if width <= 0 or height <= 0:
        raise InvalidImage("corrupt_image", f"{what} has no pixels")


def inspect_small_image(
    source: IO[bytes], *, size_bytes: int, max_pixels: int, allowed_formats: Collection[str]
) -> ImageFacts | None:
    """:func:`inspect_image` for an image cheap enough to validate on the caller's
    thread (see :data:`INLINE_MAX_BYTES`); None for any other, which should then go
    to :func:`inspect_image` in a worker thread.

    Refusals that need no decoding (not an image, a format not allowed, a pixel budget
    exceeded, an unreadable header) are given here whatever the pixel count; an image
    small in bytes but large in pixels is handed back (None) once its header is read.

    Args:
        source: a seekable binary file holding the whole image.
        size_bytes: its size.
        max_pixels: MAX_IMAGE_PIXELS.
        allowed_formats: the formats accepted (ALLOWED_FORMATS).

    Raises:
        InvalidImage: as :func:`inspect_image`.
    """
    if size_bytes > INLINE_MAX_BYTES:
        return None
    sniffed = _sniff(source, allowed_formats)
    budget = INLINE_MAX_PIXELS.get(sniffed)  # never for a TIFF or a PDF
    if budget is None:
        return None
    with _decoding_errors(sniffed):
        return _check_and_decode(source, sniffed, max_pixels=max_pixels, inline_budget=budget)


def _sniff(source: IO[bytes], allowed_formats: Collection[str]) -> str:
    """The format named by the first bytes; refuses what is no image or not allowed."""
    source.seek(0)
    identified = identify_format(source.read(SNIFF_BYTES))
    if identified is None:
        raise InvalidImage("not_an_image", "the bytes are not an image in any format known here")
    sniffed, acceptable = identified
    allowed = sorted(allowed_formats)
    if not acceptable or sniffed not in allowed_formats:
        raise InvalidImage(
            "unsupported_format",
            f"the file is {sniffed}; accepted formats are {', '.join(allowed)} (ALLOWED_FORMATS)",
        )
    return sniffed


def _check_and_decode(
    source: IO[bytes], sniffed: str, *, max_pixels: int, inline_budget: int | None = None
) -> ImageFacts | None:
    """Open the image once: check its pixel budget from the header, then its structure,
    then decode every pixel of its first frame; None (undecoded) when its header says
    more pixels than ``inline_budget``."""
    source.seek(0)
    with Image.open(source, formats=[sniffed]) as image:
        facts = _facts(image, sniffed)
        # The pixel budget is judged from the header alone, before any decoding.
        _check_pixels(facts.width, facts.height, max_pixels=max_pixels)
        if inline_budget is not None and facts.width * facts.height > inline_budget:
            return None
        if isinstance(image, PngImagePlugin.PngImageFile):
            _verify_png_chunks(source, image)
        # load() decodes every pixel of the first frame, catching truncation.
        image.load()
    return facts


def _verify_png_chunks(source: IO[bytes], image: PngImagePlugin.PngImageFile) -> None:
    """The checks of Pillow's ``verify()`` (every chunk's CRC from the first IDAT to
    IEND, which decoding alone skips), on the open image, before it is decoded.

    ``verify()`` itself leaves the image unusable (Pillow's rule: reopen it to load),
    and in Pillow 11 to 13 PNG is the only format whose ``verify()`` checks anything
    (for the others it is a no-op); so its own chunk walk
    (``PngStream.verify``, what ``PngImageFile.verify`` calls) runs on a stream of its
    own, from where ``PngImageFile.verify`` starts it, and the file is put back."""
    position = source.tell()
    source.seek(image.tile[0][2] - 8)  # the first IDAT's length field (its offset - 8)
    PngImagePlugin.PngStream(source).verify()
    source.seek(position)


def _facts(image: Image.Image, sniffed: str) -> ImageFacts:
    width, height = image.size
    return ImageFacts(
        format=_canonical(image.format, sniffed), width=width, height=height, mode=image.mode
    )


@contextmanager
def _decoding_errors(sniffed: str) -> Iterator[None]:
    """Pillow's errors as ``corrupt_image``."""
    try:
        yield
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage(
            "corrupt_image", f"the file starts like {sniffed} but its header cannot be read"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as error:
        # Pillow reports broken data with these, e.g. "image file is truncated",
        # "broken PNG file", "Truncated File Read"; their text helps the client.
        detail = str(error) or type(error).__name__
        raise InvalidImage(
            "corrupt_image", f"the {sniffed} data cannot be decoded: {detail}"
        ) from None
