"""The embedded backend: every job, history and the broadcast ring in this process."""

from __future__ import annotations

__all__: list[str] = []
