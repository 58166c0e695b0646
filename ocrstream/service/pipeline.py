"""One upload's work: intake, validation and OCR as tasks in one nursery.

The tasks send events over a bounded memory channel to the job's sequencer, which
records them in the job's history (waking every reader). The sequencer holds back
per-file events until ``upload_started`` (SPEC rule 1: seq 0, once the body is
complete; :mod:`ocrstream.core.holdback`), so files can be checked while later ones
still arrive. When the job is
cancelled (client gone, shutdown) the tasks stop, spools close, and one
``processing_error`` with the reason ends the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import IO, TYPE_CHECKING

import trio

from ocrstream.core.documents import Document, Page
from ocrstream.core.errors import (
    InvalidImage,
    NoFiles,
    OCRError,
    OCRStreamError,
    UploadFailed,
    UploadTimeout,
)
from ocrstream.core.events import (
    Event,
    ImageOCRError,
    ImageOCRStart,
    ImageOCRSuccess,
    ImageReceived,
    ImageValidationError,
    ImageValidationStart,
    ImageValidationSuccess,
    OCRLine,
    PageOCRSuccess,
    ProcessingComplete,
    ProcessingError,
    UploadStarted,
    error_info,
)
from ocrstream.core.holdback import Holdback, Tally
from ocrstream.core.validation import (
    INLINE_MAX_BYTES,
    ImageFacts,
    check_upload,
    inspect_image,
    inspect_small_image,
    sniff_format,
)
from ocrstream.engines.worker import PageRequest
from ocrstream.service.intake import IntakeLimits, PartCollector, ReceivedFile, receive_upload

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from ocrstream.core.config import Settings
    from ocrstream.service.backend import OCR, Job
    from ocrstream.service.documents import DocumentWorkers

__all__ = [
    "CANCEL_MESSAGES",
    "DRAIN_AFTER_TIMEOUT_SECONDS",
    "DRAIN_SECONDS",
    "JobOptions",
    "intake_limits",
    "run_job",
]

logger = logging.getLogger(__name__)

#: Seconds a failed upload's remaining body is still read (and dropped) for.
DRAIN_SECONDS = 5.0
#: The same after a timeout: the client is slow or silent, so wait less for it.
DRAIN_AFTER_TIMEOUT_SECONDS = 1.0

#: The message of the ``processing_error`` a job gets when it is ended from outside.
CANCEL_MESSAGES = {
    "client_disconnected": "the uploading client disconnected; the job was cancelled",
    "shutting_down": "the server is shutting down; the job was cancelled",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobOptions:
    """What one request asks of its job, beside the server's settings."""

    boundary: bytes
    content_length: int | None
    #: ``pdf_text`` of the query (``auto`` or ``ocr``), None for PDF_TEXT's.
    pdf_text: str | None = None


def intake_limits(settings: Settings) -> IntakeLimits:
    """The intake limits a request gets from the settings."""
    return IntakeLimits(
        max_file_size=settings.max_file_size,
        max_files=settings.max_files,
        max_request_size=settings.request_size_limit,
        max_parts=settings.max_parts,
        upload_timeout=settings.upload_timeout,
        upload_deadline=settings.upload_deadline,
    )


async def run_job(
    handle: Job,
    chunks: AsyncIterable[bytes],
    *,
    options: JobOptions,
    settings: Settings,
    limiter: trio.CapacityLimiter,
    ocr: OCR | None = None,
    documents: DocumentWorkers | None = None,
) -> None:
    """Run one upload's job to its terminal event.

    Args:
        handle: the job, already registered; its cancel scope wraps all the work.
        chunks: the request body as it arrives.
        options: the request's boundary and declared length.
        settings: the server's settings.
        limiter: bounds the decoding threads across all requests.
        ocr: the OCR workers, or None when this job skips OCR.
        documents: the workers that open PDFs (None: PDFs are refused).
    """
    collector: PartCollector | None = None
    send, receive = trio.open_memory_channel[Event](settings.pipeline_buffer)
    try:
        with handle.cancel_scope:
            try:
                collector = PartCollector(options.boundary, limits=intake_limits(settings))
            except UploadFailed as error:
                handle.end_with_error(error.code, error.message)
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_sequence, handle, receive)
                with send:
                    unread = await _process(
                        send,
                        chunks,
                        collector=collector,
                        options=options,
                        work=_FileWork(
                            settings=settings,
                            limiter=limiter,
                            ocr=ocr,
                            documents=documents,
                            job=handle,
                            use_text_layer=(options.pdf_text or settings.pdf_text) == "auto",
                        ),
                    )
            if unread is not None:
                await _drain(chunks, max_bytes=settings.request_size_limit, seconds=unread)
    except Exception:
        logger.exception("job %s failed", handle.job_id)
        handle.end_with_error("internal_error", "the server failed while processing the job")
    finally:
        # Sync cleanup only: this may run after cancellation, where awaits fail at once.
        if collector is not None:
            collector.close()
        if not handle.record.finished:
            reason = handle.cancel_reason
            handle.end_with_error(reason, CANCEL_MESSAGES.get(reason, "the job was cancelled"))
        handle.done.set()


async def _drain(chunks: AsyncIterable[bytes], *, max_bytes: int, seconds: float) -> None:
    """Read and drop what the client still sends after a failed upload, within bounds.

    Closing a socket with unread bytes makes the kernel answer with a reset, which
    can destroy the error event before the client reads it (the reason for nginx's
    "lingering close"); draining first lets the client see why its upload failed.
    """
    drained = 0
    with trio.move_on_after(seconds):
        async for chunk in chunks:
            drained += len(chunk)
            if drained > max_bytes:
                break


async def _sequence(handle: Job, receive: trio.MemoryReceiveChannel[Event]) -> None:
    """Record events in order, holding per-file ones back until ``upload_started``.

    Whatever is already waiting in the channel is recorded in one go, so readers wake
    once for the whole batch and send it as one chunk.
    """
    holdback = Holdback()
    async with receive:
        async for first in receive:
            for event in _with_waiting(first, receive):
                for ready in holdback.release(event):
                    handle.publish(ready)


def _with_waiting(first: Event, receive: trio.MemoryReceiveChannel[Event]) -> list[Event]:
    batch = [first]
    while True:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return batch


async def _emit(send: trio.MemorySendChannel[Event], event: Event) -> None:
    """Send ``event`` to the sequencer, waiting only when the channel is full.

    ``send.send`` yields to the scheduler after every event even when the channel has
    room: a task step per event for the sender, and a wake-up of the sequencer per
    event. Put without waiting, the events a task makes in one step reach the
    sequencer together, and it records them as one batch (one wake-up of their readers);
    the bound still holds, as a full channel makes the sender wait as before. Every
    sender reaches a checkpoint soon after anyway (its next body chunk, its validation
    thread, its OCR slot, or its end), so cancellation is seen no later than before.
    """
    try:
        send.send_nowait(event)
    except trio.WouldBlock:
        await send.send(event)


def _error_event(error: OCRStreamError) -> ProcessingError:
    return ProcessingError(error=error_info(error))


async def _process(
    send: trio.MemorySendChannel[Event],
    chunks: AsyncIterable[bytes],
    *,
    collector: PartCollector,
    options: JobOptions,
    work: _FileWork,
) -> float | None:
    """Run the job's tasks; when a failure left the body unread, the seconds to drain it."""
    tally = Tally(started_at=trio.current_time())
    failure: UploadFailed | None = None
    async with trio.open_nursery() as files:

        async def on_file(file: ReceivedFile) -> None:
            await _emit(
                send,
                ImageReceived(
                    file_index=file.index,
                    file_name=file.name,
                    size_bytes=file.size_bytes,
                    content_type=file.content_type,
                ),
            )
            files.start_soon(partial(_check_file, file, send.clone(), tally=tally, work=work))

        try:
            summary = await receive_upload(
                aiter(chunks),
                boundary=options.boundary,
                content_length=options.content_length,
                limits=collector.limits,
                on_file=on_file,
                collector=collector,
            )
        except UploadFailed as error:
            failure = error
            files.cancel_scope.cancel()
        else:
            if summary.file_count > 0:
                tally.file_count = summary.file_count
                await _emit(
                    send,
                    UploadStarted(file_count=summary.file_count, total_bytes=summary.total_bytes),
                )
                announcement = tally.take_all_validated()
                if announcement is not None:
                    await _emit(send, announcement)
    if failure is not None:
        await _emit(send, _error_event(failure))
        timed_out = isinstance(failure, UploadTimeout)
        return DRAIN_AFTER_TIMEOUT_SECONDS if timed_out else DRAIN_SECONDS
    if tally.file_count is None:
        await _emit(send, _error_event(NoFiles("the body has no part with a filename")))
        return None
    await _emit(
        send,
        ProcessingComplete(
            file_count=tally.file_count,
            valid_count=tally.valid,
            invalid_count=tally.invalid,
            ocr_success_count=tally.ocr_success,
            ocr_error_count=tally.ocr_error,
            duration_ms=round((trio.current_time() - tally.started_at) * 1000, 3),
        ),
    )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class _FileWork:
    """What every file task of one job shares."""

    settings: Settings
    limiter: trio.CapacityLimiter
    ocr: OCR | None
    documents: DocumentWorkers | None
    job: Job
    use_text_layer: bool


async def _check_file(
    file: ReceivedFile,
    send: trio.MemorySendChannel[Event],
    *,
    tally: Tally,
    work: _FileWork,
) -> None:
    """Validate one file, then (with OCR on) recognise it, sending each event."""
    with send:
        try:
            await _emit(send, ImageValidationStart(file_index=file.index, file_name=file.name))
            result = await _validate(file, work=work)
            if isinstance(result, ImageValidationSuccess):
                tally.valid += 1
            else:
                tally.invalid += 1
            await _emit(send, result)
            tally.validated += 1
            announcement = tally.take_all_validated()
            if announcement is not None:
                await _emit(send, announcement)
            if work.ocr is not None and isinstance(result, ImageValidationSuccess):
                await _recognize(file, result, send, tally=tally, work=work, ocr=work.ocr)
        finally:
            file.close()


async def _validate(
    file: ReceivedFile, *, work: _FileWork
) -> ImageValidationSuccess | ImageValidationError:
    settings = work.settings
    try:
        check_upload(
            file_index=file.index,
            size_bytes=file.size_bytes,
            max_files=settings.max_files,
            max_file_size=settings.max_file_size,
        )
        assert file.spool is not None, "stored files keep their spool until validated"
        # A small image is validated here, on the loop's thread, when that costs less
        # than handing it to a thread (the line is in validation.py); others go to one.
        facts = inspect_small_image(
            file.spool,
            size_bytes=file.size_bytes,
            max_pixels=settings.max_image_pixels,
            allowed_formats=settings.allowed_formats,
        )
        if facts is None:
            facts = await _inspect(file.spool, work=work)
    except InvalidImage as error:
        return ImageValidationError(
            file_index=file.index,
            file_name=file.name,
            size_bytes=file.size_bytes,
            error=error_info(error),
        )
    return ImageValidationSuccess(
        file_index=file.index,
        file_name=file.name,
        size_bytes=file.size_bytes,
        format=facts.format,
        width=facts.width,
        height=facts.height,
        mode=facts.mode,
        page_count=facts.page_count,
    )


async def _inspect(spool: IO[bytes], *, work: _FileWork) -> ImageFacts:
    """An image in a decoding thread; a PDF in a document worker process."""
    settings = work.settings
    if sniff_format(spool, allowed_formats=settings.allowed_formats) != "PDF":
        return await trio.to_thread.run_sync(
            partial(
                inspect_image,
                spool,
                max_pixels=settings.max_image_pixels,
                allowed_formats=settings.allowed_formats,
                max_pages=settings.max_pages,
            ),
            limiter=work.limiter,
        )
    if work.documents is None:
        raise InvalidImage("unsupported_format", "this server opens no PDFs")
    data = await trio.to_thread.run_sync(_read_spool, spool, limiter=work.limiter)
    pdf = await work.documents.probe_pdf(
        data,
        max_pages=settings.max_pages,
        dpi=settings.render_dpi,
        max_pixels=settings.max_image_pixels,
    )
    return ImageFacts(
        format="PDF", width=pdf.width, height=pdf.height, mode="RGB", page_count=pdf.page_count
    )


def _read_spool(spool: IO[bytes]) -> bytes:
    spool.seek(0)
    return spool.read()


def _ocr_lines(page: Page) -> tuple[OCRLine, ...]:
    return tuple(
        OCRLine(
            text=line.text,
            confidence=line.confidence,
            bbox=line.bbox,
            page_index=page.page_index,
        )
        for line in page.lines
    )


class _PageFailed(Exception):
    """One page of a file failed: the file ends with its error."""

    def __init__(self, page_index: int, error: OCRError) -> None:
        super().__init__(error.message)
        self.page_index = page_index
        self.error = error


async def _recognize(
    file: ReceivedFile,
    valid: ImageValidationSuccess,
    send: trio.MemorySendChannel[Event],
    *,
    tally: Tally,
    work: _FileWork,
    ocr: OCR,
) -> None:
    """Recognise the file page by page: every page waits for this job's turn at a
    worker, so one file's pages spread over every free worker.

    ``image_ocr_start`` goes out when the file's first page reaches a worker; each page
    of a file of several sends its ``page_ocr_success`` as it finishes (in any order);
    the first page that fails cancels the others and ends the file with its error.
    """
    pages: dict[int, Page] = {}
    data: bytes | None = None
    reading = trio.Lock()
    started = trio.Event()
    began = 0.0
    multi_page = valid.page_count > 1

    async def file_bytes() -> bytes:
        # The spool (on disk past 256 KiB) is read once a worker is free for the file's
        # first page, so files queued for OCR do not hold their bytes in memory.
        nonlocal data
        async with reading:
            if data is None:
                assert file.spool is not None
                if file.size_bytes <= INLINE_MAX_BYTES:  # in memory: a copy, not worth a hop
                    data = _read_spool(file.spool)
                else:
                    data = await trio.to_thread.run_sync(
                        _read_spool, file.spool, limiter=work.limiter
                    )
            return data

    # Pages join the queue in page order (page 0 first): task i asks for its slot only
    # once task i-1 has asked. Between the next task's go-ahead and this task's asking
    # there is no checkpoint, so the scheduler's run order cannot swap them.
    turns = [trio.Event() for _ in range(valid.page_count + 1)]
    turns[0].set()

    async def read_page(page_index: int) -> None:
        request = PageRequest(
            format=valid.format,
            page_index=page_index,
            dpi=work.settings.render_dpi,
            max_pixels=work.settings.max_image_pixels,
            use_text_layer=work.use_text_layer,
        )
        await turns[page_index].wait()
        turns[page_index + 1].set()
        async with ocr.slot(work.job.job_id):
            if not started.is_set():
                nonlocal began
                started.set()
                began = trio.current_time()
                await _emit(
                    send,
                    ImageOCRStart(
                        file_index=file.index,
                        file_name=file.name,
                        engine=ocr.engine,
                        page_count=valid.page_count,
                    ),
                )
            content = await file_bytes()
            began_page = trio.current_time()
            try:
                page = await ocr.recognize(
                    content, request, job_id=work.job.job_id, file_index=file.index
                )
            except OCRError as error:
                raise _PageFailed(page_index, error) from None
        pages[page_index] = page
        if multi_page:
            await _emit(
                send,
                PageOCRSuccess(
                    file_index=file.index,
                    file_name=file.name,
                    page_index=page_index,
                    page_count=valid.page_count,
                    source=page.source,
                    width=page.width,
                    height=page.height,
                    text=page.text,
                    lines=_ocr_lines(page),
                    duration_ms=round((trio.current_time() - began_page) * 1000, 3),
                ),
            )

    result: Event
    try:
        async with trio.open_nursery() as nursery:
            for page_index in range(valid.page_count):
                nursery.start_soon(read_page, page_index)
    except* _PageFailed as group:
        failed = min(
            (error for error in group.exceptions if isinstance(error, _PageFailed)),
            key=lambda error: error.page_index,
        )
        tally.ocr_error += 1
        result = ImageOCRError(
            file_index=file.index,
            file_name=file.name,
            error=error_info(failed.error),
            page_index=failed.page_index,
        )
    else:
        ordered = tuple(pages[index] for index in range(valid.page_count))
        document = Document(
            file_index=file.index,
            file_name=file.name,
            format=valid.format,
            page_count=valid.page_count,
            pages=ordered,
        )
        assert data is not None
        await work.job.keep_result(document, data)
        tally.ocr_success += 1
        result = ImageOCRSuccess(
            file_index=file.index,
            file_name=file.name,
            page_count=valid.page_count,
            text=document.text,
            lines=tuple(line for page in ordered for line in _ocr_lines(page)),
            duration_ms=round((trio.current_time() - began) * 1000, 3),
        )
    await _emit(send, result)
