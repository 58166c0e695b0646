"""The uploaded bytes of recognised files, kept on disk for the searchable-PDF export.

A searchable PDF is made from the file itself (a PDF's own pages, an image's pixels),
so a recognised file's bytes stay readable for as long as its job does. On disk, never
in memory: the retained bytes are bounded by RESULT_TTL times the upload rate, which is
a disk's size, not RAM's.

They are appended to segment files (``<n>.seg``, SEGMENT_SIZE bytes or so each) in a
private directory (mode 0700) that the app creates at start-up and removes at shutdown;
a segment is deleted once none of its files is kept any more. Jobs are dropped in about
the order they finished, so segments empty in about the order they were written. One
file per upload (a directory per job, then ``rmtree``) cost this machine 1.2 ms of
``mkdir`` and 0.3 ms of ``rmtree`` per job; an append to an open segment is one
``pwrite``.

A small file (up to :data:`INLINE_WRITE` bytes) is written on the Trio thread: a
``pwrite`` of a few kilobytes into the page cache is cheaper than the hop to a worker
thread (about 200 us of CPU here, see ``benchmarks/bench_upload.py``); a larger one,
reads (exports) and deleting a segment go to a worker thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import trio

__all__ = ["INLINE_WRITE", "SEGMENT_SIZE", "OriginalFiles"]

logger = logging.getLogger(__name__)

#: Files up to this size are written without leaving the Trio thread.
INLINE_WRITE = 64 * 1024
#: A segment takes no file that would make it larger than this (but a larger one alone).
SEGMENT_SIZE = 32 * 1024 * 1024


@dataclass(slots=True, eq=False)
class _Segment:
    number: int
    fd: int
    end: int = 0  # bytes reserved
    kept: int = 0  # files kept in it (or being written)
    readers: int = 0  # reads in progress
    sealed: bool = False  # takes no more files
    doomed: bool = False  # to be deleted


@dataclass(frozen=True, slots=True)
class _Extent:
    segment: _Segment
    offset: int
    size: int


class OriginalFiles:
    """Retained file bytes by job and file index (see the module docstring).

    Args:
        directory: where to make the private directory; None: the system's temp dir.
        segment_size: see :data:`SEGMENT_SIZE` (tests make it small).
    """

    def __init__(self, directory: Path | None = None, *, segment_size: int = SEGMENT_SIZE) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ocrstream-files-", dir=directory))
        self._segment_size = segment_size
        self._numbers = 0
        self._current: _Segment | None = None
        # Every segment whose descriptor is open, by number (until run() deletes it).
        self._open: dict[int, _Segment] = {}
        self._files: dict[str, dict[int, _Extent]] = {}
        self._doomed: list[_Segment] = []
        self._doomed_added = trio.Event()
        self._closed = False

    async def save(self, job_id: str, file_index: int, data: bytes) -> bool:
        """Keep ``data`` as file ``file_index`` of job ``job_id``.

        Returns:
            False when it could not be written (the disk is full, say: logged), or
            the store is closed; the file is then not kept.
        """
        if self.closed():
            return False
        extent = self._reserve(len(data))
        try:
            if len(data) <= INLINE_WRITE:
                written = os.pwrite(extent.segment.fd, data, extent.offset)
            else:
                written = await trio.to_thread.run_sync(
                    os.pwrite, extent.segment.fd, data, extent.offset
                )
            if written != len(data):
                raise OSError(f"a short write ({written} of {len(data)} bytes)")
        except OSError as error:
            logger.warning("could not keep file %d of job %s: %s", file_index, job_id, error)
            self._release(extent.segment)
            return False
        except BaseException:
            self._release(extent.segment)
            raise
        if self.closed():  # closed while a large file was being written
            return False
        previous = self._files.setdefault(job_id, {}).get(file_index)
        self._files[job_id][file_index] = extent
        if previous is not None:
            self._release(previous.segment)
        return True

    async def load(self, job_id: str, file_index: int) -> bytes | None:
        """The kept bytes, or None when they are gone (the job was dropped)."""
        extent = self._files.get(job_id, {}).get(file_index)
        if extent is None:
            return None
        segment = extent.segment
        segment.readers += 1
        try:
            return await trio.to_thread.run_sync(os.pread, segment.fd, extent.size, extent.offset)
        finally:
            segment.readers -= 1
            self._maybe_delete(segment)

    def drop(self, job_id: str) -> None:
        """Forget every file kept for job ``job_id`` (sync, no I/O: an emptied segment
        is deleted by :meth:`run`)."""
        for extent in self._files.pop(job_id, {}).values():
            self._release(extent.segment)

    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def count(self) -> int:
        """Jobs with kept files (for tests and metrics)."""
        return len(self._files)

    def segments(self) -> int:
        """Segment files on disk (for tests)."""
        try:
            return sum(1 for path in self.directory.iterdir() if path.suffix == ".seg")
        except FileNotFoundError:
            return 0

    async def run(self) -> NoReturn:
        """Delete emptied segments (in a worker thread) until cancelled; run it for the
        store's lifetime."""
        while True:
            await self._doomed_added.wait()
            self._doomed_added = trio.Event()
            doomed, self._doomed = self._doomed, []
            for segment in doomed:
                del self._open[segment.number]
            await trio.to_thread.run_sync(self._delete, doomed)

    def close(self) -> None:
        """Remove the directory and everything in it (blocking; at shutdown)."""
        self._closed = True
        self._files.clear()
        for segment in self._open.values():  # sealed ones still holding files too
            _close_fd(segment)
        self._open.clear()
        self._current, self._doomed = None, []
        shutil.rmtree(self.directory, ignore_errors=True)

    # Bookkeeping, all on the Trio thread -----------------------------------------------

    def _reserve(self, size: int) -> _Extent:
        segment = self._current
        # A file goes where it fits, or alone into a new segment (however large it is).
        if segment is None or (segment.end and segment.end + size > self._segment_size):
            if segment is not None:
                segment.sealed = True
                self._maybe_delete(segment)
            self._numbers += 1
            path = self.directory / f"{self._numbers}.seg"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            segment = self._current = self._open[self._numbers] = _Segment(self._numbers, fd)
        extent = _Extent(segment, segment.end, size)
        segment.end += size
        segment.kept += 1
        return extent

    def _release(self, segment: _Segment) -> None:
        segment.kept -= 1
        self._maybe_delete(segment)

    def _maybe_delete(self, segment: _Segment) -> None:
        if segment.sealed and segment.kept == 0 and segment.readers == 0 and not segment.doomed:
            segment.doomed = True
            self._doomed.append(segment)
            self._doomed_added.set()

    def _delete(self, segments: list[_Segment]) -> None:
        for segment in segments:
            _close_fd(segment)
            (self.directory / f"{segment.number}.seg").unlink(missing_ok=True)


def _close_fd(segment: _Segment) -> None:
    fd, segment.fd = segment.fd, -1
    if fd >= 0:
        os.close(fd)
