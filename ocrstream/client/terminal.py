"""The terminal view of a job for ``ocrstream submit`` and ``ocrstream watch``.

Pure state (:class:`JobView`) folded from events (with the server's own per-file
fold), rendered with rich; the CLI owns the I/O. Exit codes are decided here from the
events, so ``--json`` and the live view agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from ocrstream.core.events import (
    ImageOCRError,
    ImageOCRStart,
    ImageOCRSuccess,
    ImageValidationError,
    ImageValidationStart,
    ImageValidationSuccess,
    ProcessingComplete,
    ProcessingError,
    UploadStarted,
)
from ocrstream.core.jobs import FileResult, fold_file

if TYPE_CHECKING:
    from ocrstream.core.envelope import Envelope

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


#: What the table says of a file in each state of its result (``FileResult.status``).
_STATES = {"received": "received", "valid": "valid", "invalid": "failed", "recognised": "done"}
_STATES["ocr_failed"] = "failed"


@dataclass
class JobView:
    """What the terminal shows of one job: the per-file results (the same fold as the
    server's snapshot, :func:`~ocrstream.core.jobs.fold_file`) and which files are being
    validated or recognised right now."""

    job_id: str | None = None
    file_count: int | None = None
    files: dict[int, FileResult] = field(default_factory=dict)
    working: dict[int, str] = field(default_factory=dict)
    terminal: Envelope | None = None

    def apply(self, envelope: Envelope) -> str | None:
        """Fold one event in; returns recognised text to print, if the event has some."""
        self.job_id = envelope.job_id or self.job_id
        event = envelope.event
        fold_file(self.files, event)
        if isinstance(event, UploadStarted):
            self.file_count = event.file_count
        elif isinstance(event, ImageValidationStart):
            self.working[event.file_index] = "validating"
        elif isinstance(event, ImageOCRStart):
            self.working[event.file_index] = "recognising"
        elif isinstance(event, ImageValidationSuccess | ImageValidationError | ImageOCRError):
            self.working.pop(event.file_index, None)
        elif isinstance(event, ImageOCRSuccess):
            self.working.pop(event.file_index, None)
            return event.text
        elif isinstance(event, ProcessingComplete | ProcessingError):
            self.terminal = envelope
        return None

    @property
    def failed_files(self) -> int:
        """Files that failed validation or OCR."""
        return sum(1 for result in self.files.values() if result.error is not None)

    def state(self, index: int) -> str:
        """What the table says file ``index`` is doing or came to."""
        return self.working.get(index) or _STATES[self.files[index].status]

    def detail(self, index: int) -> str:
        """The table's detail of file ``index``: its image, its lines, or its error."""
        result = self.files[index]
        if result.error_message is not None:
            return result.error_message
        if result.status == "recognised" and result.lines is not None:
            duration = result.ocr_duration_ms or 0.0
            return f"{len(result.lines)} lines in {duration:.0f} ms"
        if result.format is not None:
            return f"{result.format} {result.width}x{result.height} {result.mode}"
        return ""

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
        if index is None or index not in self.files:
            return None
        detail = self.detail(index)
        name = self.files[index].file_name
        return f"[{index}] {name}: {self.state(index)}" + (f" ({detail})" if detail else "")

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
        for index in sorted(self.files):
            state = self.state(index)
            # Text(...) renders names and messages literally (no console markup).
            table.add_row(
                str(index),
                Text(self.files[index].file_name),
                Text(state, style=styles.get(state, "")),
                Text(self.detail(index)),
            )
        return table
