"""The kept files of recognised uploads: append-only segments on disk, deleted once empty."""

from __future__ import annotations

import errno
import os
import threading
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from ocrstream.service.memory.originals import INLINE_WRITE, OriginalFiles
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.trio


@pytest.fixture
async def originals(tmp_path: Path) -> AsyncIterator[OriginalFiles]:
    files = OriginalFiles(tmp_path, segment_size=10_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(files.run)
        yield files
        nursery.cancel_scope.cancel()
    files.close()
    assert not files.directory.exists()


async def test_small_and_large_files_read_back_byte_exact(originals: OriginalFiles) -> None:
    small = os.urandom(2_000)
    large = os.urandom(INLINE_WRITE + 1)  # written from a worker thread
    assert await originals.save("a", 0, small)
    assert await originals.save("a", 1, large)
    assert await originals.save("b", 0, small[::-1])
    assert await originals.load("a", 0) == small
    assert await originals.load("a", 1) == large
    assert await originals.load("b", 0) == small[::-1]
    assert await originals.load("a", 2) is None
    assert await originals.load("c", 0) is None
    assert originals.count() == 2
    assert (originals.directory.stat().st_mode & 0o777) == 0o700


async def test_emptied_segments_are_deleted_and_the_rest_stay(originals: OriginalFiles) -> None:
    data = {f"job{n}": os.urandom(3_000) for n in range(12)}  # three jobs a segment
    for job_id, payload in data.items():
        assert await originals.save(job_id, 0, payload)
    assert originals.segments() == 4
    for job_id in list(data)[:8]:  # the first two segments' jobs and two of the third's
        originals.drop(job_id)
        del data[job_id]
    await wait_until(lambda: originals.segments() == 2)
    for job_id, payload in data.items():
        assert await originals.load(job_id, 0) == payload
    for job_id in list(data):
        originals.drop(job_id)
    await wait_until(lambda: originals.segments() == 1)  # the one being written stays
    assert originals.count() == 0


async def test_a_segment_being_read_is_deleted_only_after_the_read(
    originals: OriginalFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(6_000)
    assert await originals.save("read", 0, payload)
    assert await originals.save("next", 0, os.urandom(6_000))  # seals the first segment
    started, release = threading.Event(), threading.Event()
    real_pread = os.pread

    def slow_pread(fd: int, size: int, offset: int) -> bytes:
        started.set()
        release.wait(10)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", slow_pread)
    loaded: list[bytes | None] = []

    async def load() -> None:
        loaded.append(await originals.load("read", 0))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(load)
        await trio.to_thread.run_sync(started.wait, 10)
        originals.drop("read")  # its job expires during an export
        await trio.sleep(0.1)  # time enough to delete it, were it deleted
        assert originals.segments() == 2
        release.set()
    assert loaded == [payload]
    await wait_until(lambda: originals.segments() == 1)


async def test_a_failed_write_is_not_kept_and_leaves_the_store_working(
    originals: OriginalFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    assert not await originals.save("full", 0, b"x" * 9_000)
    assert not await originals.save("full", 1, b"y" * (INLINE_WRITE + 1))
    assert await originals.load("full", 0) is None
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert await originals.save("ok", 0, b"z" * 9_000)  # seals the failed ones' segment
    await wait_until(lambda: originals.segments() == 1)
    assert await originals.load("ok", 0) == b"z" * 9_000


async def test_closing_removes_everything_even_with_files_kept(tmp_path: Path) -> None:
    descriptors = len(os.listdir("/proc/self/fd"))
    files = OriginalFiles(tmp_path, segment_size=10)
    assert await files.save("j", 0, b"bytes")
    assert await files.save("k", 0, b"more bytes")  # seals the first, which still holds j
    assert files.segments() == 2
    files.close()
    assert len(os.listdir("/proc/self/fd")) == descriptors, "every segment's fd closed"
    assert not files.directory.exists()
    assert not await files.save("j", 1, b"more")
    assert await files.load("j", 0) is None
