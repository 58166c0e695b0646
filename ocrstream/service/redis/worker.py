"""The worker side of the Redis OCR queue: OCR_WORKERS slots taking pages from it.

Each slot takes the next unit (fair by job), fetches its file's bytes (the last file is
kept per slot: a PDF's pages come one after another), recognises the page in a
trio-parallel worker process (the engine loaded once per process, killed on cancel) and
completes the unit with the page or the error, taking the next unit in the same round trip
(a busy slot makes one per unit). One task per process renews, in one round trip, the
leases of the units held for OCR_LEASE/3 (a short unit is never renewed). One task per
process listens to the ``cancel`` channel and kills the unit of a cancelled page or job at
once; a renewal that finds the unit gone does the same, should a message be missed.
Redis unreachable: every loop backs off and retries; nothing crashes, nothing spins.

``ocrstream worker`` runs these slots; so does ``ocrstream serve`` with REDIS_URL set and
OCR_WORKERS > 0 (the slots are one nursery task, :func:`run_redis_workers`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, NoReturn

import anyio
import trio
import trio_parallel

from ocrstream.core.errors import OCRError
from ocrstream.engines.base import EngineOptions
from ocrstream.engines.worker import init, recognize_page, retire
from ocrstream.service.redis.connection import describe_error
from ocrstream.service.redis.ocr import open_store
from ocrstream.service.redis.queue import CANCEL_CHANNEL, OCRQueue, Unit, is_store_error
from ocrstream.service.redis.wire import encode_error, encode_page

if TYPE_CHECKING:
    from ocrstream.core.config import Settings
    from ocrstream.engines.worker import PageRequest

logger = logging.getLogger(__name__)

__all__ = ["RedisWorkers", "WorkerStatistics", "new_worker_id", "run_redis_workers"]

#: Seconds an idle slot blocks for a wake-up token before it looks at the queue anyway.
_IDLE_WAIT = 2.0
#: Backoff bounds (seconds) while Redis does not answer.
_BACKOFF = (0.05, 2.0)
#: Cancelled uids and jobs remembered, for a cancel that arrives before its unit is seen.
_RECENT = 1000


def new_worker_id() -> str:
    """``host-pid-random``: unique in the cluster, readable in Redis."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatistics:
    """This process's slots and what they did (counters since start)."""

    capacity: int
    busy: int
    done: int
    failed: int
    cancelled: int
    taken_over: int
    store_errors: int


@dataclass(slots=True)
class _Counts:
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    taken_over: int = 0
    store_errors: int = 0


@dataclass(slots=True)
class _Held:
    unit: Unit
    slot: str
    renewed: float  # when its lease was last taken or renewed (trio time)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class _Backoff:
    """Doubling sleeps between failed tries; reset on success."""

    def __init__(self) -> None:
        self.delay = _BACKOFF[0]

    async def wait(self) -> None:
        await trio.sleep(self.delay)
        self.delay = min(self.delay * 2, _BACKOFF[1])

    def reset(self) -> None:
        self.delay = _BACKOFF[0]


class RedisWorkers:
    """The slots of one process (built and run by :func:`run_redis_workers`).

    Args:
        queue: the queue on this process's Redis client.
        context: the trio-parallel worker context.
        engine: OCR_ENGINE.
        slots: OCR_WORKERS.
        timeout: OCR_TIMEOUT seconds per page.
        worker_id: this process's id in the cluster.
    """

    def __init__(
        self,
        queue: OCRQueue,
        context: trio_parallel.WorkerContext,
        *,
        engine: str,
        slots: int,
        timeout: float,
        worker_id: str,
    ) -> None:
        self.worker_id = worker_id
        self.slots = [f"{worker_id}/{index}" for index in range(slots)]
        #: The queue the slots take from (also read by ``/metrics``).
        self.queue = queue
        self._context = context
        self._engine = engine
        self._timeout = timeout
        self._limiter = trio.CapacityLimiter(slots)
        self._held: dict[str, _Held] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._counts = _Counts()
        self._taking = True
        self._idle: set[trio.CancelScope] = set()
        self._slots_scope = trio.CancelScope()

    def statistics(self) -> WorkerStatistics:
        """Counts for ``/metrics`` and tests."""
        counts = self._counts
        return WorkerStatistics(
            capacity=len(self.slots),
            busy=len(self._held),
            done=counts.done,
            failed=counts.failed,
            cancelled=counts.cancelled,
            taken_over=counts.taken_over,
            store_errors=counts.store_errors,
        )

    def stop_taking(self, *, grace: float = math.inf) -> None:
        """Take no more units; the ones held run on for ``grace`` seconds, then they are
        handed back to the queue (another worker takes them at once, and the try does not
        count). :meth:`run` returns once no unit is held.

        Stop this way rather than by cancelling the owner of the Redis client: the
        client's own connection tasks live under that owner, and the hand-back needs them.
        """
        self._taking = False
        for scope in self._idle:
            scope.cancel()
        if grace < math.inf:
            self._slots_scope.deadline = min(
                self._slots_scope.deadline, trio.current_time() + grace
            )

    @property
    def busy(self) -> int:
        """Units being recognised now."""
        return len(self._held)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the slots, the cancel listener and the upkeep until cancelled; returns
        once :meth:`stop_taking` was called and the held units are done."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self._listen)
            nursery.start_soon(self._upkeep)
            nursery.start_soon(self._renew)
            with self._slots_scope:
                async with trio.open_nursery() as slots:
                    for slot in self.slots:
                        slots.start_soon(self._warm_up)
                        slots.start_soon(self._slot, slot)
                    task_status.started()
            nursery.cancel_scope.cancel()
        await self._forget()

    async def _warm_up(self) -> None:
        # Start a worker process now (it loads its model in ``init``), not at the first page.
        try:
            await self._context.run_sync(bool, kill_on_cancel=True, limiter=self._limiter)
        except trio_parallel.BrokenWorkerError as error:
            logger.warning("an OCR worker failed to start: %s", error)

    async def _forget(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await self.queue.forget_workers(self.slots)
            except Exception as error:
                if not is_store_error(error):
                    raise

    async def _slot(self, slot: str) -> None:
        backoff = _Backoff()
        cached: tuple[str, bytes] | None = None
        # A unit recognised whose outcome is not handed over yet, and until when to try.
        finished: tuple[Unit, bytes, float] | None = None
        while self._taking or finished is not None:
            holding = cached[0] if cached else None
            try:
                # Shielded: a take Redis carried out must reach us, or the unit would
                # sit leased to nobody until its lease ran out.
                with trio.CancelScope(shield=True):
                    if finished is None:
                        unit = await self.queue.take(slot, holding=holding)
                    else:
                        done, result, _ = finished
                        delivered, unit = await self.queue.complete_and_take(
                            done, slot, result, take=self._taking, holding=holding
                        )
                        finished = None
                        self._count(delivered, result)
            except Exception as error:
                self._store_error(error)
                if finished is not None and trio.current_time() >= finished[2]:
                    finished = None  # past a lease: the unit is another worker's, or failed
                await backoff.wait()
                continue
            backoff.reset()
            if unit is None:
                if self._taking:
                    await self._wait_for_work(backoff)
                continue
            cached, outcome = await self._work(unit, slot, cached)
            if outcome is not None:
                # Up to a lease's time to hand it over while Redis does not answer.
                finished = (unit, outcome, trio.current_time() + max(self.queue.lease, 1.0))

    def _count(self, delivered: bool, outcome: bytes) -> None:
        if not delivered:
            return
        if b'"error"' in outcome[:10]:
            self._counts.failed += 1
        else:
            self._counts.done += 1

    async def _wait_for_work(self, backoff: _Backoff) -> None:
        with trio.CancelScope() as scope:
            self._idle.add(scope)
            try:
                if self._taking:
                    await self.queue.wait_for_work(_IDLE_WAIT)
            except Exception as error:
                self._store_error(error)
                await backoff.wait()
            finally:
                self._idle.discard(scope)

    async def _work(
        self, unit: Unit, slot: str, cached: tuple[str, bytes] | None
    ) -> tuple[tuple[str, bytes] | None, bytes | None]:
        """Recognise ``unit``; returns the file kept for the next unit and the outcome
        to hand over (None: the unit was cancelled)."""
        if cached is None or cached[0] != unit.file_key:
            cached = None if unit.data is None else (unit.file_key, unit.data)
        held = _Held(unit, slot, trio.current_time())
        self._held[unit.uid] = held
        if unit.uid in self._recent or f"j:{unit.job_id}" in self._recent:
            held.scope.cancel()  # cancelled before we knew we held it
        finished = False
        try:
            with held.scope:
                if cached is None:
                    outcome = encode_error(
                        OCRError("ocr_failed", "the file's bytes are no longer in the store")
                    )
                else:
                    outcome = await self._recognize(cached[1], unit.request)
            finished = True
        finally:
            del self._held[unit.uid]
            if not finished:
                await self._release(unit, slot)  # stopping: hand it back
        if held.scope.cancelled_caught:
            self._counts.cancelled += 1
            return cached, None
        return cached, outcome

    async def _release(self, unit: Unit, slot: str) -> None:
        # Stopping mid-unit: hand it back so another worker takes it at once rather than
        # after its lease, and this try does not count.
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                await self.queue.release(unit, slot)
            except Exception as error:
                self._store_error(error)

    async def _renew(self) -> NoReturn:
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
                still_ours = await self.queue.renew_many([(held.unit, held.slot) for held in due])
            except Exception as error:
                self._store_error(error)
                continue
            for held, ours in zip(due, still_ours, strict=True):
                if ours:
                    held.renewed = now
                else:
                    held.scope.cancel()

    async def _recognize(self, data: bytes, request: PageRequest) -> bytes:
        with trio.move_on_after(self._timeout):
            try:
                page = await self._context.run_sync(
                    partial(recognize_page, self._engine, data, request),
                    kill_on_cancel=True,
                    limiter=self._limiter,
                )
                return encode_page(page)
            except trio_parallel.BrokenWorkerError:
                return encode_error(OCRError("ocr_failed", "the OCR worker process died"))
            except OCRError as error:
                return encode_error(error)
            except Exception as error:
                detail = f"{type(error).__name__}: {error}"[:200]
                return encode_error(OCRError("ocr_failed", f"the OCR engine failed: {detail}"))
        return encode_error(
            OCRError(
                "ocr_timeout",
                f"OCR of a page took longer than {self._timeout:g} seconds (OCR_TIMEOUT)",
            )
        )

    def _store_error(self, error: Exception) -> None:
        if not is_store_error(error):
            raise error
        self._counts.store_errors += 1
        logger.warning("Redis: %s", describe_error(error))

    def _cancelled(self, name: str) -> None:
        self._recent[name] = None
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        kind, _, value = name.partition(":")
        for held in self._held.values():
            if (held.unit.uid if kind == "u" else held.unit.job_id) == value:
                held.scope.cancel()

    async def _listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = _Backoff()
        while True:
            try:
                try:
                    async with self.queue.client.pubsub(
                        channels=[CANCEL_CHANNEL], ignore_subscribe_messages=True
                    ) as pubsub:
                        task_status.started()
                        task_status = trio.TASK_STATUS_IGNORED
                        backoff.reset()
                        async for message in pubsub:
                            data = message["data"]
                            name = data.decode() if isinstance(data, bytes) else str(data)
                            self._cancelled(name)
                except* anyio.ClosedResourceError:
                    # coredis's subscriber, cancelled, unsubscribes on the connection it
                    # has just closed; a closed connection otherwise means "reconnect".
                    pass
            except Exception as error:
                self._store_error(error)
            await backoff.wait()

    async def _upkeep(self) -> NoReturn:
        tick = min(1.0, self.queue.lease / 4)
        while True:
            try:
                await self.queue.heartbeat(self.slots, ttl=3 * tick + 1)
                reaped = await self.queue.reap()
                self._counts.taken_over += reaped.requeued + reaped.failed
            except Exception as error:
                self._store_error(error)
            await trio.sleep(tick)


async def run_redis_workers(
    settings: Settings,
    *,
    worker_id: str | None = None,
    task_status: trio.TaskStatus[RedisWorkers] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run OCR_WORKERS slots on the Redis queue until cancelled, or until
    :meth:`RedisWorkers.stop_taking` was called and the held units are done.

    Args:
        settings: REDIS_URL (required), OCR_WORKERS, OCR_ENGINE, OCR_TIMEOUT, OCR_LEASE,
            OCR_ATTEMPTS and the worker-process limits.
        worker_id: this process's id in the cluster (default :func:`new_worker_id`).
    """
    assert settings.redis_url is not None
    async with (
        open_store(settings.redis_url, blocking_slack=_IDLE_WAIT + 1) as client,
        trio_parallel.open_worker_context(
            idle_timeout=math.inf,
            init=partial(
                init,
                settings.ocr_engine,
                settings.ocr_max_tasks_per_worker,
                settings.ocr_worker_max_rss,
                EngineOptions(max_side=settings.ocr_max_side),
            ),
            retire=retire,
            grace_period=5.0,
        ) as context,
    ):
        workers = RedisWorkers(
            OCRQueue(client, lease=settings.ocr_lease, attempts=settings.ocr_attempts),
            context,
            engine=settings.ocr_engine,
            slots=settings.ocr_workers,
            timeout=settings.ocr_timeout,
            worker_id=worker_id or new_worker_id(),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(workers.run)
            task_status.started(workers)
