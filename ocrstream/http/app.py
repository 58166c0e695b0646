"""The Quart-Trio app: its state, its lifespan tasks, and the one place errors become HTTP.

``create_app(settings)`` builds the app: the shared :class:`ServiceState`, the
fan-out and OCR workers started with the app's lifespan, the browser rules
(:mod:`~ocrstream.http.browsers`), the token check, the routes
(:mod:`~ocrstream.http.routes`, :mod:`~ocrstream.http.docs`, :mod:`~ocrstream.http.web`)
and the error handlers. Refusals before a stream starts are RFC 9457 problem documents
(:mod:`~ocrstream.http.problems`); everything after is events in the job's stream.
"""

from __future__ import annotations

import logging
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING

import trio
from quart import Response, request
from werkzeug.exceptions import HTTPException

from ocrstream.core.config import Settings, load_settings
from ocrstream.core.errors import NotFound, RequestRefused, Unauthorized
from ocrstream.http.browsers import add_browser_rules
from ocrstream.http.docs import docs_routes
from ocrstream.http.fanout import FanOut
from ocrstream.http.handoff import WatcherStreams
from ocrstream.http.problems import problem, problem_response
from ocrstream.http.request_headers import bearer_ok
from ocrstream.http.results import add_result_routes
from ocrstream.http.routes import add_routes
from ocrstream.http.state import OCRStreamApp, ServiceState
from ocrstream.http.web import web
from ocrstream.service.documents import run_document_workers
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.originals import OriginalFiles
from ocrstream.service.memory.registry import JobHandle, JobRegistry
from ocrstream.service.metrics import Metrics
from ocrstream.service.ocr import run_ocr_service
from ocrstream.service.redis.connection import open_redis
from ocrstream.service.redis.ocr import RedisOCR, run_redis_ocr
from ocrstream.service.redis.store import TAIL_BLOCK_MS, RedisStore
from ocrstream.service.redis.worker import run_redis_workers

if TYPE_CHECKING:
    from collections.abc import Callable

    from ocrstream.core.documents import Document
    from ocrstream.core.envelope import Envelope
    from ocrstream.service.backend import EventBroadcast, JobStore

logger = logging.getLogger(__name__)

__all__ = ["OCRStreamApp", "ServiceState", "create_app"]


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
    store: RedisStore | None = None
    if settings.redis_url is None:
        firehose: Callable[[Envelope], object] = broadcaster.publish
    else:

        def firehose(envelope: Envelope) -> None:
            # Several instances: the event goes to Redis; the shared firehose brings it
            # back to every instance's ring (this one's too) with its shared id.
            assert store is not None
            store.replicate(envelope)

    registry = JobRegistry(
        result_ttl=settings.result_ttl,
        on_publish=(firehose, metrics.observe, fanout.published),
    )
    # The embedded backend behind the seam the routes and the pipeline use (checked here
    # by the type checker; a second backend implements the same interfaces).
    _store: JobStore[JobHandle] = registry
    _broadcast: EventBroadcast = broadcaster
    state = ServiceState(
        settings=settings,
        registry=registry,
        broadcaster=broadcaster,
        metrics=metrics,
        fanout=fanout,
        decode_limiter=trio.CapacityLimiter(settings.validation_threads),
    )
    app.state = state
    if settings.redis_url is not None:
        store = state.store = _shared_store(state, fanout)
    # Watcher streams leave Quart once started; the fan-out task writes their events.
    app.asgi_app = WatcherStreams(app.asgi_app, fanout)  # type: ignore[method-assign]

    @app.before_serving
    async def start_fanout() -> None:
        await app.nursery.start(fanout.run)

    @app.before_serving
    async def start_ocr_workers() -> None:
        if settings.ocr_engine == "none":
            return
        if store is not None:
            # Several instances: pages go to the cluster's queue on Redis, and this
            # instance's own OCR_WORKERS (0: none) take pages from it like any worker.
            state.ocr, state.ocr_scope = await app.nursery.start(
                _run_shared_ocr, settings, store.instance_id
            )
        else:
            state.ocr, state.ocr_scope = await app.nursery.start(run_ocr_service, settings)

    @app.before_serving
    async def start_store() -> None:
        if store is not None:
            state.store_scope = await app.nursery.start(_run_store, store)

    # The stop switch of the task that owns the kept files' directory (embedded mode).
    originals_scope: list[trio.CancelScope] = []

    @app.before_serving
    async def start_document_workers() -> None:
        # Recognised files' bytes, for the searchable-PDF export, live as long as the app
        # (with several instances, the searchable PDF is made at once and shared instead).
        if store is None:
            originals_scope.append(await app.nursery.start(_keep_originals, registry))
        state.documents, state.documents_scope = await app.nursery.start(
            run_document_workers, settings
        )

    @app.after_serving
    async def stop_ocr_workers() -> None:
        if state.ocr_scope is not None:
            state.ocr_scope.cancel()
            state.ocr, state.ocr_scope = None, None
        if state.documents_scope is not None:
            state.documents_scope.cancel()
            state.documents, state.documents_scope = None, None
        for scope in originals_scope:
            scope.cancel()
        if state.store_scope is not None:
            assert store is not None
            await store.leave()
            state.store_scope.cancel()

    @app.errorhandler(RequestRefused)
    async def refused(error: RequestRefused) -> Response:
        return problem(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        # Unknown paths and wrong methods answer in the same problem format as the API.
        status = error.code or 500
        detail = error.description or HTTPStatus(status).description
        response = problem_response(status, detail, NotFound.code if status == 404 else None)
        for name, value in error.get_headers():
            if name.lower() == "allow":
                response.headers["Allow"] = value
        return response

    # Browser rules first: a preflight needs no token, a cross-site POST is refused
    # before its token is looked at.
    add_browser_rules(app, settings.cors_origins)

    @app.before_request
    async def authorise() -> None:
        token = settings.api_token
        # The firehose has its own (admin) token; see firehose().
        guarded = request.path.startswith("/api/") and request.path != "/api/events"
        if token is not None and guarded and not bearer_ok(token):
            raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")

    add_routes(app, state)
    add_result_routes(app, state)
    return app


def _shared_store(state: ServiceState, fanout: FanOut) -> RedisStore:
    """The shared store of several instances, and where recognised files' results go."""
    settings = state.settings
    assert settings.redis_url is not None
    # The firehose tail blocks on Redis for up to a second at a time.
    client = open_redis(settings.redis_url, blocking_slack=TAIL_BLOCK_MS / 1000)
    mirrors = JobRegistry(result_ttl=settings.result_ttl, on_publish=(fanout.published,))
    store = RedisStore(
        client,
        settings,
        local=state.registry,
        mirrors=mirrors,
        broadcaster=state.broadcaster,
        changed=fanout.changed,
    )

    async def share_result(job_id: str, document: Document, data: bytes) -> None:
        pdf = None
        if state.documents is not None:
            try:
                pdf = await state.documents.searchable_pdf(
                    data, format=document.format, document=document
                )
            except Exception:
                logger.exception("the searchable PDF of job %s could not be made", job_id)
        try:
            await store.keep_result(job_id, document, pdf)
        except Exception as error:
            logger.warning("the result of job %s was not stored: %s", job_id, error)

    state.registry.results_sink = share_result
    metrics = state.metrics
    metrics.add_gauge(
        "ocrstream_store_ready", "1 when the shared store (Redis) answers", lambda: store.ready
    )
    metrics.add_gauge(
        "ocrstream_store_errors", "store calls that failed or timed out", lambda: store.errors
    )
    metrics.add_gauge(
        "ocrstream_instances_lost",
        "lost instances this one found and ended the jobs of",
        lambda: store.instances_lost,
    )
    metrics.add_gauge(
        "ocrstream_mirrored_jobs",
        "other instances' jobs this one serves from the store",
        lambda: mirrors.statistics().jobs,
    )
    return store


async def _keep_originals(
    registry: JobRegistry,
    *,
    task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own the directory of recognised files' bytes until cancelled: removed however the
    app ends (its after_serving, or its nursery cancelled under it)."""
    with trio.CancelScope() as scope:
        originals = registry.originals = OriginalFiles()
        try:
            task_status.started(scope)
            await originals.run()
        finally:
            registry.originals = None
            originals.close()


async def _run_shared_ocr(
    settings: Settings,
    instance_id: str,
    *,
    task_status: trio.TaskStatus[tuple[RedisOCR, trio.CancelScope]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The cluster's OCR queue for this instance's jobs, and (OCR_WORKERS > 0) this
    instance's slots taking pages from it, until cancelled."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            ocr = await nursery.start(partial(run_redis_ocr, settings, instance_id=instance_id))
            if settings.ocr_workers > 0:
                await nursery.start(partial(run_redis_workers, settings, worker_id=instance_id))
            task_status.started((ocr, scope))


async def _run_store(
    store: RedisStore, *, task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED
) -> None:
    with trio.CancelScope() as scope:
        async with store.client, trio.open_nursery() as nursery:
            await nursery.start(store.run)
            task_status.started(scope)
