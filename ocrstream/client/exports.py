"""Saving a finished job's exports next to the files they came from (``ocrstream submit
FILES --save DIR --format txt,alto,pdf``).

Each export is named after the local file it came from (its stem, and the format's
extension), never after anything the server sent: a server's file name is data only,
and must not choose where a file is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import trio

from ocrstream.core.exports import EXPORT_FORMATS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ocrstream.client.client import OCRStreamClient
    from ocrstream.client.terminal import JobView

__all__ = ["export_path", "save_exports"]


def export_path(
    directory: Path, local_name: str, file_index: int, extension: str, taken: set[Path]
) -> Path:
    """Where file ``file_index``'s export goes: ``DIR/<stem>.<ext>``, or, when another
    file of the job already took that name, ``DIR/<stem>-<file_index>.<ext>``."""
    stem = Path(local_name).stem or f"file-{file_index}"
    path = directory / f"{stem}.{extension}"
    if path in taken:
        path = directory / f"{stem}-{file_index}.{extension}"
    taken.add(path)
    return path


async def save_exports(
    client: OCRStreamClient,
    view: JobView,
    *,
    local_names: Sequence[str],
    directory: Path,
    formats: Sequence[str],
) -> list[Path]:
    """Download every recognised file's exports in ``formats`` into ``directory``.

    Returns:
        The paths written, in file then format order.
    """
    assert view.job_id is not None
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[Path] = set()
    for index, result in sorted(view.files.items()):
        if result.status != "recognised" or index >= len(local_names):
            continue
        for format in formats:
            data = await client.export(view.job_id, index, format)
            extension = EXPORT_FORMATS[format][1]
            path = export_path(directory, local_names[index], index, extension, taken)
            await trio.Path(path).write_bytes(data)
            written.append(path)
    return written
