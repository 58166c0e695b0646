"""Writing a response's body straight to its connection's socket.

Hypercorn hands each ASGI send through h11, a lock, a shielded cancel scope and
trio's ``send_all``: tens of microseconds and at least one trip through the
scheduler per chunk, for every reader of every event. The watchers' fan-out
(:mod:`ocrstream.http.fanout`) instead writes its chunks itself: an HTTP/1.1 chunk
(``<size hex>\\r\\n<data>\\r\\n``, exactly what h11 writes) with one non-blocking
``write``, and only what the socket cannot take at once is sent with an ordinary
``await``. Hypercorn still sends the response head and the last chunk, so h11's
state stays right: in between, h11 has no per-chunk state to disturb.

Two writers, one socket: Hypercorn writes a connection's bytes under its send lock
(``TCPServer.send_lock``, around each ``send_all``). Every write here happens under
the same lock: the non-blocking write only when nobody holds it (it cannot be taken
meanwhile, as nothing yields between the check and the write), the awaited send with
the lock held. So Hypercorn's bytes and ours never interleave, and trio's
``BusyResourceError`` (two tasks in ``send_all`` at once) cannot happen: it would be a
bug, and is not taken for a client that left.

The connection reaches the app through :data:`DIRECT_CONNECTION`, a context variable
the server sets in each connection's task (see ``serve.py``); Hypercorn starts each
request's ASGI call from that task, so the call inherits it. It is unset under
Quart's test client or another server, where everything goes through ASGI sends.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass

import trio

__all__ = [
    "DIRECT_CONNECTION",
    "ChunkWriter",
    "ConnectionBroken",
    "DirectConnection",
    "chunk_writer_for",
]


@dataclass(frozen=True, slots=True)
class DirectConnection:
    """A connection as Hypercorn serves it: its socket stream and the lock its writes
    take (``TCPServer.send_lock``)."""

    stream: trio.SocketStream
    send_lock: trio.Lock


#: The connection this task serves (None outside ``ocrstream serve``).
DIRECT_CONNECTION: ContextVar[DirectConnection | None] = ContextVar(
    "ocrstream_direct_connection", default=None
)


class ConnectionBroken(Exception):
    """The client's connection is closed or reset: nothing more can reach it."""


class ChunkWriter:
    """HTTP/1.1 chunks written straight to one connection's socket.

    Args:
        connection: the connection's socket stream and Hypercorn's send lock for it.
    """

    __slots__ = ("_fd", "_lock", "_socket", "_stream")

    def __init__(self, connection: DirectConnection) -> None:
        self._stream = connection.stream
        self._lock = connection.send_lock
        self._socket = connection.stream.socket
        self._fd = connection.stream.socket.fileno()

    @staticmethod
    def frame(data: bytes) -> bytes:
        """``data`` as one chunk of a chunked body (``data`` must not be empty)."""
        return b"%x\r\n%b\r\n" % (len(data), data)

    def write_nowait(self, framed: bytes) -> int:
        """Write what the socket takes now, without waiting.

        Returns:
            The number of bytes written (at least one; maybe fewer than ``framed``).

        Raises:
            trio.WouldBlock: nothing can be written now: the socket is full, or
                Hypercorn is writing to this connection (it holds the send lock).
            ConnectionBroken: the connection is closed or reset.
        """
        if self._lock.locked():
            raise trio.WouldBlock
        # The socket object still owning this fd number is the proof that the number
        # was not closed and reused for another client's connection meanwhile; no
        # checkpoint separates this check (nor the lock's) from the write.
        if self._socket.fileno() != self._fd:
            raise ConnectionBroken("the connection is closed")
        try:
            written = os.write(self._fd, framed)
        except BlockingIOError:
            raise trio.WouldBlock from None
        except OSError as error:
            raise ConnectionBroken(f"the connection failed: {error}") from error
        if written == 0:
            raise trio.WouldBlock
        return written

    async def send(self, framed: bytes) -> None:
        """Write all of ``framed``, waiting for the client as long as the socket allows
        (STALLED_READER_TIMEOUT bounds that, through TCP_USER_TIMEOUT).

        Raises:
            ConnectionBroken: the connection is closed, reset or timed out.
        """
        # Under Hypercorn's own lock: its writes and ours never interleave, and no
        # two tasks are ever in send_all at once (BusyResourceError would be a bug).
        async with self._lock:
            try:
                await self._stream.send_all(framed)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                raise ConnectionBroken(f"the connection failed: {error!r}") from error


def chunk_writer_for(http_version: str) -> ChunkWriter | None:
    """A direct writer for this request's connection, or None when its body must go
    through ASGI sends: no connection known (Quart's test client, another server), or
    a protocol whose body is not plain HTTP/1.1 chunks (HTTP/1.0 is close-delimited,
    HTTP/2 framed). The caller has checked that the head it let through is chunked."""
    connection = DIRECT_CONNECTION.get()
    if connection is None or http_version != "1.1":
        return None
    return ChunkWriter(connection)
