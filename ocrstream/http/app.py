"""The HTTP surface: routes, and the one place errors become HTTP.

``create_app(settings)`` builds a Quart-Trio app. Refusals before a stream starts are
RFC 9457 problem documents; everything after is events in the job's stream.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from python_multipart.multipart import parse_options_header
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ocrstream.core.config import Settings, load_settings
from ocrstream.core.errors import (
    ContentTooLarge,
    NotFound,
    RequestRefused,
    ServiceBusy,
    Unauthorized,
    UnsupportedMediaType,
)
from ocrstream.http.connection import OCRRequest, RequestConnection
from ocrstream.http.docs import docs_routes
from ocrstream.http.fanout import FanOut
from ocrstream.http.handoff import HANDOFF_KEY, HandOff, WatcherStreams
from ocrstream.http.stream import EventStream
from ocrstream.http.web import web
from ocrstream.service.cursor import FrameSource, WaitableFrameSource
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobHandle, JobRegistry
from ocrstream.service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ocrstream.service.metrics import Metrics
from ocrstream.service.ocr import OCRService, run_ocr_service
from ocrstream.service.pipeline import JobOptions, run_job

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["OCRStreamApp", "ServiceState", "create_app"]

logger = logging.getLogger(__name__)

_SourceT = TypeVar("_SourceT", bound=FrameSource)

#: ``?ocr=`` values that skip OCR for one request.
_OCR_OFF = frozenset({"false", "0", "no", "off"})

_SSE_HEADERS = {
    "Content-Type": "text/event-stream",  # SSE is always UTF-8 (WHATWG HTML 9.2)
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclass(slots=True)
class ServiceState:
    """Everything the routes share, owned by the app.

    Attributes:
        settings: the configuration read at start-up.
        registry: jobs and their histories.
        broadcaster: the firehose ring of every job's events.
        metrics: the Prometheus metrics.
        fanout: writes the watcher streams' events (runs for the app's lifetime).
        decode_limiter: bounds image-decoding threads across all requests.
        open_streams: SSE responses open now (uploads and watchers together).
    """

    settings: Settings
    registry: JobRegistry
    broadcaster: Broadcaster
    metrics: Metrics
    fanout: FanOut
    decode_limiter: trio.CapacityLimiter
    ocr: OCRService | None = None
    ocr_scope: trio.CancelScope | None = None
    open_streams: int = 0
    shutting_down: bool = False
    job_tasks_running: int = 0

    def take_stream_slot(self) -> None:
        """Count one more open stream, or refuse at MAX_STREAMS.

        Raises:
            ServiceBusy: MAX_STREAMS streams are open.
        """
        if self.open_streams >= self.settings.max_streams:
            raise ServiceBusy(
                f"{self.settings.max_streams} streams are open (MAX_STREAMS); retry shortly",
                retry_after=1,
            )
        self.open_streams += 1

    def release_stream_slot(self) -> None:
        """One stream closed."""
        self.open_streams -= 1


class OCRStreamApp(QuartTrio):
    """Quart-Trio with the connection class that exposes each request's nursery."""

    asgi_http_class = RequestConnection
    request_class = OCRRequest
    state: ServiceState


def _problem_response(status: int, detail: str, code: str | None) -> Response:
    """An RFC 9457 problem document (``type`` about:blank, ``title`` the status phrase)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if code is not None:
        body["code"] = code
    return Response(_json_bytes(body), status=status, content_type="application/problem+json")


def _problem(error: RequestRefused) -> Response:
    response = _problem_response(error.status_hint, error.message, error.code)
    if isinstance(error, ServiceBusy):
        response.headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="ocrstream"'
    return response


def _json_bytes(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _json(document: object, status: int = 200) -> Response:
    return Response(_json_bytes(document), status=status, content_type="application/json")


def _bearer_ok(expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode("utf-8"), expected.encode("utf-8"))


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _multipart_boundary() -> bytes:
    content_type = request.headers.get("Content-Type", "")
    kind, options = parse_options_header(content_type.encode("latin-1"))
    if kind.lower() != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"the body must be multipart/form-data, not {content_type or 'untyped'}"
        )
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise UnsupportedMediaType("the multipart/form-data Content-Type names no boundary")
    return boundary


def _content_length(limit: int) -> int | None:
    raw = request.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        length = int(raw)
    except ValueError:
        return None
    if length > limit:
        raise ContentTooLarge(
            f"Content-Length {length} is over the limit of {limit} bytes (MAX_REQUEST_SIZE)"
        )
    return length


def _sse_response(
    state: ServiceState,
    subscribe: Callable[[], WaitableFrameSource],
    *,
    end_after: trio.Event | None = None,
) -> Response:
    """The uploader's SSE response, sent by Quart from ``subscribe()``; takes a stream
    slot (MAX_STREAMS).

    The slot and the subscription are released exactly once, however the response
    ends (finished, client gone, or never even started).
    """
    req = request
    assert isinstance(req, OCRRequest)
    source, cleanup = _open_stream(state, subscribe)
    body = EventStream(
        source,
        keepalive_interval=state.settings.keepalive_interval,
        on_close=cleanup,
        end_after=end_after,
    )
    # Whatever ends the connection, the slot and the subscription are released.
    req.call_on_close(body.close)
    response = Response(body, status=200, headers=dict(_SSE_HEADERS))
    # Quart-Trio sends every response under RESPONSE_TIMEOUT; a stream has none.
    response.timeout = None
    return response


def _watcher_response(
    state: ServiceState,
    subscribe: Callable[[], FrameSource],
    *,
    job_id: str | None,
) -> Response:
    """A watcher's SSE response: its head from Quart, its events from the fan-out.

    Takes a stream slot and hands the subscription to the watcher-streams middleware
    (see handoff.py), which serves the stream once Quart is done with the request.
    """
    handoff = request.scope.get(HANDOFF_KEY)
    if isinstance(handoff, HandOff):  # else HEAD: the head alone, no stream
        if not state.fanout.running:
            raise ServiceBusy("the server is starting; retry shortly", retry_after=1)
        source, cleanup = _open_stream(state, subscribe)
        handoff.accept(source, job_id, cleanup)
    response = Response(_NoBody(), status=200, headers=dict(_SSE_HEADERS))
    response.timeout = None
    return response


def _open_stream(
    state: ServiceState, subscribe: Callable[[], _SourceT]
) -> tuple[_SourceT, Callable[[], None]]:
    """Take a stream slot and subscribe: (the source, its sync cleanup; the caller runs
    it exactly once)."""
    state.take_stream_slot()
    try:
        source = subscribe()
    except BaseException:
        state.release_stream_slot()
        raise

    def cleanup() -> None:
        source.close()
        state.release_stream_slot()

    return source, cleanup


class _NoBody:
    """An empty streaming body: a response with no Content-Length and nothing in it."""

    def __aiter__(self) -> _NoBody:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration


def create_app(settings: Settings | None = None) -> OCRStreamApp:
    """Build the ocrstream app.

    Args:
        settings: the configuration; read from the environment when None.

    Returns:
        A Quart-Trio app, ready for Hypercorn or Quart's test client.
    """
    settings = settings if settings is not None else load_settings()
    # static_folder=None: the page's files are served by the `web` blueprint only.
    app = OCRStreamApp(__name__, static_folder=None)
    app.register_blueprint(web)
    app.register_blueprint(docs_routes)
    # Quart's own limits are set from Settings, never inherited (16 MB / 60 s defaults).
    app.config.update(
        MAX_CONTENT_LENGTH=settings.request_size_limit,
        BODY_TIMEOUT=settings.upload_deadline,
        RESPONSE_TIMEOUT=60,
    )
    broadcaster = Broadcaster(settings.event_buffer)
    fanout = FanOut(settings.keepalive_interval)
    state: ServiceState

    def lagged() -> tuple[int, int]:
        statistics = broadcaster.statistics()
        return statistics.lag_reports, statistics.missed_events

    def watcher_writes() -> tuple[int, int]:
        statistics = fanout.statistics()
        return statistics.direct_writes, statistics.short_writes

    metrics = Metrics(
        open_streams=lambda: state.open_streams,
        running_jobs=lambda: len(state.registry.running()),
        lagged=lagged,
        watcher_writes=watcher_writes,
    )
    state = ServiceState(
        settings=settings,
        registry=JobRegistry(
            result_ttl=settings.result_ttl,
            on_publish=(broadcaster.publish, metrics.observe, fanout.published),
        ),
        broadcaster=broadcaster,
        metrics=metrics,
        fanout=fanout,
        decode_limiter=trio.CapacityLimiter(settings.validation_threads),
    )
    app.state = state
    # Watcher streams leave Quart once started; the fan-out task writes their events.
    app.asgi_app = WatcherStreams(app.asgi_app, fanout)  # type: ignore[method-assign]

    @app.before_serving
    async def start_fanout() -> None:
        await app.nursery.start(fanout.run)

    @app.before_serving
    async def start_ocr_workers() -> None:
        if settings.ocr_engine != "none":
            state.ocr, state.ocr_scope = await app.nursery.start(run_ocr_service, settings)

    @app.after_serving
    async def stop_ocr_workers() -> None:
        if state.ocr_scope is not None:
            state.ocr_scope.cancel()
            state.ocr, state.ocr_scope = None, None

    @app.errorhandler(RequestRefused)
    async def refused(error: RequestRefused) -> Response:
        return _problem(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        # Unknown paths and wrong methods answer in the same problem format as the API.
        status = error.code or 500
        detail = error.description or HTTPStatus(status).description
        response = _problem_response(status, detail, NotFound.code if status == 404 else None)
        for name, value in error.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    @app.before_request
    async def authorise() -> None:
        token = settings.api_token
        # The firehose has its own (admin) token; see firehose().
        guarded = request.path.startswith("/api/") and request.path != "/api/events"
        if token is not None and guarded and not _bearer_ok(token):
            raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.render(), status=200, content_type=METRICS_CONTENT_TYPE)

    @app.get("/api/events")
    async def firehose() -> Response:
        admin = settings.admin_token
        if admin is None:
            raise NotFound("the firehose is disabled (OCRSTREAM_ADMIN_TOKEN is not set)")
        if not _bearer_ok(admin):
            raise Unauthorized("the firehose needs 'Authorization: Bearer <admin token>'")
        subscribe = partial(broadcaster.subscribe, last_event_id=_last_event_id())
        return _watcher_response(state, subscribe, job_id=None)

    @app.post("/api/ocr")
    async def submit() -> Response:
        boundary = _multipart_boundary()
        content_length = _content_length(settings.request_size_limit)
        if state.shutting_down:
            raise ServiceBusy("the server is shutting down", retry_after=5)
        ocr = _ocr_for_request(state)
        req = request
        assert isinstance(req, OCRRequest)
        assert req.nursery is not None
        handle = state.registry.create()
        # The uploader's stream ends once the job's task is done (it may drain the body).
        response = _sse_response(
            state, partial(state.registry.subscribe, handle), end_after=handle.done
        )
        response.headers["Location"] = f"/api/ocr/{handle.job_id}"
        # The request's nursery owns the job: a disconnect cancels it (see connection.py).
        req.nursery.start_soon(
            _run_job_counted,
            state,
            handle,
            req.body,
            JobOptions(boundary=boundary, content_length=content_length),
            ocr,
        )
        return response

    @app.get("/api/ocr/<job_id>/events")
    async def watch(job_id: str) -> Response:
        handle = state.registry.get(job_id)
        if handle is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after RESULT_TTL)")
        after = _last_event_id()
        record = handle.record
        if record.finished and after is not None and after >= record.next_seq - 1:
            finished = Response(b"", status=204)
            finished.headers.pop("Content-Type", None)  # a 204 has no body, so no type
            return finished
        subscribe = partial(state.registry.subscribe, handle, after=after)
        return _watcher_response(state, subscribe, job_id=handle.job_id)

    @app.get("/api/ocr/<job_id>")
    async def snapshot(job_id: str) -> Response:
        handle = state.registry.get(job_id)
        if handle is None:
            raise NotFound(f"no job {job_id!r} (unknown, or expired after RESULT_TTL)")
        return _json(handle.record.snapshot())

    return app


def _ocr_for_request(state: ServiceState) -> OCRService | None:
    """The OCR workers for this request, or None when it (or the server) skips OCR.

    Raises:
        ServiceBusy: OCR is configured but its workers are not running.
    """
    if state.settings.ocr_engine == "none":
        return None
    if request.args.get("ocr", "true").strip().lower() in _OCR_OFF:
        return None
    if state.ocr is None:
        raise ServiceBusy("the OCR workers are not running; retry shortly", retry_after=5)
    return state.ocr


async def _run_job_counted(
    state: ServiceState,
    handle: JobHandle,
    body: Any,
    options: JobOptions,
    ocr: OCRService | None,
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
        )
    finally:
        state.job_tasks_running -= 1
