"""Direct chunk writes: trio's *_nowait convention, and Hypercorn's send lock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ocrstream.http.direct import ChunkWriter, ConnectionBroken, DirectConnection


def _pair() -> tuple[trio.SocketStream, trio.socket.SocketType]:
    server_sock, client_sock = trio.socket.socketpair()
    return trio.SocketStream(server_sock), client_sock


def _fill(writer: ChunkWriter, framed: bytes) -> int:
    """Write until the socket is full; returns only if it never fills (a failure)."""
    for _ in range(10_000):
        writer.write_nowait(framed)
    return 10_000


async def test_write_nowait_writes_what_the_socket_takes() -> None:
    stream, client = _pair()
    with client:
        async with stream:
            writer = ChunkWriter(DirectConnection(stream, trio.Lock()))
            framed = ChunkWriter.frame(b"hello")
            assert framed == b"5\r\nhello\r\n"
            assert writer.write_nowait(framed) == len(framed)
            assert await client.recv(100) == framed


async def test_a_full_socket_raises_would_block() -> None:
    stream, client = _pair()
    with client:
        async with stream:
            writer = ChunkWriter(DirectConnection(stream, trio.Lock()))
            framed = ChunkWriter.frame(b"x" * 65536)
            written = 0
            with pytest.raises(trio.WouldBlock):  # nothing read: it fills, then blocks
                written = _fill(writer, framed)
            assert written == 0


async def test_nothing_is_written_while_hypercorn_holds_the_send_lock() -> None:
    stream, client = _pair()
    lock = trio.Lock()
    writer = ChunkWriter(DirectConnection(stream, lock))
    framed = ChunkWriter.frame(b"ours")
    with client:
        async with stream, trio.open_nursery() as nursery:
            await lock.acquire()  # Hypercorn is writing this connection (head, last chunk)
            with pytest.raises(trio.WouldBlock):
                writer.write_nowait(framed)
            nursery.start_soon(writer.send, framed)
            await trio.testing.wait_all_tasks_blocked()
            await stream.send_all(b"HYPERCORN")  # its write, whole, while it holds the lock
            lock.release()
            await trio.testing.wait_all_tasks_blocked()
            received = b""
            while len(received) < len(b"HYPERCORN") + len(framed):
                received += await client.recv(100)
            assert received == b"HYPERCORN" + framed, "never interleaved"


class _BusyStream:
    """A stream another task is already sending on (a bug, if it ever happened)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.socket = stream.socket

    async def send_all(self, data: bytes) -> None:
        raise trio.BusyResourceError("another task is in send_all")


async def test_busy_resource_is_a_bug_not_a_disconnect() -> None:
    stream, client = _pair()
    with client:
        async with stream:
            busy = _BusyStream(stream)
            writer = ChunkWriter(DirectConnection(busy, trio.Lock()))  # type: ignore[arg-type]
            with pytest.raises(trio.BusyResourceError):
                await writer.send(ChunkWriter.frame(b"x"))


async def test_a_closed_peer_is_connection_broken() -> None:
    stream, client = _pair()
    client.close()
    async with stream:
        writer = ChunkWriter(DirectConnection(stream, trio.Lock()))
        with pytest.raises(ConnectionBroken):
            await writer.send(ChunkWriter.frame(b"x" * 1_000_000))
