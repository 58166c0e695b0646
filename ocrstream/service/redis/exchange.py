"""A worker process's units and its round trips to the OCR queue, for its slots.

One task (:meth:`Exchange.run`) makes every round trip of the process's slots, one at a
time, each one :meth:`~ocrstream.service.redis.queue.OCRQueue.exchange`: the outcomes
recognised since the last (for their owners), the units to hand back, and the units to
take for the slots. While slots are busy, outcomes gather (up to ``_HAND_OVER_WAIT``)
and go in one round trip, so a busy process makes fewer round trips than it recognises
units. Behind short units, units are taken ahead of the slots (see ``_AHEAD_WAIT``), so a
slot never waits for a round trip between two. When nothing is queued and a slot is idle,
one task blocks for a wake-up token (:meth:`Exchange.wait_for_work`); one renews the
leases of the units held long enough (:meth:`Exchange.renew`). Units are leased to the
process (its worker id), whichever slot recognises them.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

    from ocrstream.service.redis.queue import OCRQueue, Unit

__all__ = ["IDLE_WAIT", "Backoff", "Counts", "Exchange", "Held"]

#: Seconds the idle slots block for a wake-up token before they look at the queue anyway.
IDLE_WAIT = 2.0
#: Taking units ahead. A unit recognised in less than _AHEAD_WAIT seconds is short; while
#: the recent units were short (and none running has taken longer), units are taken ahead
#: of the slots: per slot, as many as take about _AHEAD_WAIT/2 to recognise, 1 to
#: _AHEAD_MAX, while the files kept hold less than _AHEAD_BYTES. A unit that has waited
#: _AHEAD_WAIT (the one before it turned out long) goes back to the front of its job's
#: queue, its try not counted. Real OCR pages take longer: they are taken only for a free
#: slot, one each.
_AHEAD_WAIT = 0.02
_AHEAD_MAX = 8
_AHEAD_BYTES = 64 * 1024 * 1024
#: Seconds an outcome may wait for others (while the slots have units in hand), to be
#: handed over with them in one round trip.
_HAND_OVER_WAIT = 0.005
#: Backoff bounds (seconds) while Redis does not answer.
_BACKOFF = (0.05, 2.0)
#: Cancelled uids and jobs remembered, for a cancel that arrives before its unit is seen.
_RECENT = 1000


@dataclass(slots=True)
class Counts:
    """What the process's slots did (counters since start)."""

    done: int = 0
    failed: int = 0
    cancelled: int = 0
    taken_over: int = 0
    handed_back: int = 0
    store_errors: int = 0


@dataclass(slots=True, eq=False)
class Held:
    """A unit leased to this process.

    Attributes:
        unit: the unit.
        taken: when it was taken (trio time).
        renewed: when its lease was last taken or renewed.
        started: when a slot began recognising it (None: not yet).
        scope: cancelled when the unit is not ours any more (cancelled, taken over).
    """

    unit: Unit
    taken: float
    renewed: float
    started: float | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(slots=True, eq=False)
class _Finished:
    unit: Unit
    outcome: bytes
    at: float  # when it was recognised (trio time)
    deadline: float  # past it, stop trying to hand it over


class Backoff:
    """Doubling sleeps between failed tries; reset on success."""

    def __init__(self) -> None:
        self.delay = _BACKOFF[0]

    async def wait(self) -> None:
        """Sleep, and double the next sleep (up to its bound)."""
        await trio.sleep(self.delay)
        self.delay = min(self.delay * 2, _BACKOFF[1])

    def reset(self) -> None:
        """Back to the shortest sleep."""
        self.delay = _BACKOFF[0]


class Exchange:
    """The units a worker process holds, and its round trips to the queue.

    Args:
        queue: the queue on the process's Redis client.
        worker_id: the process's id in the cluster: the units' lease holder.
        slots: OCR_WORKERS.
        counts: the process's counters (done, failed, handed back, store errors).
        store_error: counts and logs a store error; raises any other.
    """

    def __init__(
        self,
        queue: OCRQueue,
        *,
        worker_id: str,
        slots: int,
        counts: Counts,
        store_error: Callable[[Exception], None],
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self._slots = slots
        self._counts = counts
        self._store_error = store_error
        self._held: dict[str, Held] = {}  # every unit leased to this process
        self._ahead: deque[Held] = deque()  # taken, not started yet (oldest first)
        self._finished: list[_Finished] = []  # outcomes to hand over
        self._files: OrderedDict[str, bytes] = OrderedDict()  # file bytes kept, newest last
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.running = 0  # units being recognised
        self._idle = 0  # slots waiting for a unit
        # Seconds the recent units took to recognise (a long one counts at once; each
        # short one halves the distance to it).
        self._unit_time = _AHEAD_WAIT
        self._nothing_queued = False  # the last take found no unit: wait for a token
        self._tokens = 0  # wake-up tokens the waker has had (or waits that timed out)
        self._taking = True
        self._slots_done = False
        self._arrived = trio.Event()  # units joined _ahead (or the slots should stop)
        self._changed = trio.Event()  # something for the exchanger
        self._waker_changed = trio.Event()  # something for the waker (idle, queue, stop)
        self._waiting_scope = trio.CancelScope()

    # For the slots.

    async def next_unit(self) -> Held | None:
        """The next unit to recognise, once there is one; None: stop (what was taken
        ahead is handed back)."""
        while not self._ahead:
            if not self._taking:
                return None
            self._idle += 1
            self._poke(waker=True)
            try:
                await self._arrived.wait()
            finally:
                self._idle -= 1
        if not self._taking:
            return None
        held = self._ahead.popleft()
        held.started = trio.current_time()
        self.running += 1
        return held

    def file_bytes(self, unit: Unit) -> bytes | None:
        """The bytes of ``unit``'s file (None: they were no longer in the store)."""
        return self._files.get(unit.file_key)

    def finish(self, held: Held, outcome: bytes | None) -> None:
        """A slot is done with ``held``: hand ``outcome`` over (None: there is none, it
        was cancelled or handed back)."""
        self.running -= 1
        del self._held[held.unit.uid]
        if outcome is not None:
            now = trio.current_time()
            assert held.started is not None
            took = now - held.started
            self._unit_time = took if took >= _AHEAD_WAIT else (self._unit_time + took) / 2
            # Up to a lease's time to hand it over while Redis does not answer.
            deadline = now + max(self.queue.lease, 1.0)
            self._finished.append(_Finished(held.unit, outcome, now, deadline))
        self._poke()

    def cancel(self, name: str) -> None:
        """Kill the units of ``name`` (``u:{uid}`` or ``j:{job}``), held or taken later."""
        self._recent[name] = None
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        kind, _, value = name.partition(":")
        for held in self._held.values():
            if (held.unit.uid if kind == "u" else held.unit.job_id) == value:
                held.scope.cancel()

    def stop_taking(self) -> None:
        """Take no more units; those taken ahead are handed back."""
        self._taking = False
        self._waiting_scope.cancel()
        self._arrived.set()
        self._poke(waker=True)

    def slots_done(self) -> None:
        """No slot runs any more: :meth:`run` hands the last outcomes over and returns."""
        self._slots_done = True
        self._poke()

    # The tasks.

    async def run(self) -> None:
        """Make the slots' round trips until cancelled, or until :meth:`slots_done` and
        the last outcomes are handed over."""
        backoff = Backoff()
        try:
            while True:
                stale = self._stale()
                target = self._target()
                want = max(0, target - len(self._ahead))
                # Running low: an idle slot, or less than half the target in hand.
                low = (
                    want > 0
                    and not self._nothing_queued
                    and (self._idle > 0 or 2 * len(self._ahead) < target)
                )
                # Outcomes wait (up to _HAND_OVER_WAIT) only while the slots have more in
                # hand: more outcomes are on their way, to go in the same round trip.
                hand_over = bool(self._finished) and (
                    not self._ahead
                    or not self._taking
                    or trio.current_time() - self._finished[0].at >= _HAND_OVER_WAIT
                )
                if not (stale or low or hand_over):
                    if self._slots_done and not self._finished and not self._ahead:
                        return
                    await self._wait_for_change()
                    continue
                try:
                    await self._exchange(list(self._finished), stale, want)
                except Exception as error:
                    if self._slots_done:
                        # Stopped: they go back when their leases run out.
                        for held in stale:
                            del self._held[held.unit.uid]
                    else:
                        self._ahead.extendleft(reversed(stale))  # still ours: look again
                    self._store_error(error)
                    now = trio.current_time()
                    # Past a lease: the unit is another worker's, or failed.
                    self._finished = [done for done in self._finished if done.deadline > now]
                    await backoff.wait()
                    continue
                backoff.reset()
        finally:
            if self._finished or self._ahead:
                await self._hand_over_last()

    async def wait_for_work(self) -> NoReturn:
        """While a slot is idle and nothing is queued, block for a wake-up token (one per
        queued unit), then have :meth:`run` look (also after IDLE_WAIT without one)."""
        backoff = Backoff()
        while True:
            if not (self._taking and self._nothing_queued and self._idle):
                await self._waker_changed.wait()
                continue
            with trio.CancelScope() as self._waiting_scope:
                try:
                    if self._taking:
                        await self.queue.wait_for_work(IDLE_WAIT)
                    backoff.reset()
                except Exception as error:
                    self._store_error(error)
                    await backoff.wait()
            self._tokens += 1
            self._nothing_queued = False
            self._poke()

    async def renew(self) -> NoReturn:
        """Renew, in one round trip, the leases of the units held for OCR_LEASE/3 since
        they were taken or last renewed (a short unit is never renewed); a unit that is
        not ours any more (cancelled, taken over) is killed at once."""
        period = self.queue.lease / 3
        while True:
            await trio.sleep(period / 2)
            now = trio.current_time()
            due = [held for held in self._held.values() if now - held.renewed >= period]
            if not due:
                continue
            try:
                still_ours = await self.queue.renew_many(
                    [(held.unit, self.worker_id) for held in due]
                )
            except Exception as error:
                self._store_error(error)
                continue
            for held, ours in zip(due, still_ours, strict=True):
                if ours:
                    held.renewed = now
                else:
                    held.scope.cancel()

    # Inside.

    def _poke(self, *, waker: bool = False) -> None:
        self._changed.set()
        self._changed = trio.Event()
        if waker:
            self._waker_changed.set()
            self._waker_changed = trio.Event()

    def _target(self) -> int:
        """How many units to have in hand, not started: one per idle slot, and while
        units are short enough for each slot to go on without waiting for a round trip."""
        if not self._taking:
            return 0
        target = self._idle
        now = trio.current_time()
        if (
            self._unit_time < _AHEAD_WAIT
            and sum(map(len, self._files.values())) < _AHEAD_BYTES
            and all(
                held.started is None or now - held.started < _AHEAD_WAIT
                for held in self._held.values()
            )
        ):
            per_slot = _AHEAD_MAX
            if self._unit_time > 0:
                per_slot = max(1, min(_AHEAD_MAX, int(_AHEAD_WAIT / 2 / self._unit_time)))
            target += self._slots * per_slot
        return target

    def _stale(self) -> list[Held]:
        """Units taken ahead to hand back: all once stopping, else those that have waited
        _AHEAD_WAIT (the unit before them turned out long); out of ``_ahead``."""
        now = trio.current_time()
        if self._taking:
            stale = [held for held in self._ahead if now - held.taken >= _AHEAD_WAIT]
            if stale:
                # The units running turned out long: no more are taken ahead until one is
                # recognised (else this very round trip could take them back, the running
                # ones having started a moment after they were taken).
                self._unit_time = max(self._unit_time, _AHEAD_WAIT)
        else:
            stale = list(self._ahead)
        for held in stale:
            self._ahead.remove(held)
        return stale

    async def _exchange(self, finished: list[_Finished], stale: list[Held], take: int) -> None:
        tokens = self._tokens
        # Shielded: units Redis leased to us must reach us, or they would sit leased to
        # nobody until their lease ran out.
        with trio.CancelScope(shield=True):
            exchanged = await self.queue.exchange(
                self.worker_id,
                complete=[(done.unit, done.outcome) for done in finished],
                release=[held.unit for held in stale],
                take=take,
                holding=list(self._files),
            )
        for done, delivered in zip(finished, exchanged.delivered, strict=True):
            self._finished.remove(done)
            if delivered:
                if b'"error"' in done.outcome[:10]:
                    self._counts.failed += 1
                else:
                    self._counts.done += 1
        for held in stale:
            self._held.pop(held.unit.uid, None)
        self._counts.handed_back += len(stale)
        now = trio.current_time()
        for unit in exchanged.taken:
            held = Held(unit, now, now)
            if unit.uid in self._recent or f"j:{unit.job_id}" in self._recent:
                held.scope.cancel()  # cancelled before we knew we held it
            self._held[unit.uid] = held
            self._ahead.append(held)
            if unit.data is not None:
                self._files[unit.file_key] = unit.data
            if unit.file_key in self._files:
                self._files.move_to_end(unit.file_key)
        # Nothing (more) queued: the waker waits for a token, unless one came meanwhile
        # (for a unit queued after this take looked).
        nothing_queued = take > len(exchanged.taken) and tokens == self._tokens
        if take and nothing_queued != self._nothing_queued:
            self._nothing_queued = nothing_queued
            self._poke(waker=True)
        if exchanged.taken:
            self._arrived.set()
            self._arrived = trio.Event()
        self._keep_files()

    def _keep_files(self) -> None:
        """Keep the bytes of the files of held units, and of the last few others (a PDF's
        next page comes without its file's bytes)."""
        needed = {held.unit.file_key for held in self._held.values()}
        spare = self._slots
        for name in reversed(list(self._files)):
            if name in needed:
                continue
            if spare > 0:
                spare -= 1
            else:
                del self._files[name]

    async def _wait_for_change(self) -> None:
        """Until a slot or the waker changes something, a unit taken ahead is due to be
        handed back, or an outcome to be handed over."""
        changed = self._changed
        deadlines = [math.inf]
        if self._ahead:
            deadlines.append(self._ahead[0].taken + _AHEAD_WAIT)
        if self._finished:
            deadlines.append(self._finished[0].at + _HAND_OVER_WAIT)
        with trio.move_on_at(min(deadlines)):
            await changed.wait()

    async def _hand_over_last(self) -> None:
        # Cancelled (the owner stops): the outcomes recognised and the units taken ahead,
        # once more, bounded.
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await self.queue.exchange(
                    self.worker_id,
                    complete=[(done.unit, done.outcome) for done in self._finished],
                    release=[held.unit for held in self._ahead],
                )
                self._counts.handed_back += len(self._ahead)
            except Exception as error:
                self._store_error(error)
        self._finished.clear()
        self._ahead.clear()
