"""Server-Sent Events framing: a pure encoder (clients parse it; the tests' own decoder is
in ``tests/sse_reading.py``).

Follows WHATWG HTML, section 9.2 "Server-sent events" ("Interpreting an event
stream"): lines end in LF, CR or CRLF; a blank line dispatches; lines starting with
``:`` are comments; ``data`` lines are joined with LF.

An event is encoded once: :func:`encode_event` makes its ``event:`` and ``data:`` lines
and keeps them on the envelope (:attr:`~ocrstream.core.envelope.Envelope.wire`), and each
stream frames those same bytes with its own ``id:`` line (a job's stream its seq, the
firehose its ring id; :func:`id_line`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocrstream.core.envelope import Envelope

__all__ = [
    "KEEPALIVE",
    "encode",
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
        data = envelope.json_bytes()
        # The JSON is compact and so has no raw line breaks; splitting anyway keeps the
        # framing correct for any text (each line becomes its own ``data:`` field).
        if b"\n" in data or b"\r" in data:
            text = "\n".join(f"data: {part}" for part in _LINE_BREAKS.split(data.decode()))
            data = text.encode()
        else:
            data = b"data: " + data
        wire = b"event: %b\n%b\n\n" % (_single_line(envelope.type).encode(), data)
        # A frozen value caching what is derived from it (see Envelope.wire).
        object.__setattr__(envelope, "wire", wire)
    return wire


def encode_comment(text: str) -> bytes:
    """Encode a comment frame; clients ignore it, proxies see traffic."""
    return "".join(f": {line}\n" for line in _LINE_BREAKS.split(text)).encode("utf-8") + b"\n"
