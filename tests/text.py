"""Comparing recognised text the way the accuracy checks do."""

from __future__ import annotations

import re

__all__ = ["normalise_spaces"]

_SPACES = re.compile(r"\s+")


def normalise_spaces(text: str) -> str:
    """Fold runs of whitespace to one space and strip the ends."""
    return _SPACES.sub(" ", text).strip()
