"""HTTP/1.1 chunked bodies as a client reads them, shared by the unit and e2e tests."""

from __future__ import annotations

__all__ = ["dechunk", "take_chunks"]


def take_chunks(buffer: bytearray) -> tuple[bytes, bool]:
    """Take the complete chunks off the front of ``buffer`` (an incomplete one stays).

    Returns:
        Their payload, and True once the last (empty) chunk has been taken.
    """
    payload = bytearray()
    while True:
        end = buffer.find(b"\r\n")
        if end < 0:
            return bytes(payload), False
        size = int(bytes(buffer[:end]).split(b";")[0], 16)  # a chunk extension is ignored
        if size == 0:
            del buffer[: end + 2]
            return bytes(payload), True
        if len(buffer) < end + 2 + size + 2:
            return bytes(payload), False
        assert buffer[end + 2 + size : end + 4 + size] == b"\r\n", "chunk framing"
        payload += buffer[end + 2 : end + 2 + size]
        del buffer[: end + 4 + size]


def dechunk(body: bytes) -> bytes:
    """The payload of a whole chunked body (as far as it goes)."""
    return take_chunks(bytearray(body))[0]
