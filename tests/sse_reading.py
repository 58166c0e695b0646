"""Reading SSE as a client does (WHATWG HTML 9.2.6, "Interpreting an event stream"):
the tests' own parser, so that what the server writes is checked by an independent one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocrstream.core.sse import encode

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ocrstream.core.envelope import Envelope

__all__ = ["SSEDecoder", "SSEMessage", "encode_all"]

_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def encode_all(envelopes: Iterable[Envelope]) -> bytes:
    """Encode several events as one chunk, as the server coalesces them."""
    return b"".join(encode(envelope) for envelope in envelopes)


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
