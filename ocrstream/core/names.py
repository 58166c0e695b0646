"""File-name sanitising: a client's name becomes safe display data.

The result is data only; it is never joined into a filesystem path, and every
renderer must still escape it.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_NAME_LENGTH", "sanitize_file_name"]

#: Characters kept of a name, after reduction to its last path component.
MAX_NAME_LENGTH = 255

_SEPARATORS = re.compile(r"[/\\]")


def _is_control(char: str) -> bool:
    # Cc (C0, DEL, C1) plus the bidi/format controls that can disguise a name (Cf).
    return unicodedata.category(char) in {"Cc", "Cf"}


def sanitize_file_name(name: str | None, *, file_index: int) -> str:
    """Reduce a client-supplied file name per SPEC.md.

    Args:
        name: the ``filename`` of the part, as the client sent it (may be None).
        file_index: the file's index, used for the ``file-<index>`` fallback.

    Returns:
        The last path component (``/`` and ``\\`` both separate), without control
        characters, at most 255 characters; ``file-<index>`` when nothing is left.
    """
    last = _SEPARATORS.split(name or "")[-1]
    cleaned = "".join(char for char in last if not _is_control(char)).strip()
    cleaned = cleaned[:MAX_NAME_LENGTH]
    if cleaned in {"", ".", ".."}:
        return f"file-{file_index}"
    return cleaned
