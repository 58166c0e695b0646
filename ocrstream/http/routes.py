"""The routes of the API (SPEC "POST /api/ocr", "Watching and results", "Operations")."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from quart import Response, request

from ocrstream.core.errors import NotFound, Unauthorized
from ocrstream.http.connection import OCRRequest
from ocrstream.http.problems import json_response, no_content
from ocrstream.http.request_headers import (
    bearer_ok,
    content_length,
    last_event_id,
    multipart_boundary,
    ocr_requested,
    pdf_text_requested,
)
from ocrstream.http.responses import sse_response, watcher_response
from ocrstream.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ocrstream.service.pipeline import JobOptions, run_job

if TYPE_CHECKING:
    from ocrstream.http.state import OCRStreamApp, ServiceState
    from ocrstream.service.backend import OCR, Job

__all__ = ["add_routes"]


def add_routes(app: OCRStreamApp, state: ServiceState) -> None:
    """Register the API's routes on ``app``; they share ``state``."""
    settings = state.settings

    @app.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        # Embedded: ready unless shutting down or the OCR workers are not running
        # (with REDIS_URL set, the store's reachability joins this; SPEC "Operations").
        state.refuse_unless_ready(ocr=True)
        return json_response({"status": "ready"})

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(state.metrics.render(), status=200, content_type=METRICS_CONTENT_TYPE)

    @app.get("/api/events")
    async def firehose() -> Response:
        admin = settings.admin_token
        if admin is None:
            raise NotFound("the firehose is disabled (OCRSTREAM_ADMIN_TOKEN is not set)")
        if not bearer_ok(admin):
            raise Unauthorized("the firehose needs 'Authorization: Bearer <admin token>'")
        state.refuse_unless_store_ready()
        subscribe = partial(state.broadcaster.subscribe, last_event_id=last_event_id())
        return watcher_response(state, subscribe, job_id=None)

    @app.post("/api/ocr")
    async def submit() -> Response:
        pdf_text = pdf_text_requested()
        boundary = multipart_boundary()
        length = content_length(settings.request_size_limit)
        ocr = _ocr_for_request(state)
        req = request
        assert isinstance(req, OCRRequest)
        assert req.nursery is not None
        # Refused before the job exists: a job made for a refused stream would never run.
        state.refuse_unless_streaming()
        handle = state.registry.create()
        # The uploader's stream ends once the job's task is done (it may drain the body).
        response = sse_response(
            state,
            partial(state.registry.subscribe, handle),
            job_id=handle.job_id,
            end_after=handle.done,
        )
        response.headers["Location"] = f"/api/ocr/{handle.job_id}"
        # The request's nursery owns the job: a disconnect cancels it (see connection.py).
        req.nursery.start_soon(
            _run_job_counted,
            state,
            handle,
            req.body,
            JobOptions(boundary=boundary, content_length=length, pdf_text=pdf_text),
            ocr,
        )
        # The head goes out once the whole body has arrived (with upload_started) or
        # with the one processing_error: a reverse proxy such as nginx stops forwarding
        # a request body once the response has begun (SPEC "POST /api/ocr").
        await handle.wait_first_event()
        if state.store is not None:
            # Every instance knows the job before its uploader learns its id.
            await state.store.wait_announced(handle.job_id)
        return response

    @app.get("/api/ocr/<job_id>/events")
    async def watch(job_id: str) -> Response:
        handle = await state.find_job(job_id)
        if handle is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after RESULT_TTL)")
        after = last_event_id()
        record = handle.record
        if record.finished and after is not None and after >= record.next_seq - 1:
            return no_content()
        subscribe = partial(state.registry.subscribe, handle, after=after)
        return watcher_response(state, subscribe, job_id=handle.job_id)

    @app.get("/api/ocr/<job_id>")
    async def snapshot(job_id: str) -> Response:
        handle = await state.find_job(job_id)
        if handle is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after RESULT_TTL)")
        return json_response(handle.record.snapshot())


def _ocr_for_request(state: ServiceState) -> OCR | None:
    """The OCR workers for this request, or None when it (or the server) skips OCR.

    Raises:
        ServiceBusy: shutting down, or OCR is wanted but its workers are not running.
    """
    wanted = ocr_requested()
    state.refuse_unless_ready(ocr=wanted)
    return state.ocr if wanted else None


async def _run_job_counted(
    state: ServiceState,
    handle: Job,
    body: Any,
    options: JobOptions,
    ocr: OCR | None,
) -> None:
    state.job_tasks_running += 1
    try:
        await run_job(
            handle,
            body,
            options=options,
            settings=state.settings,
            limiter=state.decode_limiter,
            ocr=ocr,
            documents=state.documents,
        )
    finally:
        state.job_tasks_running -= 1
