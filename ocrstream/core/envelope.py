"""An event as it goes on the wire: the envelope ``{type, timestamp, job_id, seq, data}``.

Pure. :class:`Envelope` wraps one event of :mod:`ocrstream.core.events` with its job and
seq; :meth:`Envelope.to_json` is its one line of JSON, made once (the SSE framing of it
is :mod:`ocrstream.core.sse`'s); :func:`parse_envelope` is the way back, for clients and
tests. The JSON is orjson's: it writes an event dataclass (and the ErrorInfo and OCRLine
inside) field by field in declaration order, compact, UTF-8 as is, 30 times faster
than ``json`` with the dicts made first (2 us against 20 per event, of six or more per
job: ``benchmarks/bench_upload.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from ocrstream.core.events import (
    EVENT_CLASSES,
    TERMINAL_TYPES,
    ErrorInfo,
    Event,
    OCRLine,
    StreamLagged,
)

__all__ = ["Envelope", "format_timestamp", "parse_envelope"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


#: Each event class's field names, in declaration order (the order of its JSON keys).
_FIELDS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(item.name for item in dataclasses.fields(cls)) for cls in EVENT_CLASSES.values()
}


def _plain(value: object) -> object:
    """A field's value as ``dataclasses.asdict`` would give it (nested values as dicts)."""
    if isinstance(value, ErrorInfo):
        return {"code": value.code, "message": value.message}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, OCRLine):
        return {
            "text": value.text,
            "confidence": value.confidence,
            "bbox": value.bbox,
            "page_index": value.page_index,
        }
    return value


def _event_data(event: Event) -> dict[str, object]:
    """The ``data`` object of ``event``: its fields, nested values as dicts."""
    return {name: _plain(getattr(event, name)) for name in _FIELDS[type(event)]}


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-29T23:02:30.123Z``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (twice isoformat's speed)
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One event as it goes on the wire: ``{type, timestamp, job_id, seq, data}``.

    ``job_id`` and ``seq`` are ``None`` only for ``stream_lagged``, which belongs to
    no job.
    """

    event: Event
    job_id: str | None
    seq: int | None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The JSON, once made (see to_json); the envelope's value never changes.
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)
    #: The event's SSE frame without its ``id:`` line, once
    #: :func:`ocrstream.core.sse.encode_event` has made it: every stream that sends this
    #: event, whatever its ``id:``, sends these same bytes.
    wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.event, StreamLagged):
            _require(self.job_id is None and self.seq is None, "stream_lagged has no job")
        else:
            _require(self.job_id is not None and self.seq is not None, "job events need ids")
            _require(self.seq is not None and self.seq >= 0, "seq starts at 0")

    @property
    def type(self) -> str:
        """The event's SPEC type name."""
        return self.event.type

    @property
    def is_terminal(self) -> bool:
        """True for ``processing_complete`` and ``processing_error``."""
        return self.event.type in TERMINAL_TYPES

    def to_dict(self) -> dict[str, object]:
        """The JSON-ready envelope."""
        return {
            "type": self.event.type,
            "timestamp": format_timestamp(self.timestamp),
            "job_id": self.job_id,
            "seq": self.seq,
            "data": _event_data(self.event),
        }

    def to_json(self) -> str:
        """The envelope as one line of compact JSON (no raw newline can occur in it)."""
        return self.json_bytes().decode()

    def json_bytes(self) -> bytes:
        """:meth:`to_json` as UTF-8; made once, on the first call."""
        data = self._json
        if data is None:
            data = orjson.dumps(
                {
                    "type": self.event.type,
                    "timestamp": format_timestamp(self.timestamp),
                    "job_id": self.job_id,
                    "seq": self.seq,
                    "data": self.event,  # a dataclass: orjson writes its fields in order
                }
            )
            # A frozen value caching what is derived from it (as str caches its hash).
            object.__setattr__(self, "_json", data)
        return data


def _build(cls: type[Event], data: dict[str, object]) -> Event:
    values = dict(data)
    if "error" in values and isinstance(values["error"], dict):
        values["error"] = ErrorInfo(**{str(k): v for k, v in values["error"].items()})
    if "lines" in values and isinstance(values["lines"], list):
        values["lines"] = tuple(
            OCRLine(
                text=line["text"],
                confidence=line["confidence"],
                bbox=tuple(line["bbox"]),
                page_index=line.get("page_index", 0),
            )
            for line in values["lines"]
        )
    # Field types are checked by the dataclasses' own validation and by TypeError.
    return cls(**values)  # type: ignore[arg-type]


def parse_envelope(document: dict[str, object]) -> Envelope:
    """Rebuild an :class:`Envelope` from its decoded JSON (clients and tests use this).

    Args:
        document: the decoded ``data:`` JSON of one frame.

    Returns:
        The typed envelope.

    Raises:
        ValueError: unknown type, missing or invalid fields.
    """
    type_name = document.get("type")
    if not isinstance(type_name, str) or type_name not in EVENT_CLASSES:
        raise ValueError(f"unknown event type {type_name!r}")
    data = document.get("data")
    if not isinstance(data, dict):
        raise ValueError("event data must be an object")
    try:
        event = _build(EVENT_CLASSES[type_name], {str(k): v for k, v in data.items()})
    except TypeError as error:
        raise ValueError(f"bad {type_name} data: {error}") from None
    job_id = document.get("job_id")
    seq = document.get("seq")
    timestamp = document.get("timestamp")
    if not isinstance(timestamp, str):
        raise ValueError("timestamp must be a string")
    return Envelope(
        event=event,
        job_id=job_id if isinstance(job_id, str) else None,
        seq=seq if isinstance(seq, int) else None,
        timestamp=datetime.fromisoformat(timestamp.replace("Z", "+00:00")),
    )
