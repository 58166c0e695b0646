"""A job's record: its event history, its state and its per-file results.

Pure: no task, no clock of its own (callers pass ``now``). The history is the job's
whole stream; it is bounded (a job has at most MAX_PARTS files, each with a fixed
number of events), so every watcher can always be served from it. The shell keeps
finished jobs for RESULT_TTL (``service/memory/registry.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from ocrstream.core.envelope import Envelope, format_timestamp
from ocrstream.core.events import (
    Event,
    ImageOCRError,
    ImageOCRSuccess,
    ImageReceived,
    ImageValidationError,
    ImageValidationSuccess,
    OCRLine,
    ProcessingComplete,
    ProcessingError,
    StreamLagged,
)

__all__ = ["FileResult", "JobClosedError", "JobRecord", "JobStatus", "fold_file"]


class JobStatus(StrEnum):
    """SPEC snapshot states."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobClosedError(RuntimeError):
    """An event was recorded after the job's terminal event (a bug in the caller)."""


@dataclass(slots=True)
class FileResult:
    """What is known of one file so far: the snapshot's per-file document, and what the
    Python client and the terminal view show (all fold events with :func:`fold_file`).

    ``status`` goes ``received`` → ``valid`` or ``invalid``; a valid file then
    ``recognised`` or ``ocr_failed``.
    """

    file_index: int
    file_name: str
    size_bytes: int
    content_type: str | None
    status: str = "received"
    format: str | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    page_count: int | None = None
    error: dict[str, str] | None = None
    text: str | None = None
    lines: list[dict[str, object]] | None = None
    ocr_duration_ms: float | None = None

    @property
    def valid(self) -> bool | None:
        """Whether the file passed validation (None until it has its result)."""
        if self.status == "received":
            return None
        return self.status != "invalid"

    @property
    def error_code(self) -> str | None:
        """The code of its validation or OCR error, if any."""
        return None if self.error is None else self.error["code"]

    @property
    def error_message(self) -> str | None:
        """The message of its validation or OCR error, if any."""
        return None if self.error is None else self.error["message"]


def _line_dict(line: OCRLine) -> dict[str, object]:
    return {
        "text": line.text,
        "confidence": line.confidence,
        "bbox": list(line.bbox),
        "page_index": line.page_index,
    }


def fold_file(files: dict[int, FileResult], event: Event) -> FileResult | None:
    """Fold one event into the per-file results ``files`` (the one fold of events into
    per-file state: the snapshot, the Python client and the terminal view use it).

    Returns:
        The file the event is about (None for the job's own events).
    """
    if isinstance(event, ImageReceived):
        result = files[event.file_index] = FileResult(
            file_index=event.file_index,
            file_name=event.file_name,
            size_bytes=event.size_bytes,
            content_type=event.content_type,
        )
        return result
    index = getattr(event, "file_index", None)
    if not isinstance(index, int) or index not in files:
        return None
    result = files[index]
    if isinstance(event, ImageValidationSuccess):
        result.status = "valid"
        result.format, result.width, result.height = event.format, event.width, event.height
        result.mode, result.page_count = event.mode, event.page_count
    elif isinstance(event, ImageValidationError):
        result.status = "invalid"
        result.error = {"code": event.error.code, "message": event.error.message}
    elif isinstance(event, ImageOCRSuccess):
        result.status = "recognised"
        result.text = event.text
        result.lines = [_line_dict(line) for line in event.lines]
        result.ocr_duration_ms = event.duration_ms
    elif isinstance(event, ImageOCRError):
        result.status = "ocr_failed"
        result.error = {"code": event.error.code, "message": event.error.message}
    return result


@dataclass(slots=True)
class JobRecord:
    """One job's history and state.

    Attributes:
        job_id: the random UUID4 of the job.
        created_at: wall-clock creation time (UTC).
        history: every event recorded, ``history[i].seq == i``.
        finished_at: caller's clock reading when the terminal event was recorded.
    """

    job_id: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: JobStatus = JobStatus.RUNNING
    history: list[Envelope] = field(default_factory=list)
    files: dict[int, FileResult] = field(default_factory=dict)
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        """True once the terminal event is recorded."""
        return self.finished_at is not None

    @property
    def next_seq(self) -> int:
        """The seq the next event will get."""
        return len(self.history)

    def record(self, event: Event, *, now: float) -> Envelope:
        """Append ``event`` with the next seq and fold it into the snapshot.

        Args:
            event: any job event (not ``stream_lagged``).
            now: the caller's clock, kept as ``finished_at`` for a terminal event.

        Returns:
            The envelope as it goes on the wire.

        Raises:
            JobClosedError: the job already ended.
        """
        if self.finished:
            raise JobClosedError(f"job {self.job_id} already ended; {event.type} refused")
        if isinstance(event, StreamLagged):
            raise ValueError("stream_lagged belongs to a reader, not a job")
        envelope = Envelope(event=event, job_id=self.job_id, seq=self.next_seq)
        self.history.append(envelope)
        self._fold(event)
        if envelope.is_terminal:
            self.finished_at = now
        return envelope

    def append(self, envelope: Envelope, *, now: float) -> None:
        """Record an envelope sequenced elsewhere (another instance's job), as it is.

        Raises:
            JobClosedError: the job already ended.
            ValueError: its seq is not the next one, or it belongs to another job.
        """
        if self.finished:
            raise JobClosedError(f"job {self.job_id} already ended; {envelope.type} refused")
        if envelope.seq != self.next_seq or envelope.job_id != self.job_id:
            raise ValueError(
                f"expected seq {self.next_seq} of job {self.job_id}, got {envelope.seq} of "
                f"{envelope.job_id}"
            )
        self.history.append(envelope)
        self._fold(envelope.event)
        if envelope.is_terminal:
            self.finished_at = now

    def fail(self, event: ProcessingError, *, now: float) -> Envelope | None:
        """Record a terminal ``processing_error`` unless the job already ended."""
        if self.finished:
            return None
        return self.record(event, now=now)

    def events_after(self, seq: int | None) -> list[Envelope]:
        """The events with a seq greater than ``seq`` (all of them for None)."""
        start = 0 if seq is None else max(seq + 1, 0)
        return self.history[start:]

    def _fold(self, event: Event) -> None:
        fold_file(self.files, event)
        if isinstance(event, ProcessingComplete):
            self.status = JobStatus.COMPLETE
        elif isinstance(event, ProcessingError):
            cancelled = event.error.code in {"client_disconnected", "shutting_down"}
            self.status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED

    def snapshot(self) -> dict[str, object]:
        """The JSON document of ``GET /api/ocr/{job_id}``."""
        terminal = self.history[-1] if self.finished else None
        error = None
        if terminal is not None and isinstance(terminal.event, ProcessingError):
            error = {"code": terminal.event.error.code, "message": terminal.event.error.message}
        return {
            "job_id": self.job_id,
            "status": str(self.status),
            "created_at": format_timestamp(self.created_at),
            "event_count": len(self.history),
            "error": error,
            "files": [dataclasses.asdict(self.files[index]) for index in sorted(self.files)],
        }
