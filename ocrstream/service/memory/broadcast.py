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

from ocrstream.core.events import Envelope, StreamLagged
from ocrstream.core.sse import encode, encode_event, id_line
from ocrstream.service.cursor import ClosingCursor

__all__ = ["BroadcastStatistics", "Broadcaster", "RingBatch", "RingSubscription"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RingBatch:
    """What a reader gets at once: a lag report (if it fell behind), then events by id."""

    lagged: StreamLagged | None
    events: list[tuple[int, Envelope]]


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    """Counts for /metrics and tests."""

    subscribers: int
    held: int
    first_id: int
    next_id: int
    lag_reports: int
    missed_events: int


class RingSubscription(ClosingCursor):
    """One reader's cursor: ``cursor`` is the last ring id it was given."""

    __slots__ = ("_broadcaster", "cursor")

    def __init__(self, broadcaster: Broadcaster, cursor: int) -> None:
        super().__init__()
        self._broadcaster = broadcaster
        self.cursor = cursor
        broadcaster._subscribers += 1

    def _release(self) -> None:
        self._broadcaster._subscribers -= 1

    @property
    def exhausted(self) -> bool:
        """Never: the firehose has no end."""
        return False

    def take_nowait(self) -> RingBatch:
        """Everything after the cursor, with a lag report first if some is gone."""
        return self._broadcaster._take(self)

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
        self._ring: deque[Envelope] = deque(maxlen=capacity)
        # Each held event's ``id: <ring id>`` line and its frame's other bytes, alternately:
        # those are the bytes its job's readers get too (encoded once, when published).
        self._frames: deque[bytes] = deque(maxlen=2 * capacity)
        self.next_id = self.boot_id
        self._subscribers = 0
        self._lag_reports = 0
        self._missed = 0

    @property
    def first_id(self) -> int:
        """The id of the oldest event still held (``next_id`` when empty)."""
        return self.next_id - len(self._ring)

    def publish(self, envelope: Envelope) -> int:
        """Append ``envelope``; returns its ring id. Never blocks."""
        self._ring.append(envelope)
        ring_id = self.next_id
        self._frames += (id_line(ring_id), encode_event(envelope))
        self.next_id += 1
        return ring_id

    def subscribe(self, *, last_event_id: int | None = None) -> RingSubscription:
        """Follow the ring: from now on, or resuming after ``last_event_id``; close the
        subscription (or use it in ``with``) to stop.

        An id ahead of the ring (not issued yet) is treated as "from now on".
        """
        if last_event_id is None or last_event_id >= self.next_id:
            cursor = self.next_id - 1
        else:
            cursor = last_event_id
        return RingSubscription(self, cursor)

    def _advance(self, subscription: RingSubscription) -> tuple[StreamLagged | None, int]:
        """Move the reader to the newest event: (its lag report, ring offset of its next)."""
        wanted = subscription.cursor + 1
        first = self.first_id
        lagged = None
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
        subscription.cursor = self.next_id - 1  # everything held is now delivered
        return lagged, wanted - first

    def _take(self, subscription: RingSubscription) -> RingBatch:
        first_wanted = max(subscription.cursor + 1, self.first_id)
        lagged, start = self._advance(subscription)
        held = islice(self._ring, start, None)
        events = list(zip(range(first_wanted, self.next_id), held, strict=True))
        return RingBatch(lagged=lagged, events=events)

    def _take_frames(self, subscription: RingSubscription) -> bytes:
        # The hot path of the fan-out: only slices the pre-encoded frames.
        lagged, start = self._advance(subscription)
        head = b""
        if lagged is not None:
            head = encode(Envelope(event=lagged, job_id=None, seq=None), with_id=False)
        return head + b"".join(islice(self._frames, 2 * start, None))

    def statistics(self) -> BroadcastStatistics:
        """Counts for /metrics and tests."""
        return BroadcastStatistics(
            subscribers=self._subscribers,
            held=len(self._ring),
            first_id=self.first_id,
            next_id=self.next_id,
            lag_reports=self._lag_reports,
            missed_events=self._missed,
        )
