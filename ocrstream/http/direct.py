"""Writing a response's body straight to its connection's socket.

Hypercorn hands each ASGI send through h11, a lock, a shielded cancel scope and
trio's ``send_all``: tens of microseconds and at least one trip through the
scheduler per chunk, for every reader of every event. The watchers' fan-out
(:mod:`ocrstream.http.fanout`) instead writes its chunks itself: an HTTP/1.1 chunk
(``<size hex>\\r\\n<data>\\r\\n``, exactly what h11 writes) with one non-blocking
``write``, and only what the socket cannot take at once is sent with an ordinary
``await``. Hypercorn still sends the response head and the last chunk, so h11's
state stays right: in between, h11 has no per-chunk state to disturb.

The connection's socket stream reaches the app through :data:`CONNECTION_STREAM`,
a context variable the server sets in each connection's task (see ``serve.py``);
Hypercorn starts each request's ASGI call from that task, so the call inherits it.
It is unset under Quart's test client, where everything goes through ASGI sends.
"""

from __future__ import annotations

import os
from contextvars import ContextVar

import trio

__all__ = ["CONNECTION_STREAM", "ChunkWriter", "ConnectionBroken", "chunk_writer_for"]

#: The socket stream of the connection this task serves (None outside ``ocrstream serve``).
CONNECTION_STREAM: ContextVar[trio.SocketStream | None] = ContextVar(
    "ocrstream_connection_stream", default=None
)


class ConnectionBroken(Exception):
    """The client's connection is closed or reset: nothing more can reach it."""


class ChunkWriter:
    """HTTP/1.1 chunks written straight to one connection's socket.

    Args:
        stream: the connection's socket stream (Hypercorn's, for the whole connection).
    """

    __slots__ = ("_fd", "_socket", "_stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._socket = stream.socket
        self._fd = stream.socket.fileno()

    @staticmethod
    def frame(data: bytes) -> bytes:
        """``data`` as one chunk of a chunked body (``data`` must not be empty)."""
        return b"%x\r\n%b\r\n" % (len(data), data)

    def write_nowait(self, framed: bytes) -> int:
        """Write what the socket takes now, without waiting: the number of bytes written.

        Raises:
            ConnectionBroken: the connection is closed or reset.
        """
        # The socket object still owning this fd number is the proof that the number
        # was not closed and reused for another client's connection meanwhile; no
        # checkpoint separates this check from the write.
        if self._socket.fileno() != self._fd:
            raise ConnectionBroken("the connection is closed")
        try:
            return os.write(self._fd, framed)
        except BlockingIOError:
            return 0
        except OSError as error:
            raise ConnectionBroken(f"the connection failed: {error}") from error

    async def send(self, framed: bytes) -> None:
        """Write all of ``framed``, waiting for the client as long as the socket allows
        (STALLED_READER_TIMEOUT bounds that, through TCP_USER_TIMEOUT).

        Raises:
            ConnectionBroken: the connection is closed, reset or timed out.
        """
        try:
            await self._stream.send_all(framed)
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            trio.BusyResourceError,
        ) as error:
            raise ConnectionBroken(f"the connection failed: {error!r}") from error


def chunk_writer_for(http_version: str) -> ChunkWriter | None:
    """A direct writer for this request's connection, or None when its body must go
    through ASGI sends: no socket known (Quart's test client), or a protocol whose
    body is not plain HTTP/1.1 chunks (HTTP/1.0 is close-delimited, HTTP/2 framed)."""
    stream = CONNECTION_STREAM.get()
    if stream is None or http_version != "1.1":
        return None
    return ChunkWriter(stream)
