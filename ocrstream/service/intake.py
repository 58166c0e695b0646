"""Streaming multipart intake (RFC 7578): body chunks in, spooled file parts out.

The body is parsed as it arrives; nothing holds a whole body or a whole file in
memory beyond :data:`SPOOL_THRESHOLD`. Each limit is checked the moment it can be:
a file over MAX_FILE_SIZE stops being stored at once (its remaining bytes are only
counted), a file past MAX_FILES is never stored, and the body's own size, part count,
header and field sizes, idle time and total time are all bounded.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

import trio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ocrstream.core.errors import MalformedRequest, RequestTooLarge, TooManyParts, UploadTimeout
from ocrstream.core.names import sanitize_file_name

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "MAX_FIELD_SIZE",
    "MAX_PART_HEADER_SIZE",
    "SPOOL_THRESHOLD",
    "IntakeLimits",
    "PartCollector",
    "ReceivedFile",
    "UploadSummary",
    "receive_upload",
]

#: Bytes of a file kept in memory before its spool moves to a temporary file on disk.
SPOOL_THRESHOLD = 256 * 1024
#: Bytes of one part's header block (SPEC: a part header over 16 KiB is malformed).
MAX_PART_HEADER_SIZE = 16 * 1024
#: Bytes of one plain (non-file) field (SPEC: over 64 KiB is malformed).
MAX_FIELD_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeLimits:
    """The intake's limits, each from Settings.

    Attributes:
        max_file_size: bytes stored per file (MAX_FILE_SIZE).
        max_files: files stored per request (MAX_FILES); later ones are only counted.
        max_request_size: bytes of the whole body (MAX_REQUEST_SIZE).
        max_parts: parts of any kind (MAX_PARTS).
        upload_timeout: seconds without body bytes (UPLOAD_TIMEOUT).
        upload_deadline: seconds for the whole body (UPLOAD_DEADLINE).
    """

    max_file_size: int
    max_files: int
    max_request_size: int
    max_parts: int
    upload_timeout: float
    upload_deadline: float


@dataclass(slots=True, kw_only=True)
class ReceivedFile:
    """One file part, complete.

    Attributes:
        index: 0-based position among the body's file parts.
        name: the sanitised file name (display data only).
        content_type: the part's declared Content-Type, if any.
        size_bytes: every byte of the part, stored or not.
        spool: the stored bytes, or None when the part was over a limit and discarded.
    """

    index: int
    name: str
    content_type: str | None
    size_bytes: int = 0
    spool: IO[bytes] | None = None

    def close(self) -> None:
        """Free the spool (idempotent; removes any temporary file)."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """The body once complete: file count and the files' total bytes."""

    file_count: int
    total_bytes: int


@dataclass(slots=True)
class _Part:
    header_bytes: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    field_name: bytes = b""
    field_value: bytes = b""
    file: ReceivedFile | None = None
    is_file: bool = False
    stored: bool = False


class PartCollector:
    """The synchronous heart of the intake: feeds python-multipart, applies the limits.

    Args:
        boundary: the boundary from the request's Content-Type.
        limits: the request's limits (kept as :attr:`limits`).

    Raises (from :meth:`feed` and :meth:`finish`):
        MalformedRequest, TooManyParts.
    """

    def __init__(self, boundary: bytes, *, limits: IntakeLimits) -> None:
        self.limits = limits
        self._parts = 0
        self._files = 0
        self._ended = False
        self._current = _Part()
        self._header_field = b""
        self._header_value = b""
        self._completed: list[ReceivedFile] = []
        self.open_files: list[ReceivedFile] = []
        self.total_file_bytes = 0
        # The parser holds this collector's bound methods, and this collector holds the
        # parser: a reference cycle, broken once the body is read (finish) or abandoned
        # (close), so the pair goes with its last reference, not with a cyclic GC pass.
        self._parser: MultipartParser | None
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
                max_header_size=MAX_PART_HEADER_SIZE,
                max_header_count=64,
            )
        except Exception as error:  # python-multipart raises plain errors for bad boundaries
            raise MalformedRequest(f"unusable multipart boundary: {error}") from None

    @property
    def file_count(self) -> int:
        """File parts seen so far."""
        return self._files

    def feed(self, chunk: bytes) -> list[ReceivedFile]:
        """Parse ``chunk``; return the file parts it completed, in body order."""
        if self._ended or self._parser is None:
            # RFC 7578 allows an epilogue after the close delimiter; it is ignored.
            return []
        try:
            self._parser.write(chunk)
        except FormParserError as error:
            raise MalformedRequest(f"bad multipart framing: {error}") from None
        completed, self._completed = self._completed, []
        return completed

    def close(self) -> None:
        """Close every spool this collector opened (idempotent; for failure paths)."""
        self._detach()
        for file in self.open_files:
            file.close()

    def _detach(self) -> None:
        """Stop parsing: drop the parser (idempotent; later chunks are ignored)."""
        self._parser = None

    def finish(self) -> None:
        """The body ended: it must have ended with the closing boundary.

        Raises:
            MalformedRequest: the body stopped before its closing boundary.
        """
        if not self._ended:
            if self._parts == 0:
                raise MalformedRequest(
                    "the body has no multipart part with the boundary its Content-Type names"
                )
            raise MalformedRequest("the body ended before its closing multipart boundary")
        self._detach()

    # python-multipart callbacks -------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.limits.max_parts:
            raise TooManyParts(f"the body has more than {self.limits.max_parts} parts (MAX_PARTS)")
        self._current = _Part()

    def _count_header(self, data: bytes) -> None:
        self._current.header_bytes += len(data)
        if self._current.header_bytes > MAX_PART_HEADER_SIZE:
            raise MalformedRequest(
                f"part {self._parts} has headers over {MAX_PART_HEADER_SIZE} bytes"
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(data[start:end])
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(data[start:end])
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._current.headers[name] = _decode_header(self._header_value).strip()
        self._header_field = self._header_value = b""

    def _on_headers_finished(self) -> None:
        part = self._current
        disposition = part.headers.get("content-disposition")
        if disposition is None:
            raise MalformedRequest(f"part {self._parts} has no Content-Disposition header")
        kind, options = parse_options_header(disposition.encode("utf-8"))
        if kind.lower() != b"form-data":
            raise MalformedRequest(f"part {self._parts} is not form-data")
        part.field_name = options.get(b"name", b"")
        if b"filename" not in options:
            return
        index = self._files
        self._files += 1
        raw_name = _decode_header(options[b"filename"])
        part.is_file = True
        part.file = ReceivedFile(
            index=index,
            name=sanitize_file_name(raw_name, file_index=index),
            content_type=part.headers.get("content-type"),
        )
        if index < self.limits.max_files:
            # Owned by the ReceivedFile from here on; closed by ReceivedFile.close().
            part.file.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_THRESHOLD)  # noqa: SIM115
            part.stored = True
            self.open_files.append(part.file)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current
        size = end - start
        if part.file is None:
            if len(part.field_value) + size > MAX_FIELD_SIZE:
                raise MalformedRequest(
                    f"field {part.field_name.decode('latin-1')!r} is over {MAX_FIELD_SIZE} bytes"
                )
            part.field_value += data[start:end]
            return
        received = part.file
        received.size_bytes += size
        self.total_file_bytes += size
        if not part.stored:
            return
        if received.size_bytes > self.limits.max_file_size:
            # Past the limit: stop storing at once; the rest is only counted.
            received.close()
            part.stored = False
            return
        assert received.spool is not None
        received.spool.write(data[start:end])

    def _on_part_end(self) -> None:
        if self._current.file is not None:
            self._completed.append(self._current.file)

    def _on_end(self) -> None:
        self._ended = True


def _decode_header(raw: bytes) -> str:
    # Browsers send UTF-8 file names unescaped (RFC 7578 §4.2); fall back to Latin-1.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def receive_upload(
    chunks: AsyncIterator[bytes],
    *,
    boundary: bytes,
    content_length: int | None,
    limits: IntakeLimits,
    on_file: Callable[[ReceivedFile], Awaitable[None]],
    collector: PartCollector | None = None,
) -> UploadSummary:
    """Read the whole body, handing each complete file part to ``on_file`` at once.

    Args:
        chunks: the request body as it arrives.
        boundary: the multipart boundary.
        content_length: the declared length, if any; a shorter body is malformed.
        limits: the request's limits.
        on_file: awaited with each file part as soon as it is complete; it owns the
            part from then on (and must close it).
        collector: the parser state, when the caller wants to close its open spools
            on failure (see :attr:`PartCollector.open_files`).

    Returns:
        The number of file parts and their total bytes.

    Raises:
        MalformedRequest, RequestTooLarge, TooManyParts, UploadTimeout.
    """
    parts = collector if collector is not None else PartCollector(boundary, limits=limits)
    received = 0
    # One scope bounds both waits: its deadline is the sooner of the whole body's
    # (UPLOAD_DEADLINE from now) and the next chunk's (UPLOAD_TIMEOUT after the last was
    # taken in; parsing it and handing on its files takes no real time, as on_file waits
    # only while the sequencer's channel is full). One scope, not a new one per chunk.
    now = trio.current_time()
    end = now + limits.upload_deadline
    with trio.CancelScope(deadline=min(end, now + limits.upload_timeout)) as wait:
        while True:
            chunk = await anext(chunks, None)
            if chunk is None:
                break
            received += len(chunk)
            if received > limits.max_request_size:
                raise RequestTooLarge(
                    f"the body passed {limits.max_request_size} bytes (MAX_REQUEST_SIZE)"
                )
            for file in parts.feed(chunk):
                await on_file(file)
            wait.deadline = min(end, trio.current_time() + limits.upload_timeout)
    if wait.cancelled_caught:
        if trio.current_time() >= end:
            raise UploadTimeout(
                f"the body was not complete within {limits.upload_deadline:g} seconds "
                "(UPLOAD_DEADLINE)"
            )
        raise UploadTimeout(f"no body bytes for {limits.upload_timeout:g} seconds (UPLOAD_TIMEOUT)")
    if content_length is not None and received < content_length:
        raise MalformedRequest(
            f"the body ended after {received} of its {content_length} declared bytes"
        )
    parts.finish()
    return UploadSummary(file_count=parts.file_count, total_bytes=parts.total_file_bytes)
