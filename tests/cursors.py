"""Reading a backend's cursor as envelopes, the way a client would see its frames."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocrstream.core import events as ev
from ocrstream.core.envelope import Envelope, parse_envelope
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from ocrstream.service.cursor import Cursor

__all__ = ["RingBatch", "take_batch", "take_envelopes"]


@dataclass(frozen=True, slots=True)
class RingBatch:
    """What a firehose reader got at once: a lag report (if it fell behind), then events
    by ring id."""

    lagged: ev.StreamLagged | None
    events: list[tuple[int, Envelope]]


def take_envelopes(cursor: Cursor) -> list[Envelope]:
    """Every waiting event of ``cursor``, decoded from the frames it gives."""
    return [parse_envelope(json.loads(m.data)) for m in SSEDecoder().feed(cursor.take_frames())]


def take_batch(cursor: Cursor) -> RingBatch:
    """Every waiting event of a firehose cursor, with its ring id and any lag report."""
    lagged = None
    events: list[tuple[int, Envelope]] = []
    for message in SSEDecoder().feed(cursor.take_frames()):
        envelope = parse_envelope(json.loads(message.data))
        if isinstance(envelope.event, ev.StreamLagged):
            assert message.id is None, "a lag report has no id: line"
            lagged = envelope.event
        else:
            assert message.id is not None
            events.append((int(message.id), envelope))
    return RingBatch(lagged=lagged, events=events)
