"""SPEC ordering rule 1 as a pure state machine: nothing before ``upload_started``.

Files are validated while later ones still arrive, so their events are ready before
the body is complete; the stream must still open with ``upload_started`` (seq 0).
:class:`Holdback` takes the job's events in the order its tasks produce them and
returns the ones that may be published now: per-file events wait until
``upload_started``, which releases them after itself; a ``processing_error`` before
that is the one and only event (whatever was held is dropped); after
``upload_started`` everything passes at once. :class:`Tally` counts what the job's
``all_images_validated`` and ``processing_complete`` report (rules 3 and 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from ocrstream.core.events import AllImagesValidated, Event, ProcessingError, UploadStarted

__all__ = ["Holdback", "Tally"]


class Holdback:
    """Holds a job's events back until ``upload_started`` (rule 1)."""

    __slots__ = ("_held", "started")

    def __init__(self) -> None:
        self._held: list[Event] = []
        #: True once ``upload_started`` has been let through.
        self.started = False

    def release(self, event: Event) -> list[Event]:
        """The events that may be published now that ``event`` has come, in order."""
        if self.started:
            return [event]
        if isinstance(event, UploadStarted):
            self.started = True
            released, self._held = [event, *self._held], []
            return released
        if isinstance(event, ProcessingError):
            # Failed before the body was complete: the one and only event.
            self._held.clear()
            return [event]
        self._held.append(event)
        return []


@dataclass(slots=True)
class Tally:
    """One job's counts, for ``all_images_validated`` and ``processing_complete``.

    Attributes:
        started_at: the caller's clock when the job started (for ``duration_ms``).
        file_count: set once the body is complete (then ``all_images_validated`` may go).
    """

    started_at: float
    file_count: int | None = None
    validated: int = 0
    valid: int = 0
    invalid: int = 0
    ocr_success: int = 0
    ocr_error: int = 0
    all_validated_sent: bool = False

    def take_all_validated(self) -> AllImagesValidated | None:
        """``all_images_validated``, once: when the body is complete and every file has
        its validation result (rule 3); None before that and after."""
        if self.all_validated_sent or self.file_count is None:
            return None
        if self.validated < self.file_count:
            return None
        self.all_validated_sent = True
        return AllImagesValidated(
            file_count=self.file_count, valid_count=self.valid, invalid_count=self.invalid
        )
