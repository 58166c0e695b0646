"""The operators' firehose: one shared ring of every job's events, a cursor per reader.

Publishing appends to a ring of EVENT_BUFFER events and nothing else; it never waits
for a reader, so its cost does not grow with slow readers (the model of tokio's
broadcast channel). The fan-out (:mod:`ocrstream.http.fanout`) learns of the event from the
registry and gives each reader what its cursor has not had yet. A reader that fell
behind the ring learns how many events it missed (``stream_lagged``) and goes on from
the oldest event still held.

Ring ids start from the boot time in microseconds and grow by one per event, so they
keep increasing across restarts and an old ``Last-Event-ID`` never lands on the wrong
event.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from itertools import islice

from ocrstream.core.envelope import Envelope
from ocrstream.core.events import StreamLagged
from ocrstream.core.sse import encode, encode_event, id_line
from ocrstream.service.cursor import ClosingCursor

__all__ = ["BroadcastStatistics", "Broadcaster", "RingCursor"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """Counts for /metrics and tests."""

    readers: int
    held: int
    first_id: int
    next_id: int
    lag_reports: int
    missed_events: int


class RingCursor(ClosingCursor):
    """One reader's cursor: ``position`` is the last ring id it was given."""

    __slots__ = ("_broadcaster", "position")

    def __init__(self, broadcaster: Broadcaster, position: int) -> None:
        super().__init__()
        self._broadcaster = broadcaster
        self.position = position
        broadcaster._readers += 1

    def _release(self) -> None:
        self._broadcaster._readers -= 1

    @property
    def exhausted(self) -> bool:
        """Never: the firehose has no end."""
        return False

    def take_frames(self) -> bytes:
        """The waiting events as SSE bytes: the lag report (no ``id:``), then each event
        with its ring id as the frame id."""
        return self._broadcaster._take_frames(self)


class Broadcaster:
    """The shared ring.

    Args:
        capacity: events held (EVENT_BUFFER).
        first_id: the id of the first event (default: boot time in microseconds).
    """

    def __init__(self, capacity: int, *, first_id: int | None = None) -> None:
        self.capacity = capacity
        self.boot_id = first_id if first_id is not None else time.time_ns() // 1000
        # The held envelopes (None for frames numbered elsewhere): only their count matters.
        self._ring: deque[Envelope | None] = deque(maxlen=capacity)
        # Each held event's ``id: <ring id>`` line and its frame's other bytes, alternately:
        # those are the bytes its job's readers get too (encoded once, when published).
        self._frames: deque[bytes] = deque(maxlen=2 * capacity)
        self.next_id = self.boot_id
        # Ids from here up to boot_id were never issued (see publish_frame).
        self._unissued_from = self.boot_id
        self._readers = 0
        self._lag_reports = 0
        self._missed = 0

    @property
    def first_id(self) -> int:
        """The id of the oldest event still held (``next_id`` when empty)."""
        return self.next_id - len(self._ring)

    def publish_frame(self, ring_id: int, frame: bytes) -> None:
        """Append a frame numbered elsewhere (the shared firehose of several instances).

        Ids are one apart; one that is not the next (this instance's reader of the
        shared firehose fell behind it, or Redis came back empty) starts the ring afresh
        from it, so a reader positioned before it is told it lagged.
        """
        if ring_id != self.next_id:
            if not self._ring:
                # Nothing held, so nothing is lost: the ids jumped over were never issued
                # (the first frame from the shared firehose), and a reader waiting for the
                # next event simply gets this one.
                self._unissued_from = self.next_id
            self._ring.clear()
            self._frames.clear()
            self.boot_id = self.next_id = ring_id
        self._ring.append(None)
        self._frames += (id_line(ring_id), frame)
        self.next_id = ring_id + 1

    def publish(self, envelope: Envelope) -> int:
        """Append ``envelope``; returns its ring id. Never blocks."""
        self._ring.append(envelope)
        ring_id = self.next_id
        self._frames += (id_line(ring_id), encode_event(envelope))
        self.next_id += 1
        return ring_id

    def subscribe(self, *, last_event_id: int | None = None) -> RingCursor:
        """Follow the ring: from now on, or resuming after ``last_event_id``; close the
        cursor (or use it in ``with``) to stop.

        An id ahead of the ring (not issued yet) is treated as "from now on".
        """
        if last_event_id is None or last_event_id >= self.next_id:
            position = self.next_id - 1
        else:
            position = last_event_id
        return RingCursor(self, position)

    def _advance(self, cursor: RingCursor) -> tuple[StreamLagged | None, int]:
        """Move the reader to the newest event: (its lag report, ring offset of its next)."""
        wanted = cursor.position + 1
        first = self.first_id
        lagged = None
        if self._unissued_from <= wanted < self.boot_id:
            wanted = self.boot_id  # the ids before it were never issued
        if wanted < first:
            # Ids from before this boot are not ours to count: report only this
            # run's events that are gone (at least one, since the reader lost some).
            missed = max(1, first - max(wanted, self.boot_id))
            lagged = StreamLagged(missed=missed, resume_seq=first)
            self._lag_reports += 1
            self._missed += missed
            logger.warning(
                "firehose reader lagged: %d events missed, resuming at %d", missed, first
            )
            wanted = first
        cursor.position = self.next_id - 1  # everything held is now delivered
        return lagged, wanted - first

    def _take_frames(self, cursor: RingCursor) -> bytes:
        # The hot path of the fan-out: only slices the pre-encoded frames.
        lagged, start = self._advance(cursor)
        head = b""
        if lagged is not None:
            head = encode(Envelope(event=lagged, job_id=None, seq=None), with_id=False)
        return head + b"".join(islice(self._frames, 2 * start, None))

    def statistics(self) -> BroadcastStatistics:
        """Counts for /metrics and tests."""
        return BroadcastStatistics(
            readers=self._readers,
            held=len(self._ring),
            first_id=self.first_id,
            next_id=self.next_id,
            lag_reports=self._lag_reports,
            missed_events=self._missed,
        )
