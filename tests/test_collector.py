"""The collector's policy and its pause accounting (on trio's fake clock)."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import trio
import trio.lowlevel
import trio.testing

from ocrstream.service.collector import (
    TRIGGERS,
    CollectorPolicy,
    PauseMonitor,
    collect_when_quiet,
    managed_collector,
)
from ocrstream.service.metrics import Metrics

if TYPE_CHECKING:
    import pytest

POLICY = CollectorPolicy(young=5_000, middle=4, quiet=1.0, interval=60.0, deadline=300.0)


def _no_full_collections(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the full collections asked for (at trio's time, if any) instead of running
    them."""
    asked: list[float] = []

    def collect(*args: int) -> int:
        asked.append(trio.current_time() if trio.lowlevel.in_trio_run() else 0.0)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    return asked


async def test_the_backstop_waits_for_a_quiet_second(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _no_full_collections(monkeypatch)
    busy_until = 100.0
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(
            collect_when_quiet, POLICY, PauseMonitor(), lambda: trio.current_time() >= busy_until
        )
        await trio.sleep(59)
        assert asked == [], "not before the interval"
        await trio.sleep(50)  # busy until 100 s, then quiet: once it has been for 1 s
        assert [round(at - start) for at in asked] == [101]
        nursery.cancel_scope.cancel()


async def test_the_backstop_runs_at_its_deadline_under_unbroken_load(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _no_full_collections(monkeypatch)
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        await nursery.start(collect_when_quiet, POLICY, PauseMonitor(), lambda: False)
        await trio.sleep(1000)
        nursery.cancel_scope.cancel()
    assert [round(at - start) for at in asked] == [300, 600, 900]


def test_the_policy_freezes_what_start_up_made_and_is_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_full_collections(monkeypatch)
    before = gc.get_threshold()
    with managed_collector(POLICY, PauseMonitor()):
        young, middle, old = gc.get_threshold()
        assert (young, middle) == (5_000, 4)
        assert old > 10**9, "no automatic full collection"
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_pauses_are_counted_by_generation_and_trigger() -> None:
    monitor = PauseMonitor()
    with monitor.installed():
        gc.collect(0)
        monitor.collect()
    assert monitor not in gc.callbacks
    allocation, scheduled = (TRIGGERS.index(name) for name in ("allocation", "scheduled"))
    assert sum(monitor.buckets[allocation][0]) == 1
    assert sum(monitor.buckets[scheduled][2]) == 1
    assert monitor.longest[scheduled] > 0
    assert 0 < monitor.longest_cpu[scheduled] <= monitor.longest[scheduled] * 1.5
    text = Metrics(
        open_streams=lambda: 0, running_jobs=lambda: 0, lagged=lambda: (0, 0), gc_pauses=monitor
    ).render()
    assert b'ocrstream_gc_pause_seconds_count{generation="2",trigger="scheduled"} 1.0' in text
    assert b'ocrstream_gc_pause_seconds_count{generation="0",trigger="allocation"} 1.0' in text
    assert b'ocrstream_gc_longest_pause_seconds{trigger="scheduled"}' in text
    assert b'ocrstream_gc_longest_pause_cpu_seconds{trigger="allocation"}' in text
    assert b"ocrstream_gc_collected_objects_total" in text
