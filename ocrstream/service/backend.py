"""The backend seam: what the routes and the pipeline need of jobs, their histories and
the broadcast of every job's events, whichever backend holds them.

The embedded backend (:mod:`ocrstream.service.memory`) keeps everything in this
process. A second backend (several instances sharing one Redis) plugs in here by
implementing the same three interfaces; the HTTP layer and the pipeline talk to these
only (``http/state.py`` holds a :class:`JobStore` and an :class:`EventBroadcast`, the
pipeline drives a :class:`Job`). The OCR queue's seam is
:class:`ocrstream.service.ocr.OCRService` (``slot()`` then ``recognize()``).

Readers read through cursors (:mod:`ocrstream.service.cursor`): sync, idempotent
``close()``, so unsubscribing is safe in cleanup that runs after cancellation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Hashable, Sequence
    from contextlib import AbstractAsyncContextManager

    import trio

    from ocrstream.core.documents import Document, Page
    from ocrstream.core.envelope import Envelope
    from ocrstream.core.events import Event
    from ocrstream.core.jobs import JobRecord
    from ocrstream.engines.worker import PageRequest
    from ocrstream.service.cursor import Cursor, WaitableCursor
    from ocrstream.service.ocr import OCRStatistics

__all__ = ["OCR", "EventBroadcast", "Job", "JobStore", "JobT"]


class Job(Protocol):
    """One job as the pipeline drives it and the routes read it."""

    @property
    def job_id(self) -> str:
        """The job's random UUID4."""
        ...

    @property
    def record(self) -> JobRecord:
        """Its history, state and per-file results (pure; see ``core/jobs.py``)."""
        ...

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """The scope its tasks run in; cancelling it ends them."""
        ...

    @property
    def cancel_reason(self) -> str:
        """The ``processing_error`` code it reports when cancelled from outside."""
        ...

    @property
    def done(self) -> trio.Event:
        """Set when the job's task has ended (after its terminal event and any drain)."""
        ...

    def publish(self, event: Event) -> Envelope:
        """Record ``event`` with the next seq and wake its readers; never blocks."""
        ...

    def end_with_error(self, code: str, message: str) -> Envelope | None:
        """Record a terminal ``processing_error`` unless the job already ended."""
        ...

    def cancel(self, reason: str) -> None:
        """End the job's tasks from outside; it will report ``reason``."""
        ...

    async def wait_first_event(self) -> None:
        """Return once the job has published its first event."""
        ...

    async def keep_result(self, document: Document, data: bytes) -> None:
        """Keep a recognised file's pages (with their words) and its bytes for the
        results route, for as long as the job is kept."""
        ...

    def document(self, file_index: int) -> Document | None:
        """A recognised file's pages, or None when it has none (yet)."""
        ...

    async def original(self, file_index: int) -> bytes | None:
        """A recognised file's bytes, or None when they are not kept."""
        ...


JobT = TypeVar("JobT", bound=Job)


class JobStore(Protocol[JobT]):
    """Every job (each backend's own :class:`Job` type): the running ones and the
    finished ones kept for RESULT_TTL."""

    def create(self) -> JobT:
        """Register a new running job under a random UUID4."""
        ...

    def get(self, job_id: str) -> JobT | None:
        """The job, or None when unknown or expired."""
        ...

    def running(self) -> Sequence[JobT]:
        """The jobs that have not ended."""
        ...

    def subscribe(self, handle: JobT, *, after: int | None = None) -> WaitableCursor:
        """A cursor over the job's events after seq ``after`` (all of them for None)."""
        ...

    async def wait_none_running(self) -> None:
        """Return once no job is running."""
        ...


class OCR(Protocol):
    """The OCR queue as the pipeline uses it: the embedded pool
    (:class:`ocrstream.service.ocr.OCRService`) or the cluster's queue on Redis
    (:class:`ocrstream.service.redis.ocr.RedisOCR`)."""

    @property
    def engine(self) -> str:
        """The engine's name, for ``image_ocr_start``."""
        ...

    def slot(self, job_key: Hashable) -> AbstractAsyncContextManager[None]:
        """Wait for this job's turn at a worker (a no-op where the queue itself is fair)."""
        ...

    async def recognize(
        self,
        data: bytes,
        request: PageRequest | None = None,
        *,
        job_id: str,
        file_index: int,
    ) -> Page:
        """Read one page of file ``file_index`` of ``job_id`` (its bytes ``data``).

        Raises:
            OCRError: ``ocr_timeout`` or ``ocr_failed``.
        """
        ...

    def statistics(self) -> OCRStatistics:
        """Busy and waiting pages, and the capacity."""
        ...


class EventBroadcast(Protocol):
    """Every job's events in one stream, for the operators' firehose."""

    def publish(self, envelope: Envelope) -> int:
        """Add an event; returns its id on the broadcast."""
        ...

    def subscribe(self, *, last_event_id: int | None = None) -> Cursor:
        """A cursor from now on, or resuming after ``last_event_id``."""
        ...
