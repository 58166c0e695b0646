"""OCR through the Redis queue: the submitting instance's side, a drop-in for
:class:`~ocrstream.service.ocr.OCRService`.

:meth:`RedisOCR.recognize` puts the page in this instance's outbox and waits for its
outcome. One sender task (:meth:`RedisOCR.run`) queues whatever the outbox holds in one
round trip (pages asked for while a round trip is under way go in the next: batches grow
with the load, and a lone page goes at once), the first page of a file with the file's
bytes; Redis deletes the bytes with the file's last unit. One results-reader task hands
the outcomes over from this instance's results stream. Fairness lives in Redis, so
:meth:`RedisOCR.slot` holds nothing. Cancelling ``recognize`` (the job was cancelled)
drops the unit before it leaves this process's hands: still in the outbox, it is never
sent; queued, it never starts; being recognised, its worker kills it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import uuid
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

import trio

from ocrstream.core.errors import OCRError
from ocrstream.core.redis_url import redacted
from ocrstream.engines.worker import PageRequest
from ocrstream.service.ocr import OCRStatistics
from ocrstream.service.redis.connection import describe_error, open_redis
from ocrstream.service.redis.queue import (
    NewUnit,
    OCRQueue,
    QueueDepth,
    Result,
    file_key,
    is_store_error,
)
from ocrstream.service.redis.wire import decode_outcome, encode_error

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable

    import coredis

    from ocrstream.core.config import Settings
    from ocrstream.core.documents import Page

logger = logging.getLogger(__name__)

__all__ = [
    "CLEANUP_TIMEOUT",
    "NO_WORKER_PATIENCE",
    "STORE_PATIENCE_MARGIN",
    "RedisOCR",
    "open_store",
    "run_redis_ocr",
]

#: Seconds the shielded cleanup of a cancelled page may take (dropping its unit).
CLEANUP_TIMEOUT = 2.0
#: Seconds at least that pages wait for a worker to appear when none is alive anywhere
#: (OCR_LEASE, if longer: a worker may be restarting) before they fail.
NO_WORKER_PATIENCE = 5.0
#: Seconds a page waits for Redis beyond UPLOAD_TIMEOUT before it fails on its own.
STORE_PATIENCE_MARGIN = 5.0
#: Seconds a results read blocks in Redis before it looks again.
_READ_BLOCK = 1.0
#: Seconds the results reader lets outcomes gather after a read, while more are due
#: (a round trip per outcome would cap the rate; this is the latency it may add).
_READ_GATHER = 0.005
#: Results handed over are deleted from the stream in batches (see ``_read_results``).
_FORGET_EVERY = 100
_FORGET_AFTER = 0.1
#: Seconds between renewals of this instance's pending units and files.
_REFRESH_INTERVAL = 5.0
#: Backoff bounds (seconds) while Redis does not answer.
_BACKOFF = (0.05, 2.0)
#: Units, and bytes of files, that one round trip of the sender carries at most (a unit
#: with a bigger file goes alone).
_BATCH_UNITS = 200
_BATCH_BYTES = 8 * 1024 * 1024

_STOPPED = "this instance's OCR queue has stopped"
_UNREACHABLE = "the OCR queue's store (Redis) is unreachable"


class _State(enum.Enum):
    OUTBOX = enum.auto()  # waiting for the sender
    SENDING = enum.auto()  # in a round trip: queued or not, nobody knows yet
    QUEUED = enum.auto()  # in Redis (or done since)


@dataclass(slots=True)
class _File:
    name: str
    users: int = 0
    # Its bytes are in Redis, or on their way there with one of its units.
    stored: bool = False


@dataclass(slots=True, eq=False)
class _Waiter:
    uid: str
    job_id: str
    file: _File
    request: PageRequest
    data: bytes
    since: float  # when it entered the outbox
    state: _State = _State.OUTBOX
    sent: trio.Event | None = None  # set when its round trip has returned
    done: trio.Event = field(default_factory=trio.Event)
    outcome: bytes = b""
    missing: bool = False  # its unit was not in Redis at the last refresh
    drop: bool = False  # failed here, or cancelled while being sent: its unit is dropped


class RedisOCR:
    """Pages recognised by whichever worker of the cluster is free.

    Args:
        queue: the queue on this instance's Redis client.
        engine: OCR_ENGINE (reported in ``image_ocr_start``; the workers run theirs).
        instance_id: this instance's id: where outcomes for its pages are sent.
        store_patience: seconds a page waits for an unreachable Redis before it
            fails with ``ocr_failed``.
    """

    def __init__(
        self, queue: OCRQueue, *, engine: str, instance_id: str, store_patience: float = 30.0
    ) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self._queue = queue
        self._store_patience = store_patience
        self._waiters: dict[str, _Waiter] = {}
        self._files: dict[tuple[str, int], _File] = {}
        # Pages to queue, in the order they were asked for; the sender empties it.
        self._outbox: dict[str, _Waiter] = {}
        self._outbox_filled = trio.Event()
        self._depth = QueueDepth(0, 0, 0)
        # Since when no worker slot has been alive in the cluster while pages wait here.
        self._no_workers_since: float | None = None
        # Set once its owner (run_redis_ocr) stops: its Redis client is going away.
        self._stopped = False

    def slot(self, job_key: Hashable) -> AbstractAsyncContextManager[None]:
        """Nothing to wait for here: pages queue in Redis, fairly by job."""
        del job_key
        return contextlib.nullcontext()

    async def recognize(
        self,
        data: bytes,
        request: PageRequest | None = None,
        *,
        job_id: str,
        file_index: int,
    ) -> Page:
        """Read one page of file ``file_index`` of ``job_id`` (bytes ``data``) on a worker.

        The file's bytes go to Redis with its first pending page and are deleted once
        none of its pages is pending here.

        Raises:
            OCRError: ``ocr_timeout`` when recognition took longer than the worker's
                OCR_TIMEOUT; ``ocr_failed`` when the engine failed, the worker was lost
                on the last of OCR_ATTEMPTS tries, or Redis stayed unreachable.
        """
        request = request or PageRequest()
        if self._stopped:
            raise OCRError("ocr_failed", _STOPPED)
        file = self._files.get((job_id, file_index))
        if file is None:
            file = self._files[job_id, file_index] = _File(file_key(job_id, file_index))
        file.users += 1
        waiter = _Waiter(uuid.uuid4().hex, job_id, file, request, data, trio.current_time())
        self._waiters[waiter.uid] = waiter
        self._outbox[waiter.uid] = waiter
        self._outbox_filled.set()
        try:
            await waiter.done.wait()
        finally:
            del self._waiters[waiter.uid]
            file.users -= 1
            if file.users == 0 and self._files.get((job_id, file_index)) is file:
                del self._files[job_id, file_index]
            if waiter.state is _State.OUTBOX:
                self._outbox.pop(waiter.uid, None)  # never sent
            elif not waiter.done.is_set() or waiter.drop:
                await self._clean_up(waiter)
        outcome = decode_outcome(waiter.outcome)
        if isinstance(outcome, OCRError):
            raise outcome
        return outcome

    async def _clean_up(self, waiter: _Waiter) -> None:
        # A page sent that ends before its outcome came (cancelled, failed here): its
        # unit is dropped, so it never starts, or its worker kills it. Shielded so a
        # cancelled page still does this; bounded so a lost Redis cannot hold the job.
        # Once stopped, the client is gone: what was left expires with its TTL.
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            if waiter.state is _State.SENDING and waiter.sent is not None:
                await waiter.sent.wait()  # queued or not: its round trip tells
            if waiter.state is _State.OUTBOX:
                self._outbox.pop(waiter.uid, None)
                return
            if self._stopped:
                return
            try:
                await self._queue.abandon([waiter.uid])
            except Exception as error:
                # Stopped meanwhile: coredis refuses calls on its exited pool.
                if not (is_store_error(error) or self._stopped):
                    raise
                logger.warning("could not drop a cancelled page from Redis: %s", error)

    async def cancel_job(self, job_id: str) -> None:
        """Drop every unit of ``job_id`` cluster-wide (queued ones never start, running
        ones are killed) and its files; its pages still waiting here fail."""
        with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
            try:
                await self._queue.cancel_job(job_id)
            except Exception as error:
                if not is_store_error(error):
                    raise
                logger.warning("could not cancel a job's pages in Redis: %s", error)
        cancelled = encode_error(OCRError("ocr_failed", "the job was cancelled"))
        for waiter in self._waiters.values():
            if waiter.job_id == job_id:
                # Being sent, its unit may be queued after the job's were dropped.
                waiter.drop = waiter.drop or waiter.state is _State.SENDING
                self._resolve(waiter, cancelled)

    def statistics(self) -> OCRStatistics:
        """Cluster-wide, as of the last look (at most a second ago): busy = units being
        recognised, waiting = units queued, capacity = live worker slots."""
        depth = self._depth
        return OCRStatistics(busy=depth.leased, waiting=depth.queued, capacity=depth.workers)

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> NoReturn:
        """Send this instance's pages, read their outcomes and keep their units alive,
        until cancelled.

        Also reaps expired leases (any process may) and samples the queue's depth.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send)
            nursery.start_soon(self._read_results)
            nursery.start_soon(self._keep)
            task_status.started()
            await trio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Its owner is stopping: pages still waiting fail with ``ocr_failed`` (their
        units expire in Redis), and so does any page asked for later."""
        self._stopped = True
        stopped = encode_error(OCRError("ocr_failed", _STOPPED))
        for waiter in self._waiters.values():
            self._resolve(waiter, stopped)

    def _resolve(self, waiter: _Waiter, outcome: bytes) -> None:
        if not waiter.done.is_set():
            waiter.outcome = outcome
            waiter.done.set()

    async def _send(self) -> NoReturn:
        """Queue what the outbox holds, a batch per round trip, in the order asked for."""
        delay = _BACKOFF[0]
        while True:
            await self._outbox_filled.wait()
            self._outbox_filled = trio.Event()
            while self._outbox:
                batch, units = self._next_batch()
                if not batch:
                    continue
                sent = trio.Event()
                for waiter in batch:
                    waiter.state, waiter.sent = _State.SENDING, sent
                queued: list[bool] | None = None
                try:
                    queued = await self._queue.enqueue_many(units)
                except Exception as error:
                    if not is_store_error(error):
                        raise
                finally:
                    # Not queued (Redis did not answer: queued or not, nobody knows):
                    # back to the outbox, each file's first with its bytes again (a unit
                    # queued already is not queued twice).
                    self._return_to_outbox(batch, queued or [False] * len(batch))
                    sent.set()
                if queued is None:
                    self._fail_impatient()
                    await trio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF[1])
                else:
                    delay = _BACKOFF[0]

    def _next_batch(self) -> tuple[list[_Waiter], list[NewUnit]]:
        """The outbox's first pages (at least one), out of it; the first page of a file
        whose bytes are not stored carries them."""
        batch: list[_Waiter] = []
        units: list[NewUnit] = []
        taken: list[str] = []
        size = 0
        for waiter in self._outbox.values():
            data = None if waiter.file.stored else waiter.data
            if batch and (len(batch) >= _BATCH_UNITS or size + len(data or b"") > _BATCH_BYTES):
                break
            taken.append(waiter.uid)
            if waiter.done.is_set():
                continue  # ended meanwhile (failed here): nothing to send
            waiter.file.stored = True
            size += len(data or b"")
            batch.append(waiter)
            units.append(
                NewUnit(
                    uid=waiter.uid,
                    job_id=waiter.job_id,
                    owner=self.instance_id,
                    file=waiter.file.name,
                    request=waiter.request,
                    data=data,
                )
            )
        for uid in taken:
            del self._outbox[uid]
        return batch, units

    def _return_to_outbox(self, batch: list[_Waiter], queued: list[bool]) -> None:
        """Mark the batch's queued pages so; put the others back at the outbox's front,
        in order, their files' bytes to be sent again (Redis may not have them)."""
        again: dict[str, _Waiter] = {}
        for waiter, ok in zip(batch, queued, strict=True):
            if ok:
                waiter.state = _State.QUEUED
                continue
            waiter.state = _State.OUTBOX
            waiter.file.stored = False
            if not waiter.done.is_set():  # ended meanwhile: its clean-up wants it gone
                again[waiter.uid] = waiter
        if again:
            self._outbox = again | self._outbox
            self._outbox_filled.set()

    def _fail_impatient(self) -> None:
        """Pages that have waited for Redis longer than the store's patience fail."""
        now = trio.current_time()
        unreachable = encode_error(OCRError("ocr_failed", _UNREACHABLE))
        for waiter in list(self._outbox.values()):
            if now - waiter.since >= self._store_patience:
                self._resolve(waiter, unreachable)

    async def _read_results(self) -> NoReturn:
        after = b"0-0"
        # Handed over, deleted from the stream with a later read: every _FORGET_EVERY
        # entries, or _FORGET_AFTER seconds after the first (a few at a time would cost
        # a round trip's work each).
        handed_over: list[Result] = []
        since = 0.0
        delay = _BACKOFF[0]
        while True:
            now = trio.current_time()
            due = len(handed_over) >= _FORGET_EVERY or (
                bool(handed_over) and now - since >= _FORGET_AFTER
            )
            try:
                results = await self._queue.read_results(
                    self.instance_id,
                    after,
                    block=_READ_BLOCK,
                    forget=handed_over if due else (),
                )
            except Exception as error:
                if not is_store_error(error):
                    raise
                await trio.sleep(delay)
                delay = min(delay * 2, _BACKOFF[1])
                continue
            delay = _BACKOFF[0]
            if due:
                handed_over = []  # what is left at the end expires with the stream
            if not results:
                continue
            for result in results:
                after = result.entry_id
                waiter = self._waiters.get(result.uid)
                if waiter is not None:
                    self._resolve(waiter, result.outcome)
            if not handed_over:
                since = now
            handed_over += results
            if len(self._waiters) > len(results):
                # More outcomes are on their way: let a few gather, read them at once.
                await trio.sleep(_READ_GATHER)

    async def _keep(self) -> NoReturn:
        tick = min(1.0, self._queue.lease / 4)
        next_refresh = trio.current_time() + _REFRESH_INTERVAL
        while True:
            await trio.sleep(tick)
            try:
                await self._queue.reap()
                self._depth = await self._queue.depth()
                self._fail_without_workers()
                if trio.current_time() >= next_refresh:
                    next_refresh = trio.current_time() + _REFRESH_INTERVAL
                    await self._refresh()
            except Exception as error:
                if not is_store_error(error):
                    raise

    def _fail_without_workers(self) -> None:
        """Nothing waits for ever on a lost peer: when no worker slot is alive anywhere in
        the cluster for OCR_LEASE (at least NO_WORKER_PATIENCE) seconds, the pages waiting
        here fail with ``ocr_failed`` and their units are dropped."""
        if self._depth.workers > 0 or not self._waiters:
            self._no_workers_since = None
            return
        now = trio.current_time()
        if self._no_workers_since is None:
            self._no_workers_since = now
            return
        if now - self._no_workers_since < max(NO_WORKER_PATIENCE, self._queue.lease):
            return
        failed = encode_error(
            OCRError("ocr_failed", "no OCR worker is running anywhere in the cluster")
        )
        for waiter in list(self._waiters.values()):
            waiter.drop = True
            self._resolve(waiter, failed)

    async def _refresh(self) -> None:
        waiting = {uid: w for uid, w in self._waiters.items() if w.state is _State.QUEUED}
        missing = await self._queue.refresh(
            owner=self.instance_id,
            uids=waiting,
            files=[file.name for file in self._files.values() if file.stored],
            jobs=[waiter.job_id for waiter in waiting.values()],
        )
        lost = encode_error(OCRError("ocr_failed", "the OCR queue lost the page"))
        for uid, waiter in waiting.items():
            # Gone from Redis twice in a row (not merely done with its outcome on the
            # way): the store lost it (it restarted empty, say). Nobody would answer.
            if uid in missing and waiter.missing:
                self._resolve(waiter, lost)
            waiter.missing = uid in missing


@asynccontextmanager
async def open_store(
    url: str, *, blocking_slack: float = 0.0
) -> AsyncIterator[coredis.Redis[bytes]]:
    """A connected client of ``url``, waiting (with backoff, for ever) while Redis is
    unreachable at start-up; the client itself reconnects later on.

    Args:
        url: REDIS_URL.
        blocking_slack: see :func:`~ocrstream.service.redis.connection.open_redis`.
    """
    delay = _BACKOFF[0]
    while True:
        attempt = contextlib.AsyncExitStack()
        try:
            client = await attempt.enter_async_context(
                open_redis(url, blocking_slack=blocking_slack)
            )
            await client.ping()
        except BaseException as error:
            # Close what the attempt opened (coredis's task group) whatever ended it, a
            # cancellation too: left open, its nursery would corrupt this task's.
            with contextlib.suppress(Exception):
                await attempt.__aexit__(type(error), error, error.__traceback__)
            if not (isinstance(error, Exception) and is_store_error(error)):
                raise
            logger.warning(
                "Redis %s is unreachable (%s); retrying in %.1f s",
                redacted(url),
                describe_error(error),
                delay,
            )
        else:
            break
        await trio.sleep(delay)
        delay = min(delay * 2, 5.0)
    async with attempt:
        yield client


async def run_redis_ocr(
    settings: Settings,
    *,
    instance_id: str,
    task_status: trio.TaskStatus[RedisOCR] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Own a :class:`RedisOCR` on its own client until cancelled; hands it back.

    Args:
        settings: REDIS_URL (required), OCR_LEASE, OCR_ATTEMPTS, OCR_ENGINE, UPLOAD_TIMEOUT.
        instance_id: this instance's id.
    """
    assert settings.redis_url is not None
    async with open_store(settings.redis_url, blocking_slack=_READ_BLOCK + 1) as client:
        queue = OCRQueue(client, lease=settings.ocr_lease, attempts=settings.ocr_attempts)
        service = RedisOCR(
            queue,
            engine=settings.ocr_engine,
            instance_id=instance_id,
            # Longer than the store's own patience: past UPLOAD_TIMEOUT without Redis the
            # job ends with store_unavailable (service/redis/store.py), not its pages with
            # ocr_failed.
            store_patience=settings.upload_timeout + STORE_PATIENCE_MARGIN,
        )
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                task_status.started(service)
                await trio.sleep_forever()
        finally:
            # Before the client closes: pages of callers that outlive this (a job still
            # running while the app stops) fail at once instead of using a closed client.
            service.stop()
    raise AssertionError("unreachable")  # pragma: no cover
