"""Server-Sent Events framing: a pure encoder and an incremental decoder.

Follows WHATWG HTML, section 9.2 "Server-sent events" ("Interpreting an event
stream"): lines end in LF, CR or CRLF; a blank line dispatches; lines starting with
``:`` are comments; ``data`` lines are joined with LF.

An event is encoded once: :func:`encode_event` makes its ``event:`` and ``data:`` lines
and keeps them on the envelope (:attr:`~ocrstream.core.events.Envelope.wire`), and each
stream frames those same bytes with its own ``id:`` line (a job's stream its seq, the
firehose its ring id; :func:`id_line`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ocrstream.core.events import Envelope

__all__ = [
    "KEEPALIVE",
    "SSEDecoder",
    "SSEMessage",
    "encode",
    "encode_all",
    "encode_comment",
    "encode_event",
    "id_line",
]

_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

#: The comment sent after KEEPALIVE_INTERVAL of silence.
KEEPALIVE = b": keep-alive\n\n"


def _single_line(value: str) -> str:
    # A CR or LF inside an ``id:`` or ``event:`` value would end the field early and let
    # the rest be read as a new field; the spec gives no escape, so they are removed.
    return _LINE_BREAKS.sub("", value)


def encode(envelope: Envelope, *, frame_id: int | None = None, with_id: bool = True) -> bytes:
    """Encode one event as an SSE frame.

    Args:
        envelope: the event and its envelope.
        frame_id: the ``id:`` to send; defaults to the envelope's ``seq``.
        with_id: False leaves the ``id:`` line out (``stream_lagged`` frames have none).

    Returns:
        ``id: …\\nevent: …\\ndata: …\\n\\n`` as UTF-8 bytes.
    """
    ident = envelope.seq if frame_id is None else frame_id
    if with_id and ident is not None:
        return id_line(ident) + encode_event(envelope)
    return encode_event(envelope)


def id_line(ident: int) -> bytes:
    """The ``id:`` line that starts a frame."""
    return b"id: %d\n" % ident


def encode_event(envelope: Envelope) -> bytes:
    """The frame of ``envelope`` without its ``id:`` line: ``event: …\\ndata: …\\n\\n``.

    Made on the first call and kept on the envelope, so every stream that sends the
    event sends the same bytes.
    """
    wire = envelope.wire
    if wire is None:
        text = envelope.to_json()
        # The JSON is compact and so has no raw line breaks; splitting anyway keeps the
        # framing correct for any text (each line becomes its own ``data:`` field).
        if "\n" in text or "\r" in text:
            text = "\n".join(f"data: {part}" for part in _LINE_BREAKS.split(text))
        else:
            text = "data: " + text
        wire = f"event: {_single_line(envelope.type)}\n{text}\n\n".encode()
        # A frozen value caching what is derived from it (see Envelope.wire).
        object.__setattr__(envelope, "wire", wire)
    return wire


def encode_all(envelopes: Iterable[Envelope]) -> bytes:
    """Encode several events as one chunk (coalesced writes cost one socket send)."""
    return b"".join(encode(envelope) for envelope in envelopes)


def encode_comment(text: str) -> bytes:
    """Encode a comment frame; clients ignore it, proxies see traffic."""
    return "".join(f": {line}\n" for line in _LINE_BREAKS.split(text)).encode("utf-8") + b"\n"


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched message: ``event`` defaults to ``message``; ``id`` may be None."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Incremental SSE parser: feed bytes as they arrive, get whole messages back.

    Comments are counted in :attr:`comments` (tests use it to see keep-alives).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._pending = b""
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.comments = 0
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        """Parse ``chunk`` and return the messages it completes."""
        raw = self._pending + chunk
        try:
            text = raw.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as error:
            # keep an incomplete trailing UTF-8 sequence for the next chunk
            text = raw[: error.start].decode("utf-8")
            self._pending = raw[error.start :]
        self._buffer += text
        messages: list[SSEMessage] = []
        while True:
            match = _LINE_BREAKS.search(self._buffer)
            if match is None:
                break
            # a lone CR at the very end may be the first half of CRLF: wait for more
            if match.group() == "\r" and match.end() == len(self._buffer):
                break
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end() :]
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def _line(self, line: str) -> SSEMessage | None:
        if line == "":
            if not self._data and not self._event:
                return None
            message = SSEMessage(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return message
        if line.startswith(":"):
            self.comments += 1
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        return None
