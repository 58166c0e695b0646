"""Untrusted documents are opened only here: worker processes, each call bounded in time.

No byte of an uploaded PDF is parsed in the server's own process (SPEC "Documents and
pages"). Validation's probe of a PDF (page count, encryption, page sizes) and the build
of a searchable PDF run in a pool of trio-parallel processes of their own, apart from
the OCR workers (they load no engine and never wait behind OCR). A document that
crashes its worker or runs past its time costs that one file: the worker is killed
(``kill_on_cancel``) and replaced, and the file gets its error.
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio
import trio_parallel

from ocrstream.core.errors import InvalidImage
from ocrstream.engines.worker import ignore_signals

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from ocrstream.core.config import Settings
    from ocrstream.core.documents import Document
    from ocrstream.documents.pdf import PdfFacts

__all__ = [
    "IDLE_SECONDS",
    "DocumentWorkerFailed",
    "DocumentWorkers",
    "open_document_workers",
    "run_document_workers",
]

_T = TypeVar("_T")

#: Seconds a document worker stays alive without work (the next PDF skips its start-up).
IDLE_SECONDS = 300.0


class DocumentWorkerFailed(Exception):
    """A document worker crashed or ran past its time; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DocumentWorkers:
    """Runs document functions in worker processes, at most ``limit`` at once.

    Args:
        context: the trio-parallel context (owned by :func:`open_document_workers`).
        limit: processes working at once.
        timeout: seconds one call may take before its worker is killed.
    """

    def __init__(self, context: trio_parallel.WorkerContext, *, limit: int, timeout: float):
        self._context = context
        self._limiter = trio.CapacityLimiter(limit)
        self.timeout = timeout

    async def run(self, function: Callable[[], _T]) -> _T:
        """Call ``function`` (picklable) in a worker; its own exceptions come back as raised.

        Raises:
            DocumentWorkerFailed: the worker died, or the call took over ``timeout``.
        """
        with trio.move_on_after(self.timeout):
            try:
                result: _T = await self._context.run_sync(
                    function, kill_on_cancel=True, limiter=self._limiter
                )
                return result
            except trio_parallel.BrokenWorkerError:
                raise DocumentWorkerFailed("its worker process died") from None
        raise DocumentWorkerFailed(f"it took longer than {self.timeout:g} seconds")

    async def probe_pdf(
        self, data: bytes, *, max_pages: int, dpi: float, max_pixels: int
    ) -> PdfFacts:
        """Open a PDF in a worker: its page count and first page's raster.

        Raises:
            InvalidImage: the PDF's own refusal, or ``corrupt_image`` when opening it
                crashed or hung its worker.
        """
        # Imported here: the server process never needs PDFium or qpdf loaded, only the
        # workers the functions are sent to do.
        from ocrstream.documents.pdf import probe_pdf

        try:
            return await self.run(
                partial(probe_pdf, data, max_pages=max_pages, dpi=dpi, max_pixels=max_pixels)
            )
        except DocumentWorkerFailed as failure:
            raise InvalidImage(
                "corrupt_image", f"the PDF could not be opened: {failure.reason}"
            ) from None

    async def searchable_pdf(self, data: bytes, *, format: str, document: Document) -> bytes:
        """Build the searchable PDF of a recognised file in a worker.

        Raises:
            DocumentWorkerFailed: the build crashed or ran past its time.
        """
        from ocrstream.documents.searchable import build_searchable_pdf

        return await self.run(partial(build_searchable_pdf, data, format=format, document=document))


@asynccontextmanager
async def open_document_workers(settings: Settings) -> AsyncIterator[DocumentWorkers]:
    """The document worker pool for the app's lifetime."""
    async with trio_parallel.open_worker_context(
        idle_timeout=IDLE_SECONDS,
        init=ignore_signals,
        grace_period=2.0,
    ) as context:
        yield DocumentWorkers(
            context, limit=settings.validation_threads, timeout=settings.document_timeout
        )


async def run_document_workers(
    settings: Settings,
    *,
    task_status: trio.TaskStatus[tuple[DocumentWorkers, trio.CancelScope]] = (
        trio.TASK_STATUS_IGNORED
    ),
) -> None:
    """Own the document worker pool until cancelled; hands back the pool and its stop
    switch."""
    with trio.CancelScope() as scope:
        async with open_document_workers(settings) as workers, trio.open_nursery() as nursery:
            # One worker started now, so the first PDF does not pay for its start-up.
            nursery.start_soon(_warm_up, workers)
            task_status.started((workers, scope))
            await trio.sleep_forever()


async def _warm_up(workers: DocumentWorkers) -> None:
    with contextlib.suppress(DocumentWorkerFailed):
        await workers.run(bool)
