"""The job registry: live jobs and recently finished ones, and their readers.

Publishing is synchronous and never waits on a reader: it appends to the job's
history (see :mod:`ocrstream.core.jobs`) and rings a doorbell. Every reader, the
uploader included, reads the history through its own cursor, so a slow reader only
ever delays itself, and one that was away catches up with everything in one chunk.

Retention costs O(1) per job however many are kept: finished jobs queue in the order
they finished, and expiry only ever looks at the front of that queue (the oldest),
dropping it once it is past RESULT_TTL or beyond the cap. A job that still has readers
when its time comes is set aside rather than dropped under them, and goes when its
last reader leaves. (With the Redis backend, expiry is Redis's own: keys with a TTL.)
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
import trio.lowlevel

from ocrstream.core.events import ErrorInfo, Event, ProcessingError
from ocrstream.core.jobs import JobRecord
from ocrstream.core.sse import encode_event, id_line
from ocrstream.service.cursor import ClosingCursor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ocrstream.core.documents import Document
    from ocrstream.core.envelope import Envelope
    from ocrstream.service.memory.originals import OriginalFiles

__all__ = ["JobCursor", "JobHandle", "JobRegistry", "RegistryStatistics"]


class JobHandle:
    """A job's record plus what the I/O shell needs to drive it.

    Attributes:
        record: the pure history and state.
        cancel_scope: the scope the job's tasks run in; cancelling it ends them.
        cancel_reason: the ``processing_error`` code to report when cancelled from outside.
        reader_count: readers following the job now.
        done: set when the job's task has ended (after its terminal event and any drain).
    """

    __slots__ = (
        "_changed",
        "_documents",
        "_expired",
        "_registry",
        "_wire",
        "cancel_reason",
        "cancel_scope",
        "done",
        "reader_count",
        "record",
    )

    def __init__(self, record: JobRecord, registry: JobRegistry) -> None:
        self.record = record
        self.cancel_scope = trio.CancelScope()
        self.cancel_reason = "client_disconnected"
        self._registry = registry
        # Replaced after each publish; None once the job has ended (nothing will come).
        self._changed: trio.Event | None = trio.Event()
        self.reader_count = 0
        # Past its time while still read: dropped when its last reader leaves.
        self._expired = False
        # Each event's ``id:`` line and its frame's other bytes, alternately: ``_wire[2 *
        # seq]`` is ``id: <seq>``, ``_wire[2 * seq + 1]`` the same bytes the firehose sends.
        self._wire: list[bytes] = []
        self.done = trio.Event()
        # Recognised files' pages with their words, for the results route.
        self._documents: dict[int, Document] = {}

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.record.job_id

    @property
    def frames(self) -> list[bytes]:
        """``frames[seq]``: the SSE frame of ``record.history[seq]`` (its id is its seq)."""
        wire = self._wire
        return [wire[index] + wire[index + 1] for index in range(0, len(wire), 2)]

    def publish(self, event: Event) -> Envelope:
        """Record ``event`` and wake every reader; never blocks.

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

    def publish_remote(self, envelope: Envelope, frame: bytes) -> None:
        """Record an event sequenced by another instance, with the frame bytes it sent
        (so this instance's readers get the same bytes), and wake every reader.

        Raises:
            JobClosedError: the job already ended.
            ValueError: not the next seq.
        """
        self.record.append(envelope, now=trio.current_time())
        self._recorded(envelope, frame)

    def _recorded(self, envelope: Envelope, frame: bytes | None = None) -> None:
        # Encoded once here, however many readers send it, the firehose's included.
        assert envelope.seq is not None
        self._wire += (id_line(envelope.seq), encode_event(envelope) if frame is None else frame)
        self._registry._published(self, envelope)
        changed = self._changed
        assert changed is not None, "nothing is published after the terminal event"
        self._changed = None if envelope.is_terminal else trio.Event()
        changed.set()

    async def wait_changed(self) -> None:
        """Wait until the next event is published (a checkpoint only, once the job ended)."""
        changed = self._changed
        if changed is None:
            await trio.lowlevel.checkpoint()
        else:
            await changed.wait()

    async def wait_first_event(self) -> None:
        """Return once the job has published its first event (at once if it has)."""
        while self.record.next_seq == 0:
            await self.wait_changed()

    async def keep_result(self, document: Document, data: bytes) -> None:
        """Keep a recognised file's pages and (on disk) its bytes while the job is kept;
        with a results sink (several instances), hand them to it too."""
        originals = self._registry.originals
        if originals is not None:
            await originals.save(self.job_id, document.file_index, data)
        sink = self._registry.results_sink
        if sink is not None:
            await sink(self.job_id, document, data)
        self._documents[document.file_index] = document

    def document(self, file_index: int) -> Document | None:
        """A recognised file's pages, or None."""
        return self._documents.get(file_index)

    async def original(self, file_index: int) -> bytes | None:
        """A recognised file's kept bytes, or None."""
        originals = self._registry.originals
        if originals is None or file_index not in self._documents:
            return None
        return await originals.load(self.job_id, file_index)


class JobCursor(ClosingCursor):
    """One reader's cursor over a job's history."""

    __slots__ = ("handle", "position")

    def __init__(self, handle: JobHandle, after: int | None) -> None:
        super().__init__()
        self.handle = handle
        self.position = after
        handle.reader_count += 1
        handle._registry._readers += 1

    def _release(self) -> None:
        handle = self.handle
        handle.reader_count -= 1
        handle._registry._readers -= 1
        if handle._expired and handle.reader_count == 0:
            handle._registry._drop(handle)

    @property
    def exhausted(self) -> bool:
        """True once the terminal event has been taken."""
        record = self.handle.record
        return (
            record.finished and self.position is not None and self.position >= record.next_seq - 1
        )

    async def wait_available(self) -> None:
        """Return at once if events are waiting, else when the next one is published."""
        if self.handle.record.events_after(self.position) or self.exhausted:
            return
        await self.handle.wait_changed()

    def take_frames(self) -> bytes:
        """The waiting events as SSE bytes, ``id:`` being each event's seq."""
        start = 0 if self.position is None else self.position + 1
        wire = self.handle._wire
        if 2 * start >= len(wire):
            return b""
        self.position = len(wire) // 2 - 1
        return b"".join(wire[2 * start :])


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    """A snapshot of the registry, for /metrics and tests."""

    jobs: int
    running_jobs: int
    readers: int


class JobRegistry:
    """Jobs by id, with finished ones kept for ``result_ttl`` seconds.

    Args:
        result_ttl: seconds a finished job stays readable (RESULT_TTL).
        max_retained: finished jobs kept at most, oldest dropped first, so memory
            stays bounded whatever the request rate.
        on_publish: sync callables given every published event (the firehose ring,
            the metrics); they must not block.
        originals: where recognised files' bytes are kept (None: not kept, so no
            searchable PDF can be made).
    """

    def __init__(
        self,
        *,
        result_ttl: float,
        max_retained: int = 10_000,
        on_publish: Sequence[Callable[[Envelope], object]] = (),
        originals: OriginalFiles | None = None,
    ) -> None:
        self.originals = originals
        #: Where recognised files' results also go (the shared store), if anywhere.
        self.results_sink: Callable[[str, Document, bytes], Awaitable[None]] | None = None
        self._result_ttl = result_ttl
        self._max_retained = max_retained
        self._on_publish = tuple(on_publish)
        self._jobs: dict[str, JobHandle] = {}
        self._running: dict[JobHandle, None] = {}
        # Finished jobs in the order they finished (so by finished_at): the front goes first.
        self._finished: deque[JobHandle] = deque()
        self._readers = 0
        self._job_ended = trio.Event()

    def create(self) -> JobHandle:
        """Register a new running job under a random UUID4."""
        return self.adopt(JobRecord(job_id=str(uuid.uuid4())))

    def adopt(self, record: JobRecord) -> JobHandle:
        """Register a running job with ``record`` (a job another instance runs, whose
        events this one mirrors)."""
        self.expire()
        handle = JobHandle(record, self)
        self._jobs[handle.job_id] = handle
        self._running[handle] = None
        return handle

    def get(self, job_id: str) -> JobHandle | None:
        """The job, or None if unknown or expired."""
        self.expire()
        return self._jobs.get(job_id)

    def running(self) -> list[JobHandle]:
        """Jobs that have not ended yet, oldest first."""
        return list(self._running)

    def expire(self) -> None:
        """Drop finished jobs past their TTL, and the oldest beyond ``max_retained``.

        Amortised O(1): each finished job is looked at here once, when it reaches the
        front of the queue; a job that is still being read is set aside until its last
        reader leaves (it stays readable meanwhile, so that reader may reconnect).
        """
        finished = self._finished
        if not finished:
            return
        oldest_kept = trio.current_time() - self._result_ttl
        while finished:
            handle = finished[0]
            finished_at = handle.record.finished_at
            assert finished_at is not None
            if len(finished) <= self._max_retained and finished_at > oldest_kept:
                return
            finished.popleft()
            if handle.reader_count:
                handle._expired = True
            else:
                self._drop(handle)

    def subscribe(self, handle: JobHandle, *, after: int | None = None) -> JobCursor:
        """Follow ``handle`` from after seq ``after``; close the cursor (or use it
        in ``with``) to stop (sync, so it is safe in cleanup after cancellation)."""
        return JobCursor(handle, after)

    def statistics(self) -> RegistryStatistics:
        """Counts for /metrics and tests."""
        return RegistryStatistics(
            jobs=len(self._jobs),
            running_jobs=len(self._running),
            readers=self._readers,
        )

    async def wait_none_running(self) -> None:
        """Wait until every registered job has ended."""
        while self._running:
            await self._job_ended.wait()

    def _drop(self, handle: JobHandle) -> None:
        self._jobs.pop(handle.job_id, None)
        if self.originals is not None and handle._documents:
            self.originals.drop(handle.job_id)

    def _published(self, handle: JobHandle, envelope: Envelope) -> None:
        for listener in self._on_publish:
            listener(envelope)
        if envelope.is_terminal:
            del self._running[handle]
            self._finished.append(handle)
            self._job_ended.set()
            self._job_ended = trio.Event()
