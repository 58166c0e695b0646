"""The cyclic garbage collector in a long-running server: its pauses, measured.

CPython frees an object the moment its last reference goes; the cyclic collector only
exists for garbage held in reference cycles. It runs in the middle of whatever code
happens to allocate, and stops the whole process while it does: every stream, the
watchers' fan-out included, waits for it. A young collection visits the objects
allocated since the last one; a full one visits every object the collector tracks, so
its pause grows with everything the server holds (retained jobs, open streams).

:class:`PauseMonitor` times each collection through ``gc.callbacks``; the metrics read
it at scrape time. Its callback runs inside the collector, at any allocation of any
thread, so it only does arithmetic on its own fields: no lock (a lock held by the
interrupted code would deadlock it), no logging, no allocation that could outlive it.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["PAUSE_BUCKETS", "PauseMonitor"]

#: Upper bounds (seconds) of the pause histogram's buckets.
PAUSE_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.1,
    0.2,
    0.5,
)


class PauseMonitor:
    """Counts of the collector's pauses per generation, in :data:`PAUSE_BUCKETS`.

    Attributes:
        buckets: ``buckets[generation][i]`` pauses no longer than ``PAUSE_BUCKETS[i]``
            (not cumulative; the last slot counts the longer ones).
        total: seconds spent collecting, per generation.
        longest: the longest pause seen (seconds), of any generation.
        collected: objects found unreachable and freed by the collector.
    """

    def __init__(self) -> None:
        self.buckets = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)]
        self.total = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self.collected = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """The ``gc.callbacks`` hook."""
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        slot = 0
        while slot < len(PAUSE_BUCKETS) and pause > PAUSE_BUCKETS[slot]:
            slot += 1
        self.buckets[generation][slot] += 1
        self.total[generation] += pause
        self.collected += info["collected"]
        if pause > self.longest:
            self.longest = pause

    @contextmanager
    def installed(self) -> Iterator[PauseMonitor]:
        """Time every collection of this process while the block runs."""
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)
