"""The Hypercorn internals ocrstream builds on, pinned by version and source.

``http/serve.py`` copies Hypercorn's trio ``worker_serve`` and subclasses its
``TCPServer`` (the connection's send lock, the protocol it creates); ``http/expect.py``
replaces the h11 connection of its ``H11Protocol`` and calls its ``_send_h11_event``.
When any of these changes, this test fails: read the new source, carry the change
into ocrstream's copy (or drop the copy if Hypercorn grew the hook README's
"Operating notes" asks for), then update the hashes here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
from typing import TYPE_CHECKING

import pytest
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.run import worker_serve
from hypercorn.trio.tcp_server import TCPServer

if TYPE_CHECKING:
    from collections.abc import Callable

HYPERCORN_VERSION = "0.18.0"
SOURCES: dict[str, tuple[Callable[..., object] | type, str]] = {
    "hypercorn.trio.run.worker_serve": (worker_serve, "8dc8347a9fc357ca"),
    "hypercorn.trio.tcp_server.TCPServer": (TCPServer, "5593e38b83d3e22e"),
    "hypercorn.protocol.h11.H11Protocol": (H11Protocol, "b32a61e0a8ca2127"),
    "hypercorn.protocol.ProtocolWrapper.__init__": (ProtocolWrapper.__init__, "df25e181b9e2e64d"),
}


def test_hypercorn_is_the_version_the_copy_was_made_from() -> None:
    assert importlib.metadata.version("hypercorn") == HYPERCORN_VERSION


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_internals_used_are_unchanged(name: str) -> None:
    obj, expected = SOURCES[name]
    digest = hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    assert digest == expected, f"{name} changed in Hypercorn: review http/serve.py, http/expect.py"


def test_the_seams_still_exist() -> None:
    # What serve.py and expect.py reach for by name.
    assert "send_lock" in inspect.getsource(TCPServer.__init__)
    assert "self.protocol = ProtocolWrapper(" in inspect.getsource(TCPServer.run)
    assert "they_are_waiting_for_100_continue" in inspect.getsource(H11Protocol._handle_events)
    assert callable(H11Protocol._send_h11_event)
