from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from ocrstream.core.errors import (
    MalformedRequest,
    RequestTooLarge,
    TooManyParts,
    UploadFailed,
    UploadTimeout,
)
from ocrstream.service.intake import (
    MAX_FIELD_SIZE,
    SPOOL_THRESHOLD,
    IntakeLimits,
    PartCollector,
    ReceivedFile,
    UploadSummary,
    receive_upload,
)
from tests.images import Upload, multipart_body

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator

BOUNDARY = b"ocrstream-test-boundary"


def _limits(**changes: float) -> IntakeLimits:
    values: dict[str, float] = {
        "max_file_size": 1000,
        "max_files": 3,
        "max_request_size": 100_000,
        "max_parts": 10,
        "upload_timeout": 5,
        "upload_deadline": 60,
    }
    values.update(changes)
    return IntakeLimits(**values)  # type: ignore[arg-type]


def _collect(
    body: bytes, *, piece: int = 7, **limits: float
) -> tuple[list[ReceivedFile], PartCollector]:
    collector = PartCollector(BOUNDARY, limits=_limits(**limits))
    files: list[ReceivedFile] = []
    try:
        for start in range(0, len(body), piece):
            files.extend(collector.feed(body[start : start + piece]))
        collector.finish()
    except BaseException:
        collector.close()
        raise
    return files, collector


@pytest.fixture(autouse=True)
def _close_spools(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every spool a test left open, so ResourceWarnings point at real leaks."""
    opened: list[PartCollector] = []
    original = PartCollector.__init__

    def tracking(self: PartCollector, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(PartCollector, "__init__", tracking)
    yield
    for collector in opened:
        collector.close()


def _read(file: ReceivedFile) -> bytes:
    assert file.spool is not None
    file.spool.seek(0)
    return file.spool.read()


def test_files_come_out_in_body_order_with_their_bytes() -> None:
    body = multipart_body(
        [
            Upload(b"first", "a.png", "image/png"),
            Upload(b"note", None, None, field="comment"),
            Upload(b"second\r\n--not-a-boundary", "dir/b.jpg", None),
        ]
    )
    files, collector = _collect(body)
    assert [(f.index, f.name, f.content_type, f.size_bytes) for f in files] == [
        (0, "a.png", "image/png", 5),
        (1, "b.jpg", None, 24),
    ]
    assert _read(files[0]) == b"first"
    assert _read(files[1]) == b"second\r\n--not-a-boundary"
    assert collector.total_file_bytes == 29


def test_a_file_over_the_limit_stops_being_stored_but_is_counted() -> None:
    files, _ = _collect(multipart_body([Upload(b"x" * 1500, "big.png")]), piece=100)
    assert files[0].size_bytes == 1500
    assert files[0].spool is None


def test_files_past_max_files_are_never_stored() -> None:
    files, _ = _collect(multipart_body([Upload(b"abc", f"{i}.png") for i in range(5)]))
    assert [f.spool is not None for f in files] == [True, True, True, False, False]
    assert [f.size_bytes for f in files] == [3] * 5


def test_large_files_spool_to_disk() -> None:
    size = SPOOL_THRESHOLD + 10
    files, _ = _collect(
        multipart_body([Upload(b"y" * size, "a.png")]), piece=65536, max_file_size=size
    )
    assert files[0].spool is not None
    assert files[0].spool._rolled  # type: ignore[attr-defined]
    files[0].close()
    files[0].close()  # idempotent
    assert files[0].spool is None


def test_empty_filename_is_still_a_file() -> None:
    files, _ = _collect(multipart_body([Upload(b"", "")]))
    assert files[0].name == "file-0"
    assert files[0].size_bytes == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"--other\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--other--\r\n",
            MalformedRequest,
        ),
        (
            b"--ocrstream-test-boundary\r\nContent-Type: text/plain\r\n\r\nx\r\n--ocrstream-test-boundary--\r\n",
            MalformedRequest,
        ),
        (
            b"--ocrstream-test-boundary\r\nContent-Disposition: form-data; name=a; filename=b\r\n\r\nunterminated",
            MalformedRequest,
        ),
        (b"", MalformedRequest),
        (multipart_body([Upload(b"v" * (MAX_FIELD_SIZE + 1), None, None)]), MalformedRequest),
        (
            b"--ocrstream-test-boundary\r\nContent-Disposition: form-data; name=a\r\nX-Long: "
            + b"h" * 17000
            + b"\r\n\r\nx\r\n--ocrstream-test-boundary--\r\n",
            MalformedRequest,
        ),
        (multipart_body([Upload(b"", None, None)] * 11), TooManyParts),
    ],
    ids=[
        "wrong-boundary",
        "no-disposition",
        "unterminated",
        "empty",
        "huge-field",
        "huge-header",
        "parts",
    ],
)
def test_bad_bodies_raise_the_right_error(body: bytes, error: type[UploadFailed]) -> None:
    with pytest.raises(error) as caught:
        _collect(body, piece=1000)
    assert caught.value.message


async def _chunks_from(channel: trio.MemoryReceiveChannel[bytes]) -> AsyncGenerator[bytes]:
    async for chunk in channel:
        yield chunk


async def _run(
    chunks: AsyncIterator[bytes], *, content_length: int | None = None, **limits: float
) -> UploadSummary:
    async def ignore(file: ReceivedFile) -> None:
        file.close()

    return await receive_upload(
        chunks,
        boundary=BOUNDARY,
        content_length=content_length,
        limits=_limits(**limits),
        on_file=ignore,
    )


async def test_receive_upload_summarises_the_body() -> None:
    body = multipart_body([Upload(b"abc", "a.png"), Upload(b"de", "b.png")])

    async def chunks() -> AsyncGenerator[bytes]:
        for start in range(0, len(body), 10):
            yield body[start : start + 10]

    assert await _run(chunks(), content_length=len(body)) == UploadSummary(2, 5)


async def test_a_short_body_is_malformed() -> None:
    body = multipart_body([Upload(b"abc", "a.png")])

    async def chunks() -> AsyncGenerator[bytes]:
        yield body

    with pytest.raises(MalformedRequest, match="declared"):
        await _run(chunks(), content_length=len(body) + 10)


async def test_a_body_over_max_request_size_fails_as_it_arrives() -> None:
    async def endless() -> AsyncGenerator[bytes]:
        yield b"--ocrstream-test-boundary\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\n"
        while True:
            yield b"z" * 1000

    async with aclosing(endless()) as chunks:
        with pytest.raises(RequestTooLarge, match="MAX_REQUEST_SIZE"):
            await _run(chunks, max_request_size=50_000, max_file_size=10**9)


async def test_silence_ends_the_upload(autojump_clock: trio.testing.MockClock) -> None:
    send, receive = trio.open_memory_channel[bytes](1)
    async with send:
        await send.send(b"--ocrstream-test-boundary\r\n")
        start = trio.current_time()
        async with aclosing(_chunks_from(receive)) as chunks:
            with pytest.raises(UploadTimeout, match="UPLOAD_TIMEOUT"):
                await _run(chunks, upload_timeout=5)
        assert trio.current_time() - start == pytest.approx(5)


async def test_each_chunk_restarts_the_silence_timer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def pauses() -> AsyncGenerator[bytes]:
        yield b"--ocrstream-test-boundary\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\n"
        for _ in range(3):
            await trio.sleep(4)  # under UPLOAD_TIMEOUT each time, 12 s in all
            yield b"."
        await trio.sleep_forever()

    start = trio.current_time()
    async with aclosing(pauses()) as chunks:
        with pytest.raises(UploadTimeout, match="UPLOAD_TIMEOUT"):
            await _run(chunks, upload_timeout=5, upload_deadline=30, max_file_size=10**6)
    assert trio.current_time() - start == pytest.approx(12 + 5)


async def test_a_trickle_is_ended_by_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    async def trickle() -> AsyncGenerator[bytes]:
        yield b"--ocrstream-test-boundary\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\n"
        while True:
            await trio.sleep(1)
            yield b"."

    start = trio.current_time()
    async with aclosing(trickle()) as chunks:
        with pytest.raises(UploadTimeout, match="UPLOAD_DEADLINE"):
            await _run(chunks, upload_timeout=5, upload_deadline=30, max_file_size=10**6)
    assert trio.current_time() - start == pytest.approx(30, abs=1)
