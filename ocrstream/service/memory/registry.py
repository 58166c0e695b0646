"""The job registry: live jobs and recently finished ones, and their subscribers.

Publishing is synchronous and never waits on a reader: it appends to the job's
history (see :mod:`ocrstream.core.jobs`) and rings a doorbell. Every subscriber, the
uploader included, reads the history through its own cursor, so a slow reader only
ever delays itself, and one that was away catches up with everything in one chunk.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ocrstream.core.events import Envelope, ErrorInfo, Event, ProcessingError
from ocrstream.core.jobs import JobRecord
from ocrstream.core.sse import encode
from ocrstream.service.cursor import ClosingCursor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["JobHandle", "JobRegistry", "RegistryStatistics", "Subscription"]


class JobHandle:
    """A job's record plus what the I/O shell needs to drive it.

    Attributes:
        record: the pure history and state.
        cancel_scope: the scope the job's tasks run in; cancelling it ends them.
        cancel_reason: the ``processing_error`` code to report when cancelled from outside.
    """

    def __init__(self, record: JobRecord, registry: JobRegistry) -> None:
        self.record = record
        self.cancel_scope = trio.CancelScope()
        self.cancel_reason = "client_disconnected"
        self._registry = registry
        self._changed = trio.Event()
        self.subscriber_count = 0
        #: ``frames[seq]`` is the SSE encoding of ``record.history[seq]``.
        self.frames: list[bytes] = []
        #: Set when the job's task has ended (after its terminal event and any drain).
        self.done = trio.Event()

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.record.job_id

    def publish(self, event: Event) -> Envelope:
        """Record ``event`` and wake every subscriber; never blocks.

        Raises:
            JobClosedError: the job already ended.
        """
        envelope = self.record.record(event, now=trio.current_time())
        self._recorded(envelope)
        return envelope

    def end_with_error(self, code: str, message: str) -> Envelope | None:
        """Record a terminal ``processing_error`` unless the job already ended."""
        envelope = self.record.fail(
            ProcessingError(error=ErrorInfo(code=code, message=message)),
            now=trio.current_time(),
        )
        if envelope is not None:
            self._recorded(envelope)
        return envelope

    def cancel(self, reason: str) -> None:
        """End the job's tasks from outside; it will report ``reason``."""
        self.cancel_reason = reason
        self.cancel_scope.cancel()

    def _recorded(self, envelope: Envelope) -> None:
        # Encoded once here, however many readers send it (its id is its seq).
        self.frames.append(encode(envelope))
        self._registry._published(envelope)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Wait until the next event is published."""
        await self._changed.wait()

    async def wait_first_event(self) -> None:
        """Return once the job has published its first event (at once if it has)."""
        while self.record.next_seq == 0:
            await self.wait_changed()


class Subscription(ClosingCursor):
    """One reader's cursor over a job's history."""

    __slots__ = ("cursor", "handle")

    def __init__(self, handle: JobHandle, after: int | None) -> None:
        super().__init__()
        self.handle = handle
        self.cursor = after
        handle.subscriber_count += 1

    def _release(self) -> None:
        self.handle.subscriber_count -= 1

    @property
    def exhausted(self) -> bool:
        """True once the terminal event has been taken."""
        record = self.handle.record
        return record.finished and self.cursor is not None and self.cursor >= record.next_seq - 1

    def take_nowait(self) -> list[Envelope]:
        """Every event after the cursor (possibly none); advances the cursor."""
        batch = self.handle.record.events_after(self.cursor)
        if batch:
            self.cursor = batch[-1].seq
        return batch

    async def wait_available(self) -> None:
        """Return at once if events are waiting, else when the next one is published."""
        if self.handle.record.events_after(self.cursor) or self.exhausted:
            return
        await self.handle.wait_changed()

    def take_frames(self) -> bytes:
        """The waiting events as SSE bytes, ``id:`` being each event's seq."""
        start = 0 if self.cursor is None else self.cursor + 1
        frames = self.handle.frames[start:]
        self.cursor = start + len(frames) - 1 if frames else self.cursor
        return b"".join(frames)


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    """A snapshot of the registry, for /metrics and tests."""

    jobs: int
    running_jobs: int
    subscribers: int


class JobRegistry:
    """Jobs by id, with finished ones kept for ``result_ttl`` seconds.

    Args:
        result_ttl: seconds a finished job stays readable (RESULT_TTL).
        max_retained: finished jobs kept at most, oldest dropped first, so memory
            stays bounded whatever the request rate.
        on_publish: sync callables given every published event (the firehose ring,
            the metrics); they must not block.
    """

    def __init__(
        self,
        *,
        result_ttl: float,
        max_retained: int = 10_000,
        on_publish: Sequence[Callable[[Envelope], object]] = (),
    ) -> None:
        self._result_ttl = result_ttl
        self._max_retained = max_retained
        self._on_publish = tuple(on_publish)
        self._jobs: OrderedDict[str, JobHandle] = OrderedDict()
        self._job_ended = trio.Event()

    def create(self) -> JobHandle:
        """Register a new running job under a random UUID4."""
        self.expire()
        handle = JobHandle(JobRecord(job_id=str(uuid.uuid4())), self)
        self._jobs[handle.job_id] = handle
        return handle

    def get(self, job_id: str) -> JobHandle | None:
        """The job, or None if unknown or expired."""
        self.expire()
        return self._jobs.get(job_id)

    def running(self) -> list[JobHandle]:
        """Jobs that have not ended yet."""
        return [handle for handle in self._jobs.values() if not handle.record.finished]

    def expire(self) -> None:
        """Drop finished jobs past their TTL, and the oldest beyond ``max_retained``."""
        now = trio.current_time()
        finished = [
            handle
            for handle in self._jobs.values()
            if handle.record.finished_at is not None and handle.subscriber_count == 0
        ]
        excess = len(finished) - self._max_retained
        for position, handle in enumerate(finished):
            finished_at = handle.record.finished_at
            assert finished_at is not None
            if position < excess or now - finished_at >= self._result_ttl:
                del self._jobs[handle.job_id]

    def subscribe(self, handle: JobHandle, *, after: int | None = None) -> Subscription:
        """Follow ``handle`` from after seq ``after``; close the subscription (or use it
        in ``with``) to stop (sync, so it is safe in cleanup after cancellation)."""
        return Subscription(handle, after)

    def statistics(self) -> RegistryStatistics:
        """Counts for /metrics and tests."""
        handles = list(self._jobs.values())
        return RegistryStatistics(
            jobs=len(handles),
            running_jobs=sum(1 for handle in handles if not handle.record.finished),
            subscribers=sum(handle.subscriber_count for handle in handles),
        )

    async def wait_none_running(self) -> None:
        """Wait until every registered job has ended."""
        while self.running():
            await self._job_ended.wait()

    def _published(self, envelope: Envelope) -> None:
        for listener in self._on_publish:
            listener(envelope)
        if envelope.is_terminal:
            self._job_ended.set()
            self._job_ended = trio.Event()
