"""The terminal view of a job for ``ocrstream submit`` and ``ocrstream watch``.

Pure state (:class:`JobView`) folded from events, rendered with rich; the CLI owns
the I/O. Exit codes are decided here from the events, so ``--json`` and the live view
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from ocrstream.core.events import (
    Envelope,
    ImageOCRError,
    ImageOCRStart,
    ImageOCRSuccess,
    ImageReceived,
    ImageValidationError,
    ImageValidationStart,
    ImageValidationSuccess,
    ProcessingComplete,
    ProcessingError,
    UploadStarted,
)

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_FILE_FAILED",
    "EXIT_JOB_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "JobView",
]

EXIT_OK = 0  #: every file valid (and recognised, with OCR on)
EXIT_FILE_FAILED = 1  #: the job finished, but some file was invalid or failed OCR
EXIT_USAGE = 2  #: bad arguments or configuration
EXIT_JOB_FAILED = 3  #: the job ended with processing_error
EXIT_REFUSED = 4  #: the server refused the request (problem document)
EXIT_CONNECTION = 5  #: the server could not be reached, or the stream broke off


@dataclass
class _Row:
    name: str
    state: str = "received"
    detail: str = ""


@dataclass
class JobView:
    """What the terminal shows of one job."""

    job_id: str | None = None
    file_count: int | None = None
    rows: dict[int, _Row] = field(default_factory=dict)
    terminal: Envelope | None = None
    failed_files: int = 0

    def apply(self, envelope: Envelope) -> str | None:
        """Fold one event in; returns recognised text to print, if the event has some."""
        self.job_id = envelope.job_id or self.job_id
        event = envelope.event
        if isinstance(event, UploadStarted):
            self.file_count = event.file_count
        elif isinstance(event, ImageReceived):
            self.rows[event.file_index] = _Row(event.file_name)
        elif isinstance(event, ImageValidationStart):
            self.rows[event.file_index].state = "validating"
        elif isinstance(event, ImageValidationSuccess):
            row = self.rows[event.file_index]
            row.state = "valid"
            row.detail = f"{event.format} {event.width}x{event.height} {event.mode}"
        elif isinstance(event, ImageValidationError):
            self._fail(event.file_index, event.error.message)
        elif isinstance(event, ImageOCRStart):
            self.rows[event.file_index].state = "recognising"
        elif isinstance(event, ImageOCRSuccess):
            row = self.rows[event.file_index]
            row.state = "done"
            row.detail = f"{len(event.lines)} lines in {event.duration_ms:.0f} ms"
            return event.text
        elif isinstance(event, ImageOCRError):
            self._fail(event.file_index, event.error.message)
        elif isinstance(event, ProcessingComplete | ProcessingError):
            self.terminal = envelope
        return None

    def _fail(self, index: int, message: str) -> None:
        row = self.rows[index]
        row.state = "failed"
        row.detail = message
        self.failed_files += 1

    def exit_code(self) -> int:
        """The process exit code the events imply."""
        if self.terminal is None:
            return EXIT_CONNECTION
        if isinstance(self.terminal.event, ProcessingError):
            return EXIT_JOB_FAILED
        return EXIT_FILE_FAILED if self.failed_files else EXIT_OK

    def describe(self, envelope: Envelope) -> str | None:
        """A one-line log entry for a per-file state change (plain, non-terminal output)."""
        index = getattr(envelope.event, "file_index", None)
        if index is None or index not in self.rows:
            return None
        row = self.rows[index]
        return f"[{index}] {row.name}: {row.state}" + (f" ({row.detail})" if row.detail else "")

    def summary(self) -> str:
        """One line on how the job ended."""
        if self.terminal is None:
            return f"job {self.job_id}: the stream ended before the job did"
        event = self.terminal.event
        if isinstance(event, ProcessingError):
            return f"job {self.job_id} failed: {event.error.code}: {event.error.message}"
        assert isinstance(event, ProcessingComplete)
        return (
            f"job {self.job_id}: {event.valid_count} of {event.file_count} files valid, "
            f"{event.ocr_success_count} recognised, {event.ocr_error_count} OCR errors"
        )

    def render(self) -> Table:
        """A table of the files and their states."""
        table = Table(title=f"job {self.job_id or '…'}", expand=False)
        table.add_column("#", justify="right")
        table.add_column("file")
        table.add_column("state")
        table.add_column("detail")
        styles = {"failed": "red", "done": "green", "valid": "cyan"}
        for index in sorted(self.rows):
            row = self.rows[index]
            # Text(...) renders names and messages literally (no console markup).
            table.add_row(
                str(index),
                Text(row.name),
                Text(row.state, style=styles.get(row.state, "")),
                Text(row.detail),
            )
        return table
