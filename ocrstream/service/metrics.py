"""Prometheus metrics, one registry per app (tests build many apps in one process).

Counters are fed from the events themselves (:meth:`Metrics.observe`), so whatever a
client sees is what the metrics count; gauges are read from the live state at scrape
time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ocrstream.core.events import ImageOCRError, ImageOCRSuccess, ImageValidationError
from ocrstream.service.collector import PAUSE_BUCKETS, TRIGGERS, PauseMonitor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client.metrics_core import Metric

    from ocrstream.core.envelope import Envelope

__all__ = ["CONTENT_TYPE", "Metrics"]

#: The Content-Type of the text exposition format.
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds; OCR of one page runs from tens of milliseconds to a minute.
_OCR_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class Metrics:
    """The service's metrics.

    Args:
        open_streams: reads the number of open SSE responses.
        running_jobs: reads the number of jobs that have not ended.
        lagged: reads (lag reports, missed events) of the firehose.
        watcher_writes: reads (chunks the fan-out wrote straight to watchers' sockets,
            of those the ones a socket did not take whole: a slow reader's sign).
        gc_pauses: the cyclic collector's pauses (kept as :attr:`gc_pauses`; the server
            installs it while serving, see ``serve.py``).
    """

    def __init__(
        self,
        *,
        open_streams: Callable[[], float],
        running_jobs: Callable[[], float],
        lagged: Callable[[], tuple[int, int]],
        watcher_writes: Callable[[], tuple[int, int]] = lambda: (0, 0),
        gc_pauses: PauseMonitor | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.gc_pauses = gc_pauses if gc_pauses is not None else PauseMonitor()
        self.registry.register(_PauseCollector(self.gc_pauses))
        gauges: tuple[tuple[str, str, Callable[[], float]], ...] = (
            ("ocrstream_open_streams", "SSE responses open now", open_streams),
            ("ocrstream_running_jobs", "jobs not yet ended", running_jobs),
            (
                "ocrstream_lagged_reports",
                "stream_lagged frames sent to firehose readers",
                lambda: lagged()[0],
            ),
            (
                "ocrstream_lagged_events",
                "events firehose readers missed by falling behind",
                lambda: lagged()[1],
            ),
            (
                "ocrstream_watcher_chunks_written",
                "chunks the fan-out wrote straight to watcher streams' sockets",
                lambda: watcher_writes()[0],
            ),
            (
                "ocrstream_watcher_short_writes",
                "of those, chunks a socket did not take whole (the reader is slow or stalled)",
                lambda: watcher_writes()[1],
            ),
        )
        # Read from the live state at scrape time.
        for name, documentation, read in gauges:
            Gauge(name, documentation, registry=self.registry).set_function(read)
        self.events = Counter(
            "ocrstream_events", "events published, by type", ["type"], registry=self.registry
        )
        # Each type's child, looked up once: labels() validates and locks on every call.
        self._events_by_type: dict[str, Counter] = {}
        self.validation_errors = Counter(
            "ocrstream_validation_errors",
            "files refused, by code",
            ["code"],
            registry=self.registry,
        )
        self.ocr_errors = Counter(
            "ocrstream_ocr_errors", "files OCR failed on, by code", ["code"], registry=self.registry
        )
        self.ocr_duration = Histogram(
            "ocrstream_ocr_duration_seconds",
            "time one image spent in OCR",
            buckets=_OCR_BUCKETS,
            registry=self.registry,
        )

    def add_gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge read from the live state at scrape time (the shared store's, the
        queue's)."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def observe(self, envelope: Envelope) -> None:
        """Count one published event."""
        event = envelope.event
        counter = self._events_by_type.get(event.type)
        if counter is None:
            counter = self._events_by_type[event.type] = self.events.labels(type=event.type)
        counter.inc()
        if isinstance(event, ImageValidationError):
            self.validation_errors.labels(code=event.error.code).inc()
        elif isinstance(event, ImageOCRError):
            self.ocr_errors.labels(code=event.error.code).inc()
        elif isinstance(event, ImageOCRSuccess):
            self.ocr_duration.observe(event.duration_ms / 1000)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class _PauseCollector(Collector):
    """The collector's pauses, read from the monitor at scrape time (its callback cannot
    take the locks prometheus_client's own metrics use)."""

    def __init__(self, monitor: PauseMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self._monitor
        pauses = HistogramMetricFamily(
            "ocrstream_gc_pause_seconds",
            "pauses of the cyclic garbage collector, by generation (2: a full collection) "
            "and trigger (allocation: in the middle of work; scheduled: the quiet-time backstop)",
            labels=["generation", "trigger"],
        )
        longest = GaugeMetricFamily(
            "ocrstream_gc_longest_pause_seconds",
            "the longest pause of the cyclic garbage collector since the server started",
            labels=["trigger"],
        )
        longest_cpu = GaugeMetricFamily(
            "ocrstream_gc_longest_pause_cpu_seconds",
            "the longest pause of the cyclic garbage collector in CPU time (its own work; "
            "the wall clock also counts time the OS gave the core to other processes)",
            labels=["trigger"],
        )
        for index, trigger in enumerate(TRIGGERS):
            for generation, counts in enumerate(monitor.buckets[index]):
                cumulative, running = [], 0
                for bound, count in zip((*PAUSE_BUCKETS, float("inf")), counts, strict=True):
                    running += count
                    cumulative.append((_bound(bound), float(running)))
                pauses.add_metric(
                    [str(generation), trigger], cumulative, monitor.total[index][generation]
                )
            longest.add_metric([trigger], monitor.longest[index])
            longest_cpu.add_metric([trigger], monitor.longest_cpu[index])
        yield pauses
        yield longest
        yield longest_cpu
        yield CounterMetricFamily(
            "ocrstream_gc_collected_objects",
            "objects the cyclic garbage collector found in unreachable cycles and freed",
            value=monitor.collected,
        )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
