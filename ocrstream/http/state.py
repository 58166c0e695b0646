"""What the routes share: the service's state, owned by the app for its lifetime."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quart_trio import QuartTrio

from ocrstream.core.errors import ServiceBusy
from ocrstream.http.connection import OCRRequest, RequestConnection
from ocrstream.service.redis.connection import describe_error
from ocrstream.service.redis.queue import is_store_error

if TYPE_CHECKING:
    from collections.abc import Iterator

    import trio

    from ocrstream.core.config import Settings
    from ocrstream.http.fanout import FanOut
    from ocrstream.service.backend import OCR
    from ocrstream.service.documents import DocumentWorkers
    from ocrstream.service.memory.broadcast import Broadcaster
    from ocrstream.service.memory.registry import JobHandle, JobRegistry
    from ocrstream.service.metrics import Metrics
    from ocrstream.service.redis.store import RedisStore

__all__ = ["OCRStreamApp", "ServiceState", "store_answers"]

logger = logging.getLogger(__name__)

_UNREACHABLE = "the shared store (Redis) is unreachable; retry shortly"


@contextmanager
def store_answers(what: str) -> Iterator[None]:
    """A request's calls to the shared store: Redis not answering (refused, reset, or
    past its timeout) refuses the request, logged with ``what`` was asked.

    Raises:
        ServiceBusy: with a ``Retry-After`` (SPEC: 503 while the store is unreachable).
    """
    try:
        yield
    except Exception as error:
        if not is_store_error(error):
            raise
        logger.warning("%s: the store did not answer: %s", what, describe_error(error))
        raise ServiceBusy(_UNREACHABLE, retry_after=2) from None


@dataclass(slots=True)
class ServiceState:
    """Everything the routes share, owned by the app.

    Attributes:
        settings: the configuration read at start-up.
        registry: jobs and their histories (the embedded backend's
            :class:`~ocrstream.service.backend.JobStore`).
        broadcaster: the firehose ring of every job's events (its
            :class:`~ocrstream.service.backend.EventBroadcast`).
        metrics: the Prometheus metrics.
        fanout: writes the watcher streams' events (runs for the app's lifetime).
        decode_limiter: bounds image-decoding threads across all requests.
        ocr: the OCR workers, while they run.
        ocr_scope: cancels the OCR workers.
        documents: the worker processes that open PDFs, while they run.
        documents_scope: cancels them.
        store: the shared store (REDIS_URL set), else None.
        open_streams: SSE responses open now (uploads and watchers together).
        shutting_down: set on SIGTERM/SIGINT; new uploads are refused.
        job_tasks_running: upload jobs whose task has not ended yet.
    """

    settings: Settings
    registry: JobRegistry
    broadcaster: Broadcaster
    metrics: Metrics
    fanout: FanOut
    decode_limiter: trio.CapacityLimiter
    ocr: OCR | None = None
    ocr_scope: trio.CancelScope | None = None
    documents: DocumentWorkers | None = None
    documents_scope: trio.CancelScope | None = None
    store: RedisStore | None = None
    store_scope: trio.CancelScope | None = None
    open_streams: int = 0
    shutting_down: bool = False
    job_tasks_running: int = 0

    def take_stream_slot(self) -> None:
        """Count one more open stream, or refuse at MAX_STREAMS.

        Raises:
            ServiceBusy: MAX_STREAMS streams are open.
        """
        self.refuse_unless_streaming()
        self.open_streams += 1

    def refuse_unless_streaming(self) -> None:
        """Refuse a stream that could not be served now (checked before an upload's job
        is made: nothing yields between this and the stream taking its slot).

        Raises:
            ServiceBusy: MAX_STREAMS streams are open, or the fan-out is not running
                (the server is starting or stopping).
        """
        if not self.fanout.running:
            raise ServiceBusy("the server is starting; retry shortly", retry_after=1)
        if self.open_streams >= self.settings.max_streams:
            raise ServiceBusy(
                f"{self.settings.max_streams} streams are open (MAX_STREAMS); retry shortly",
                retry_after=1,
            )

    def refuse_unless_ready(self, *, ocr: bool) -> None:
        """Refuse work while shutting down, or (``ocr``) while OCR is configured but its
        workers are not running.

        Raises:
            ServiceBusy: with the reason and a ``Retry-After``.
        """
        if self.shutting_down:
            raise ServiceBusy("the server is shutting down", retry_after=5)
        self.refuse_unless_store_ready()
        if ocr and self.settings.ocr_engine != "none" and self.ocr is None:
            raise ServiceBusy("the OCR workers are not running; retry shortly", retry_after=5)

    def refuse_unless_store_ready(self) -> None:
        """Refuse while the shared store (REDIS_URL set) is unreachable.

        Raises:
            ServiceBusy: with a ``Retry-After``.
        """
        if self.store is not None and not self.store.ready:
            raise ServiceBusy(_UNREACHABLE, retry_after=2)

    async def find_job(self, job_id: str) -> JobHandle | None:
        """The job, wherever it runs (with REDIS_URL set, from any instance); None when
        unknown or expired.

        Raises:
            ServiceBusy: the shared store is unreachable.
        """
        self.refuse_unless_store_ready()
        handle = self.registry.get(job_id)
        if handle is not None or self.store is None:
            return handle
        with store_answers(f"looking up job {job_id}"):
            return await self.store.lookup(job_id)

    def release_stream_slot(self) -> None:
        """One stream closed."""
        self.open_streams -= 1


class OCRStreamApp(QuartTrio):
    """Quart-Trio with the connection class that exposes each request's nursery."""

    asgi_http_class = RequestConnection
    request_class = OCRRequest
    state: ServiceState
