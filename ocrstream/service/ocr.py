"""OCR as a service to jobs: a fair queue in front of killable worker processes.

The unit of work is the page. Every page of every valid file of every job asks
:meth:`OCRService.slot` for one of OCR_WORKERS slots. Waiting pages are served
round-robin *by job* (then in the order they asked: file by file, page by page), so a
20-page PDF keeps every worker busy, yet a 1-file upload that arrives after it gets the
next free slot. Inside a slot the page goes to a trio-parallel worker process;
cancelling the job kills that process (``kill_on_cancel``) and frees the CPU at once,
and pages still waiting for a slot never start.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict, deque
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio
import trio_parallel

from ocrstream.core.errors import OCRError
from ocrstream.engines.base import EngineOptions
from ocrstream.engines.worker import PageRequest, init, recognize_page, retire

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Iterator

    from ocrstream.core.config import Settings
    from ocrstream.core.documents import Page

logger = logging.getLogger(__name__)

__all__ = ["FairScheduler", "OCRService", "OCRStatistics", "open_ocr_service", "run_ocr_service"]


class FairScheduler:
    """``capacity`` slots shared round-robin between keys (jobs).

    Args:
        capacity: slots available at once (OCR_WORKERS).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._waiting: OrderedDict[Hashable, deque[trio.Event]] = OrderedDict()

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return sum(len(queue) for queue in self._waiting.values())

    async def acquire(self, key: Hashable) -> None:
        """Wait for a slot; waiters of different keys take turns."""
        if self.in_use < self.capacity and not self._waiting:
            self.in_use += 1
            await trio.lowlevel.checkpoint()
            return
        granted = trio.Event()
        self._waiting.setdefault(key, deque()).append(granted)
        try:
            await granted.wait()
        except BaseException:
            if granted.is_set():
                self.release()  # granted as we were cancelled: pass the slot on
            else:
                queue = self._waiting[key]
                queue.remove(granted)
                if not queue:
                    del self._waiting[key]
            raise

    def release(self) -> None:
        """Give the slot to the next key in turn, or free it."""
        if self._waiting:
            key, queue = next(iter(self._waiting.items()))
            granted = queue.popleft()
            if queue:
                self._waiting.move_to_end(key)  # its other files wait for their turn
            else:
                del self._waiting[key]
            granted.set()  # the slot passes on directly; in_use is unchanged
            return
        self.in_use -= 1

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        """Hold one slot for the body of the ``async with``."""
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()


@dataclass(frozen=True, slots=True)
class OCRStatistics:
    """Counts for /metrics and tests."""

    busy: int
    waiting: int
    capacity: int


class OCRService:
    """Runs engine ``engine`` in the workers of ``context`` under a fair scheduler.

    Args:
        context: the trio-parallel worker context (owned by :func:`open_ocr_service`).
        engine: the engine name.
        workers: OCR_WORKERS.
        timeout: OCR_TIMEOUT seconds per image.
    """

    def __init__(
        self, context: trio_parallel.WorkerContext, *, engine: str, workers: int, timeout: float
    ) -> None:
        self.engine = engine
        self._context = context
        self._timeout = timeout
        self._scheduler = FairScheduler(workers)
        # The scheduler already bounds concurrency; this only stops trio-parallel's
        # default (CPU count) limiter from adding a second, different bound.
        self._limiter = trio.CapacityLimiter(workers)

    def slot(self, job_key: Hashable) -> AbstractAsyncContextManager[None]:
        """Wait for this job's turn at a worker (an async context manager)."""
        return self._scheduler.slot(job_key)

    async def recognize(
        self,
        data: bytes,
        request: PageRequest | None = None,
        *,
        job_id: str | None = None,
        file_index: int | None = None,
    ) -> Page:
        """Read one page of the file ``data`` in a worker process (an image's only page
        when ``request`` is None); call it while holding a slot.

        ``job_id`` and ``file_index`` name the file for the Redis queue's service
        (:class:`~ocrstream.service.redis.ocr.RedisOCR`), which shares this call; here
        they change nothing.

        Raises:
            OCRError: ``ocr_timeout`` past OCR_TIMEOUT (the worker is killed), or
                ``ocr_failed`` when the engine raised or its worker died.
        """
        del job_id, file_index
        with trio.move_on_after(self._timeout) as deadline:
            try:
                page: Page = await self._context.run_sync(
                    partial(recognize_page, self.engine, data, request or PageRequest()),
                    kill_on_cancel=True,
                    limiter=self._limiter,
                )
                return page
            except trio_parallel.BrokenWorkerError:
                raise OCRError("ocr_failed", "the OCR worker process died") from None
            except (trio.Cancelled, OCRError):
                raise
            except Exception as error:
                detail = f"{type(error).__name__}: {error}"[:200]
                raise OCRError("ocr_failed", f"the OCR engine failed: {detail}") from None
        assert deadline.cancelled_caught
        raise OCRError(
            "ocr_timeout", f"OCR of a page took longer than {self._timeout:g} seconds (OCR_TIMEOUT)"
        )

    async def warm_up(self) -> None:
        """Start one worker (it loads its model in ``init``); failures show up later."""
        with contextlib.suppress(trio_parallel.BrokenWorkerError):
            await self._context.run_sync(bool, kill_on_cancel=True, limiter=self._limiter)

    def statistics(self) -> OCRStatistics:
        """Busy and waiting slots."""
        return OCRStatistics(
            busy=self._scheduler.in_use,
            waiting=self._scheduler.waiting,
            capacity=self._scheduler.capacity,
        )


@asynccontextmanager
async def open_ocr_service(
    *,
    engine: str,
    workers: int,
    ocr_timeout: float,
    max_tasks_per_worker: int,
    max_worker_rss: int,
    engine_options: EngineOptions | None = None,
) -> AsyncIterator[OCRService]:
    """Start the worker pool for ``engine``; workers are spawned on demand and kept warm.

    Args:
        engine: engine name (see :data:`ocrstream.engines.worker.ENGINE_MODULES`).
        workers: OCR_WORKERS.
        ocr_timeout: OCR_TIMEOUT seconds per image.
        max_tasks_per_worker: images a worker recognises before it is replaced.
        max_worker_rss: bytes of resident memory past which a worker is replaced.
        engine_options: what the settings tell the engine (None: its defaults).
    """
    async with trio_parallel.open_worker_context(
        idle_timeout=math.inf,
        init=partial(init, engine, max_tasks_per_worker, max_worker_rss, engine_options),
        retire=retire,
        grace_period=5.0,
    ) as context:
        yield OCRService(context, engine=engine, workers=workers, timeout=ocr_timeout)


@contextlib.contextmanager
def _logged_pool_errors() -> Iterator[None]:
    # A worker that did not stop cleanly at shutdown is worth a line in the log, not a
    # crash of the app's lifespan.
    try:
        yield
    except* trio_parallel.BrokenWorkerError as group:
        logger.warning("OCR workers did not stop cleanly: %s", group.exceptions[0])


async def run_ocr_service(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[tuple[OCRService, trio.CancelScope]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own the worker pool until cancelled; hands back the service and its stop switch.

    Workers are started (and their model loaded) in the background right away, so
    the first request does not pay for it.
    """
    with trio.CancelScope() as scope, _logged_pool_errors():
        async with (
            open_ocr_service(
                engine=settings.ocr_engine,
                workers=settings.ocr_workers,
                ocr_timeout=settings.ocr_timeout,
                max_tasks_per_worker=settings.ocr_max_tasks_per_worker,
                max_worker_rss=settings.ocr_worker_max_rss,
                engine_options=EngineOptions(max_side=settings.ocr_max_side),
            ) as service,
            trio.open_nursery() as nursery,
        ):
            for _ in range(settings.ocr_workers):
                nursery.start_soon(service.warm_up)
            task_status.started((service, scope))
            await trio.sleep_forever()
