"""The uploaded bytes of recognised files, kept on disk for the searchable-PDF export.

A searchable PDF is made from the file itself (a PDF's own pages, an image's pixels),
so a recognised file's bytes stay readable for as long as its job does: one file per
recognised upload in a private directory (mode 0700) that the app creates at start-up
and removes at shutdown, under ``<job_id>/<file_index>``, removed when the job is
dropped. On disk, never in memory: the retained bytes are bounded by RESULT_TTL times
the upload rate, which is a disk's size, not RAM's.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

__all__ = ["OriginalFiles"]


class OriginalFiles:
    """Retained file bytes by job and file index; every method is sync, blocking I/O
    (call :meth:`save` and :meth:`load` from a worker thread).

    Args:
        directory: where to keep them; None: a new private temporary directory.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ocrstream-files-", dir=directory))

    def _path(self, job_id: str, file_index: int) -> Path:
        return self.directory / job_id / str(file_index)

    def save(self, job_id: str, file_index: int, data: bytes) -> None:
        """Keep ``data`` as file ``file_index`` of job ``job_id``."""
        path = self._path(job_id, file_index)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)

    def load(self, job_id: str, file_index: int) -> bytes | None:
        """The kept bytes, or None when they are gone (the job was dropped)."""
        try:
            return self._path(job_id, file_index).read_bytes()
        except FileNotFoundError:
            return None

    def drop(self, job_id: str) -> None:
        """Remove every file kept for job ``job_id``."""
        shutil.rmtree(self.directory / job_id, ignore_errors=True)

    def count(self) -> int:
        """Jobs with kept files (for tests and metrics)."""
        try:
            return sum(1 for _ in self.directory.iterdir())
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Remove the directory and everything in it."""
        shutil.rmtree(self.directory, ignore_errors=True)
