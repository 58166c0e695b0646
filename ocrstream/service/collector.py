"""The cyclic garbage collector in a long-running server: its pauses, and its policy.

CPython frees an object the moment its last reference goes; the cyclic collector only
exists for garbage held in reference cycles. It runs in the middle of whatever code
happens to allocate, and stops the whole process while it does: every stream, the
watchers' fan-out included, waits for it. A young collection visits the objects
allocated since the last one; a full one visits every object the collector tracks, so
its pause grows with everything the server holds. CPython 3.11 starts one whenever the
old generation has grown by a quarter; with 10,000 retained jobs that was every few
thousand jobs, and each took 0.2 to 1 s here.

The policy (:class:`CollectorPolicy`, applied by :func:`managed_collector` while the
server serves):

* what start-up made (modules, classes, the app: ~74,000 objects) is collected once
  and frozen (``gc.freeze``): no pass visits it again;
* a request makes no reference cycle of ocrstream's (see intake.py, serve.py), so its
  garbage goes by reference counting, and what the young generations find is small:
  they are collected as usual, often, with thresholds that keep a pass short (a young
  pass visits ~2,500 objects, 0.6 ms; a middle one ~5,000, 2 ms; measured on a busy
  2-core machine, where a 10,000-object young pass took 5 to 15 ms). One case stays
  long: thousands of connections opening or closing at once hold tens of thousands of
  live coroutines in the young generation (CPython counts young objects net of the old
  ones freed meanwhile, so a burst of closes also lets it grow), and a pass then takes
  20 to 70 ms;
* full collections never start by themselves in the middle of work. The old
  generation holds retained jobs and open streams, which reference counting frees when
  they go (a full pass after 6,000 jobs found nothing to free); it would only find
  cycles someone else made, so it runs as a backstop (:func:`collect_when_quiet`):
  when no job has been running for a second, at most once per ``interval``, and after
  ``deadline`` even under unbroken load.

:class:`PauseMonitor` times each collection through ``gc.callbacks``; the metrics read
it at scrape time, the scheduled passes apart from the rest. Its callback runs inside
the collector, at any allocation of any thread, so it only does arithmetic on its own
fields: no lock (a lock held by the interrupted code would deadlock it), no logging.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "PAUSE_BUCKETS",
    "TRIGGERS",
    "CollectorPolicy",
    "PauseMonitor",
    "collect_when_quiet",
    "managed_collector",
]

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
#: The kinds of collection the monitor tells apart: started by an allocation (in the
#: middle of work), or by the backstop (:func:`collect_when_quiet`).
TRIGGERS = ("allocation", "scheduled")
# gc.set_threshold takes C ints: a full collection after 2**31 young ones is never.
_NEVER = 2**31 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorPolicy:
    """How the server runs the cyclic collector (see the module docstring).

    Attributes:
        young: net allocations of tracked objects between two young collections
            (``gc`` threshold 0; CPython's default is 700). A job leaves about 30 (its
            retained record, and Werkzeug's per-request cycle), so a young pass runs
            every few dozen jobs.
        middle: young collections between two of the middle generation (threshold 1;
            default 10); a middle pass visits what survived them.
        quiet: seconds without a running job before the backstop's full collection.
        interval: seconds between two full collections at least.
        deadline: seconds after which a full collection runs even if never quiet (a
            bound on the memory cycles made elsewhere could hold).
    """

    young: int = 1_000
    middle: int = 4
    quiet: float = 1.0
    interval: float = 600.0
    deadline: float = 3600.0


class PauseMonitor:
    """Counts of the collector's pauses per trigger and generation, in :data:`PAUSE_BUCKETS`.

    Attributes:
        buckets: ``buckets[trigger][generation][i]`` pauses no longer than
            ``PAUSE_BUCKETS[i]`` (not cumulative; the last slot counts the longer ones).
        total: seconds spent collecting, ``total[trigger][generation]``.
        longest: the longest pause seen (seconds, wall clock) per trigger, of any
            generation: what every stream waited.
        longest_cpu: the longest pause per trigger in the collecting thread's CPU time:
            the collector's own work (on a busy machine the wall clock also counts the
            time the OS gave the process's core to others meanwhile).
        collected: objects found unreachable and freed by the collector.
    """

    def __init__(self) -> None:
        self.buckets = [[[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(3)] for _ in TRIGGERS]
        self.total = [[0.0, 0.0, 0.0] for _ in TRIGGERS]
        self.longest = [0.0 for _ in TRIGGERS]
        self.longest_cpu = [0.0 for _ in TRIGGERS]
        self.collected = 0
        self._trigger = 0
        self._started = 0.0
        self._started_cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        """The ``gc.callbacks`` hook."""
        if phase == "start":
            self._started = time.perf_counter()
            self._started_cpu = time.thread_time()
            return
        pause = time.perf_counter() - self._started
        cpu = time.thread_time() - self._started_cpu
        generation = info["generation"]
        trigger = self._trigger
        slot = 0
        while slot < len(PAUSE_BUCKETS) and pause > PAUSE_BUCKETS[slot]:
            slot += 1
        self.buckets[trigger][generation][slot] += 1
        self.total[trigger][generation] += pause
        self.collected += info["collected"]
        if pause > self.longest[trigger]:
            self.longest[trigger] = pause
        if cpu > self.longest_cpu[trigger]:
            self.longest_cpu[trigger] = cpu

    def collect(self) -> int:
        """A full collection, counted as ``scheduled``: the objects it freed."""
        self._trigger = TRIGGERS.index("scheduled")
        try:
            return gc.collect()
        finally:
            self._trigger = 0

    @contextmanager
    def installed(self) -> Iterator[PauseMonitor]:
        """Time every collection of this process while the block runs."""
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


@contextmanager
def managed_collector(policy: CollectorPolicy, monitor: PauseMonitor) -> Iterator[None]:
    """Apply ``policy`` for the block: collect and freeze what exists, set the
    thresholds (no automatic full collection); restore both afterwards.

    The collector's settings are the process's: this is for the process's one server.
    """
    monitor.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(policy.young, policy.middle, _NEVER)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def collect_when_quiet(
    policy: CollectorPolicy,
    monitor: PauseMonitor,
    is_quiet: Callable[[], bool],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """The backstop: a full collection once per ``policy.interval``, when the server has
    been quiet (``is_quiet()``: no job running) for ``policy.quiet`` seconds, or once
    ``policy.deadline`` has passed since the last one whatever the load."""
    task_status.started()
    poll = policy.quiet / 4
    while True:
        last = trio.current_time()
        await trio.sleep(policy.interval)
        quiet_since: float | None = None
        while True:
            now = trio.current_time()
            if not is_quiet():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            if quiet_since is not None and now - quiet_since >= policy.quiet:
                break
            if now - last >= policy.deadline:
                break
            await trio.sleep(poll)
        monitor.collect()
