"""The worker side of the Redis OCR queue: OCR_WORKERS slots taking pages from it.

Each slot recognises the next unit its process took (fair by job: the queue's order) in
a trio-parallel worker process (the engine loaded once per process, killed on cancel).
The process's round trips to the queue are one task's (:mod:`~ocrstream.service.redis.
exchange`): the outcomes of the slots go back and the next units come in the same round
trip, several at a time while the slots are busy, and behind short units some are taken
ahead so that no slot waits for a round trip; file bytes are kept for the next unit of
the same file (a PDF's pages come one after another). One task per process listens to the
``cancel`` channel and kills the unit of a cancelled page or job at once; a lease renewal
that finds the unit gone does the same, should a message be missed. Redis unreachable:
every loop backs off and retries; nothing crashes, nothing spins.

``ocrstream worker`` runs these slots; so does ``ocrstream serve`` with REDIS_URL set and
OCR_WORKERS > 0 (the slots are one nursery task, :func:`run_redis_workers`).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import uuid
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, NoReturn

import anyio
import trio
import trio_parallel

from ocrstream.core.errors import OCRError
from ocrstream.engines.base import EngineOptions
from ocrstream.engines.worker import init, recognize_page, retire
from ocrstream.service.redis.connection import describe_error
from ocrstream.service.redis.exchange import IDLE_WAIT, Backoff, Counts, Exchange
from ocrstream.service.redis.ocr import open_store
from ocrstream.service.redis.queue import CANCEL_CHANNEL, OCRQueue, is_store_error
from ocrstream.service.redis.wire import encode_error, encode_page

if TYPE_CHECKING:
    from ocrstream.core.config import Settings
    from ocrstream.engines.worker import PageRequest
    from ocrstream.service.redis.exchange import Held
    from ocrstream.service.redis.queue import Unit

logger = logging.getLogger(__name__)

__all__ = ["RedisWorkers", "WorkerStatistics", "new_worker_id", "run_redis_workers"]


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
    handed_back: int
    store_errors: int


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
        self._counts = Counts()
        self._exchange = Exchange(
            queue,
            worker_id=worker_id,
            slots=slots,
            counts=self._counts,
            store_error=self._store_error,
        )
        self._slots_scope = trio.CancelScope()

    def statistics(self) -> WorkerStatistics:
        """Counts for ``/metrics`` and tests."""
        counts = self._counts
        return WorkerStatistics(
            capacity=len(self.slots),
            busy=self._exchange.running,
            done=counts.done,
            failed=counts.failed,
            cancelled=counts.cancelled,
            taken_over=counts.taken_over,
            handed_back=counts.handed_back,
            store_errors=counts.store_errors,
        )

    def stop_taking(self, *, grace: float = math.inf) -> None:
        """Take no more units; the ones being recognised run on for ``grace`` seconds,
        then they are handed back to the queue (another worker takes them at once, and the
        try does not count), as are at once those taken ahead. :meth:`run` returns once no
        unit is held.

        Stop this way rather than by cancelling the owner of the Redis client: the
        client's own connection tasks live under that owner, and the hand-back needs them.
        """
        self._exchange.stop_taking()
        if grace < math.inf:
            self._slots_scope.deadline = min(
                self._slots_scope.deadline, trio.current_time() + grace
            )

    @property
    def busy(self) -> int:
        """Units being recognised now."""
        return self._exchange.running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the slots, their round trips, the cancel listener and the upkeep until
        cancelled; returns once :meth:`stop_taking` was called and the held units are
        done."""
        exchange = self._exchange
        async with trio.open_nursery() as nursery:
            await nursery.start(self._listen)
            nursery.start_soon(self._upkeep)
            nursery.start_soon(exchange.renew)
            nursery.start_soon(exchange.wait_for_work)
            async with trio.open_nursery() as exchanging:
                exchanging.start_soon(exchange.run)
                with self._slots_scope:
                    async with trio.open_nursery() as slots:
                        for _ in self.slots:
                            slots.start_soon(self._warm_up)
                            slots.start_soon(self._slot)
                        task_status.started()
                exchange.slots_done()  # it hands the last outcomes over, then returns
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

    async def _slot(self) -> None:
        while (held := await self._exchange.next_unit()) is not None:
            outcome: bytes | None = None
            try:
                outcome = await self._work(held)
            finally:
                self._exchange.finish(held, outcome)

    async def _work(self, held: Held) -> bytes | None:
        """Recognise a unit; returns its outcome (None: it was cancelled)."""
        unit = held.unit
        data = self._exchange.file_bytes(unit)
        finished = False
        try:
            with held.scope:
                if data is None:
                    outcome = encode_error(
                        OCRError("ocr_failed", "the file's bytes are no longer in the store")
                    )
                else:
                    outcome = await self._recognize(data, unit.request)
            finished = True
        finally:
            if not finished:
                await self._release(unit)  # stopping: hand it back
        if held.scope.cancelled_caught or held.scope.cancel_called:
            self._counts.cancelled += 1
            return None
        return outcome

    async def _release(self, unit: Unit) -> None:
        # Stopping mid-unit: hand it back so another worker takes it at once rather than
        # after its lease, and this try does not count.
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            try:
                if await self.queue.release(unit, self.worker_id):
                    self._counts.handed_back += 1
            except Exception as error:
                self._store_error(error)

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

    async def _listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        backoff = Backoff()
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
                            self._exchange.cancel(name)
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
        open_store(settings.redis_url, blocking_slack=IDLE_WAIT + 1) as client,
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
