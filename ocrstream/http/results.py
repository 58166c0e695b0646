"""The results route: one recognised file in the format asked for (SPEC "Results and
exports").

``GET /api/ocr/{job_id}/files/{file_index}?format=json|txt|hocr|alto|pdf``. The text
formats are made here from the file's pages (in a thread: a 100-page file is not small);
the searchable PDF is made from the file's own bytes, which may be a hostile PDF, so in
a document worker process (:mod:`ocrstream.service.documents`).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import trio
from quart import Response, request

from ocrstream.core.errors import (
    BadQuery,
    ExportFailed,
    NotFound,
    ResultNotReady,
    ResultUnavailable,
)
from ocrstream.core.exports import EXPORT_FORMATS, content_disposition, to_alto, to_hocr, to_text
from ocrstream.http.problems import json_bytes
from ocrstream.http.state import store_answers
from ocrstream.service.documents import DocumentWorkerFailed

if TYPE_CHECKING:
    from ocrstream.core.documents import Document
    from ocrstream.http.state import OCRStreamApp, ServiceState
    from ocrstream.service.backend import Job

__all__ = ["add_result_routes"]

logger = logging.getLogger(__name__)


def _text_export(format: str, document: Document) -> bytes:
    if format == "json":
        return json_bytes(document.to_json())
    if format == "txt":
        return to_text(document).encode("utf-8")
    if format == "hocr":
        return to_hocr(document)
    return to_alto(document)


async def _recognised(state: ServiceState, handle: Job, file_index: int) -> Document:
    """The file's pages, or the refusal its state earns."""
    result = handle.record.files.get(file_index)
    if result is None:
        raise NotFound(f"job {handle.job_id} has no file {file_index}")
    if result.error is not None:
        raise ResultUnavailable(
            result.error["code"], f"file {file_index} failed: {result.error['message']}"
        )
    document = handle.document(file_index)
    if document is None and state.store is not None and result.status == "recognised":
        # Another instance's job: its owner stored the pages in the shared store.
        with store_answers(f"reading file {file_index} of job {handle.job_id}"):
            document = await state.store.document(handle.job_id, file_index)
    if document is not None:
        return document
    if handle.record.finished:
        raise ResultNotReady(
            f"file {file_index} was not recognised: its job ended without OCR of it"
            " (OCR off for the request, or the job was cancelled)"
        )
    raise ResultNotReady(
        f"file {file_index} is still being worked on; ask again after its image_ocr_success"
    )


def add_result_routes(app: OCRStreamApp, state: ServiceState) -> None:
    """Register the results route on ``app``."""

    @app.get("/api/ocr/<job_id>/files/<int:file_index>")
    async def export(job_id: str, file_index: int) -> Response:
        format = request.args.get("format", "json")
        if format not in EXPORT_FORMATS:
            raise BadQuery(
                f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format[:40]!r}"
            )
        handle = await state.find_job(job_id)
        if handle is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after RESULT_TTL)")
        document = await _recognised(state, handle, file_index)
        media_type, extension = EXPORT_FORMATS[format]
        if format == "pdf":
            body = await _searchable_pdf(state, handle, document)
            if body is None:
                raise ExportFailed("the searchable PDF of this file could not be made")
        else:
            body = await trio.to_thread.run_sync(partial(_text_export, format, document))
        response = Response(body, status=200, content_type=media_type)
        response.headers["Content-Disposition"] = content_disposition(document.file_name, extension)
        return response


async def _searchable_pdf(state: ServiceState, handle: Job, document: Document) -> bytes | None:
    if state.store is not None:
        # Made once by the job's owner when the file was recognised (file bytes do not
        # stay in the shared store).
        with store_answers(f"reading the PDF of file {document.file_index} of {handle.job_id}"):
            return await state.store.searchable_pdf(handle.job_id, document.file_index)
    original = await handle.original(document.file_index)
    if original is None or state.documents is None:
        logger.warning("no bytes kept for file %d of job %s", document.file_index, handle.job_id)
        return None
    try:
        return await state.documents.searchable_pdf(
            original, format=document.format, document=document
        )
    except DocumentWorkerFailed as failure:
        logger.warning(
            "searchable PDF of file %d of job %s failed: %s",
            document.file_index,
            handle.job_id,
            failure.reason,
        )
        return None
    except Exception:
        logger.exception(
            "searchable PDF of file %d of job %s failed", document.file_index, handle.job_id
        )
        return None
