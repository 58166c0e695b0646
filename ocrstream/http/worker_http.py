"""``ocrstream worker --metrics-port P``: ``/metrics`` and ``/healthz`` on 127.0.0.1:P.

A tiny HTTP/1.1 server (h11 over ``trio.serve_tcp``): one request per connection, GET
only. ``/healthz`` is 200 while the process lives, whatever Redis does (SPEC "Several
instances"); ``/metrics`` is Prometheus text: the queue's depth cluster-wide (when Redis
answers within a second) and this process's counters.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import h11
import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ocrstream.service.redis.queue import is_store_error

if TYPE_CHECKING:
    from collections.abc import Iterator

    from prometheus_client.metrics_core import Metric

    from ocrstream.service.redis.queue import OCRQueue, QueueDepth
    from ocrstream.service.redis.worker import RedisWorkers, WorkerStatistics

logger = logging.getLogger(__name__)

__all__ = ["render_metrics", "serve_worker_http"]

#: Bytes of request head read at most; requests here are one short line.
_MAX_REQUEST = 16 * 1024


class _Snapshot:
    """A prometheus_client collector over one moment's figures."""

    def __init__(self, stats: WorkerStatistics, depth: QueueDepth | None) -> None:
        self._stats = stats
        self._depth = depth

    def collect(self) -> Iterator[Metric]:
        stats, depth = self._stats, self._depth
        if depth is not None:
            yield GaugeMetricFamily(
                "ocrstream_queue_units_queued", "pages queued cluster-wide", value=depth.queued
            )
            yield GaugeMetricFamily(
                "ocrstream_queue_units_leased",
                "pages being recognised cluster-wide",
                value=depth.leased,
            )
            yield GaugeMetricFamily(
                "ocrstream_queue_worker_slots",
                "live worker slots cluster-wide",
                value=depth.workers,
            )
        yield GaugeMetricFamily(
            "ocrstream_queue_store_up", "1 when Redis answered this scrape", value=int(bool(depth))
        )
        yield GaugeMetricFamily("ocrstream_worker_slots", "this process's slots", stats.capacity)
        yield GaugeMetricFamily("ocrstream_worker_busy", "pages this process holds", stats.busy)
        for name, value, help_text in (
            ("units_done", stats.done, "pages recognised and delivered"),
            ("units_failed", stats.failed, "pages delivered with an OCR error"),
            ("units_cancelled", stats.cancelled, "pages killed because their job was cancelled"),
            ("leases_taken_over", stats.taken_over, "expired leases this process reaped"),
            (
                "units_handed_back",
                stats.handed_back,
                "pages handed back to the queue unfinished, their try not counted",
            ),
            ("store_errors", stats.store_errors, "Redis calls that failed"),
        ):
            yield CounterMetricFamily(f"ocrstream_worker_{name}", help_text, value=value)


def render_metrics(stats: WorkerStatistics, depth: QueueDepth | None) -> bytes:
    """The Prometheus text exposition of ``stats`` and ``depth`` (None: Redis did not
    answer)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats, depth))
    return generate_latest(registry)


async def _depth(queue: OCRQueue) -> QueueDepth | None:
    with trio.move_on_after(1.0):
        try:
            return await queue.depth()
        except Exception as error:
            if not is_store_error(error):
                raise
    return None


async def _answer(stream: trio.SocketStream, workers: RedisWorkers) -> None:
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST)
    with trio.move_on_after(10):
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(4096)
                connection.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                break
            return
        target = event.target.split(b"?")[0]
        content_type = b"text/plain; charset=utf-8"
        if event.method not in {b"GET", b"HEAD"}:
            status, body = 405, b"method not allowed\n"
        elif target == b"/healthz":
            status, body = 200, b"ok\n"
        elif target == b"/metrics":
            status, content_type = 200, CONTENT_TYPE_LATEST.encode()
            body = render_metrics(workers.statistics(), await _depth(workers.queue))
        else:
            status, body = 404, b"not found\n"
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await stream.send_all(connection.send(h11.Response(status_code=status, headers=headers)))
        if event.method != b"HEAD":
            await stream.send_all(connection.send(h11.Data(data=body)))
        await stream.send_all(connection.send(h11.EndOfMessage()))


async def serve_worker_http(
    port: int,
    workers: RedisWorkers,
    *,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` until cancelled; hands back
    the bound port (useful with ``port=0``)."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _answer(stream, workers)
        except (h11.ProtocolError, trio.BrokenResourceError, OSError) as error:
            logger.debug("metrics connection: %s", error)
        finally:
            await trio.aclose_forcefully(stream)

    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, handle, listeners)
        task_status.started(bound)
