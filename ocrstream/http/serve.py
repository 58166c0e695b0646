"""Serving: the app under Hypercorn's trio worker, with signals and graceful shutdown.

Shutdown order (SPEC "Disconnects and shutdown"): on SIGTERM/SIGINT Hypercorn stops
accepting at once and new uploads are refused; running jobs get SHUTDOWN_GRACE
seconds to finish; the rest are then cancelled and end with ``processing_error``
``shutting_down``, which their streams still deliver before the connections close.
"""

from __future__ import annotations

import logging
import random
import signal
import socket
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

from ocrstream.engines.worker import engine_module
from ocrstream.http.app import OCRStreamApp, ServiceState, create_app
from ocrstream.http.direct import DIRECT_CONNECTION, DirectConnection
from ocrstream.http.expect import CONTINUE_GATE, ContinueGate, defer_continue
from ocrstream.service.collector import CollectorPolicy, collect_when_quiet, managed_collector

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypercorn.protocol import ProtocolWrapper
    from hypercorn.typing import AppWrapper, LifespanState

    from ocrstream.core.config import Settings

__all__ = [
    "DEFAULT_COLLECTOR",
    "LISTEN_BACKLOG",
    "STREAM_FLUSH_SECONDS",
    "check_engine",
    "drain_jobs",
    "hypercorn_config",
    "listening_sockets",
    "run_server",
    "serve_hypercorn",
]

logger = logging.getLogger(__name__)

#: Pending connections the kernel queues. Hypercorn's default of 100 refused 508 of
#: 5,000 simultaneous connections on a 2-core machine; 2048 accepted all.
LISTEN_BACKLOG = 2048
#: Seconds after the grace period for streams to deliver their terminal events.
STREAM_FLUSH_SECONDS = 5.0
#: How ``ocrstream serve`` runs the cyclic garbage collector (see collector.py).
DEFAULT_COLLECTOR = CollectorPolicy()


def hypercorn_config(
    settings: Settings, *, host: str | None = None, port: int | None = None
) -> Config:
    """The Hypercorn configuration for ``settings`` (``port=0`` picks a free port)."""
    config = Config()
    config.bind = [f"{host or settings.host}:{settings.port if port is None else port}"]
    config.backlog = LISTEN_BACKLOG
    config.graceful_timeout = settings.shutdown_grace + STREAM_FLUSH_SECONDS
    config.accesslog = None
    # Through the logging module, so `ocrstream serve` prints each line once.
    config.errorlog = logging.getLogger("hypercorn.error")
    # Hypercorn's own whole-request read timeout would cut long streams; the service
    # bounds uploads itself (UPLOAD_TIMEOUT / UPLOAD_DEADLINE).
    config.read_timeout = None
    return config


def listening_sockets(config: Config, *, stalled_reader_timeout: float) -> Sockets:
    """Hypercorn's sockets, listening, with a bound on how long sent data may go unread.

    Hypercorn's trio worker shields its socket writes and has no write timeout, so a
    client that stops reading would hold its connection (and a MAX_STREAMS slot) for
    ever. ``TCP_USER_TIMEOUT`` (Linux, RFC 5482) makes the kernel abort a connection
    whose sent data stays unacknowledged, zero-window probes included, for that long;
    accepted connections inherit it from the listening socket. The abort fails
    Hypercorn's write, which ends the stream and frees its slot.

    Args:
        config: the Hypercorn configuration (binds, backlog).
        stalled_reader_timeout: STALLED_READER_TIMEOUT in seconds.
    """
    sockets = config.create_sockets()
    for sock in sockets.insecure_sockets:
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            milliseconds = max(1, int(stalled_reader_timeout * 1000))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, milliseconds)
        sock.listen(config.backlog)
    return sockets


async def serve_hypercorn(
    app: AppWrapper,
    config: Config,
    *,
    sockets: Sockets,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hypercorn's trio worker (``hypercorn.trio.run.worker_serve``) for plain TCP
    sockets, with one addition: each connection's task sets :data:`DIRECT_CONNECTION`
    to its socket stream before Hypercorn's ``TCPServer`` runs the connection, so the
    watcher streams can write to their sockets directly (see direct.py).

    The same lifespan, connection handling and shutdown as Hypercorn's: on
    ``shutdown_trigger`` it stops accepting, lets connections finish for
    ``config.graceful_timeout`` seconds, cancels the rest, then runs the app's
    lifespan shutdown. It builds on Hypercorn's own classes (TCPServer, Lifespan,
    WorkerContext), hence the pin on Hypercorn's minor version in pyproject.toml.
    """
    if sockets.secure_sockets or sockets.quic_sockets:
        raise ValueError("ocrstream serves plain TCP only (no TLS or QUIC sockets)")
    config.set_statsd_logger_class(StatsdLogger)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(app, config, lifespan_state)
    # As worker_serve: the process stops after max_requests (plus jitter), if set.
    max_requests = None
    if config.max_requests is not None:
        max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
    context = WorkerContext(max_requests)
    connection_state = ConnectionState(lifespan_state.copy())

    async def serve_connection(stream: trio.SocketStream) -> None:
        gate = ContinueGate()
        server = _TCPServer(app, config, context, connection_state, stream, gate)
        # This task's context: the connection's requests inherit both.
        DIRECT_CONNECTION.set(DirectConnection(stream, server.send_lock))
        CONTINUE_GATE.set(gate)
        try:
            await server
        finally:
            # The server holds its protocol, whose HTTP/1.1 protocol holds the server's
            # protocol_send: a reference cycle per connection. Undone once the connection
            # is over, its objects go at once rather than at the cyclic GC's next pass.
            server.release_protocol()

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                bind = repr_socket_addr(sock.family, sock.getsockname())
                binds.append(f"http://{bind}")
                await config.log.info(f"Running on http://{bind} (CTRL + C to quit)")
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            serve_connection,
                            listeners,
                            handler_nursery=server_nursery,
                        )
                    )
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, others = error.split((ShutdownError, KeyboardInterrupt))
                if others is not None:
                    raise others from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()


class _TCPServer(TCPServer):
    """Hypercorn's connection server, its HTTP/1.1 ``100 Continue`` left to a gate.

    ``TCPServer.run`` builds the connection's protocol and assigns it to
    ``self.protocol`` before feeding it any data; the property below takes that moment
    to defer the protocol's automatic ``100 Continue`` (see expect.py).
    """

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        stream: trio.SocketStream,
        gate: ContinueGate,
    ) -> None:
        # Annotated for TLS streams; Hypercorn's own worker passes plain ones too.
        super().__init__(app, config, context, state, stream)  # type: ignore[arg-type]
        self._gate = gate

    @property
    def protocol(self) -> ProtocolWrapper:
        return self._protocol

    @protocol.setter
    def protocol(self, value: ProtocolWrapper) -> None:
        self._protocol = value
        defer_continue(value.protocol, self._gate)

    def release_protocol(self) -> None:
        """Let go of the protocol (and the cycle through it) once the connection is over."""
        vars(self).pop("_protocol", None)
        self._gate.protocol = None


def check_engine(settings: Settings) -> None:
    """Fail start-up when the chosen OCR engine cannot run here.

    Raises:
        EngineUnavailable: with a one-line message (e.g. the tesseract binary is missing).
    """
    if settings.ocr_engine != "none":
        engine_module(settings.ocr_engine).check_available()


async def drain_jobs(state: ServiceState) -> None:
    """Refuse new uploads, let running jobs finish for the grace period, then end them;
    once their last events are out, end the watcher streams (the firehose has no end of
    its own, and would otherwise be cut at Hypercorn's graceful timeout)."""
    state.shutting_down = True
    with trio.move_on_after(state.settings.shutdown_grace):
        await state.registry.wait_none_running()
    for handle in state.registry.running():
        handle.cancel("shutting_down")
    with trio.move_on_after(STREAM_FLUSH_SECONDS):
        await state.registry.wait_none_running()
    state.fanout.end_streams()


async def run_server(
    settings: Settings,
    *,
    app: OCRStreamApp | None = None,
    host: str | None = None,
    port: int | None = None,
    handle_signals: bool = True,
    shutdown: trio.Event | None = None,
    worker: Callable[..., Awaitable[None]] = serve_hypercorn,
    collector: CollectorPolicy | None = DEFAULT_COLLECTOR,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``shutdown`` is set), then shut down gracefully.

    Args:
        settings: the configuration.
        app: the app to serve (built from ``settings`` when None).
        host, port: override where to listen.
        handle_signals: install the SIGTERM/SIGINT handlers (off in tests).
        shutdown: an event that starts a graceful shutdown when set.
        worker: the server loop, called as :func:`serve_hypercorn` is. Hypercorn's own
            ``hypercorn.trio.run.worker_serve`` takes the same arguments but sets no
            :data:`DIRECT_CONNECTION`, so every watcher stream goes through ASGI sends
            (the fan-out ablation in benchmarks/bench_fanout.py).
        collector: how the cyclic garbage collector runs once the app has started (see
            collector.py; it is the process's), or None to leave it as it is (a test
            process that serves many apps in turn).
        task_status: receives the bound URLs once listening.
    """
    check_engine(settings)
    app = app if app is not None else create_app(settings)
    stop = shutdown if shutdown is not None else trio.Event()
    hypercorn_stop = trio.Event()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                logger.info("received %s: shutting down", signal.Signals(signum).name)
                stop.set()
                return

    async def shut_down_when_asked() -> None:
        await stop.wait()
        hypercorn_stop.set()  # stop accepting at once
        await drain_jobs(app.state)

    config = hypercorn_config(settings, host=host, port=port)
    state = app.state

    def quiet() -> bool:
        return state.job_tasks_running == 0 and state.registry.statistics().running_jobs == 0

    # The collector's pauses are timed while this process serves (see collector.py).
    monitor = state.metrics.gc_pauses
    with monitor.installed(), ExitStack() as collector_managed:
        async with trio.open_nursery() as nursery:

            async def serve_http(*, task_status: trio.TaskStatus[list[str]]) -> None:
                await worker(
                    wrap_app(app, config.wsgi_max_body_size, None),
                    config,
                    sockets=listening_sockets(
                        config, stalled_reader_timeout=settings.stalled_reader_timeout
                    ),
                    shutdown_trigger=hypercorn_stop.wait,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # hypercorn is done: end the helper tasks

            if handle_signals:
                nursery.start_soon(watch_signals)
            nursery.start_soon(shut_down_when_asked)
            binds = await nursery.start(serve_http)
            if collector is not None:
                # After start-up: what it made is collected once and frozen.
                collector_managed.enter_context(managed_collector(collector, monitor))
                await nursery.start(collect_when_quiet, collector, monitor, quiet)
            task_status.started(binds)
