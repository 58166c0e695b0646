"""``Expect: 100-continue``: the ``100 Continue`` goes out when the app reads the body.

A client that sends ``Expect: 100-continue`` waits for ``100 Continue`` before it
sends its body, so that a refusal (401, 403, 413, 415, 503) costs it no upload
(RFC 9110 10.1.1). Hypercorn 0.18's HTTP/1.1 protocol sends the 100 by itself, as soon
as h11 reports ``they_are_waiting_for_100_continue``, before the app has even seen
the request (``H11Protocol._handle_events``): every refused body was sent anyway.

The ASGI way is to send the 100 on the app's first ``receive()`` of the body. Here:

* :func:`defer_continue` gives a new connection's :class:`H11Protocol` an h11
  connection that never reports a waiting client, so Hypercorn sends no 100 itself;
  ``serve.py`` calls it for every connection it serves and records the protocol in
  the connection's :class:`ContinueGate` (the context variable :data:`CONTINUE_GATE`,
  inherited by that connection's requests);
* :meth:`ContinueGate.send_continue` sends the 100 when h11 says the client still
  waits for it; the request layer (``connection.py``) calls it when the route first
  reads the body, which it does only after every refusal check has passed.

Without a gate (another server, HTTP/2, Quart's test client) nothing changes.
"""

from __future__ import annotations

from contextvars import ContextVar

import h11
from hypercorn.protocol.h11 import H11Protocol

__all__ = ["CONTINUE_GATE", "ContinueGate", "DeferredContinueConnection", "defer_continue"]


class DeferredContinueConnection(h11.Connection):
    """An h11 server connection that leaves the ``100 Continue`` to :class:`ContinueGate`."""

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        """Always False: read by Hypercorn, which would answer the 100 at once."""
        return False

    @property
    def client_waits_for_continue(self) -> bool:
        """Whether the client still waits for a ``100 Continue`` (h11's own answer)."""
        return h11.Connection.they_are_waiting_for_100_continue.fget(self)  # type: ignore[attr-defined,no-any-return]


class ContinueGate:
    """One connection's hold on its ``100 Continue``."""

    __slots__ = ("protocol",)

    def __init__(self) -> None:
        self.protocol: H11Protocol | None = None

    async def send_continue(self) -> None:
        """Send ``100 Continue`` if the client of this connection waits for one."""
        protocol = self.protocol
        if protocol is None:
            return
        connection = protocol.connection
        if (
            isinstance(connection, DeferredContinueConnection)
            and connection.client_waits_for_continue
        ):
            # Hypercorn's own way of sending an h11 event: under its send lock.
            await protocol._send_h11_event(
                h11.InformationalResponse(
                    status_code=100, headers=protocol.config.response_headers("h11")
                )
            )


#: The gate of the connection a request arrived on (None: no gate, nothing deferred).
CONTINUE_GATE: ContextVar[ContinueGate | None] = ContextVar("ocrstream_continue_gate", default=None)


def defer_continue(protocol: object, gate: ContinueGate) -> None:
    """Leave ``protocol``'s ``100 Continue`` to ``gate`` (an HTTP/1.1 protocol not yet fed
    any data; others are left as they are)."""
    if isinstance(protocol, H11Protocol) and type(protocol.connection) is h11.Connection:
        protocol.connection = DeferredContinueConnection(
            h11.SERVER, max_incomplete_event_size=protocol.config.h11_max_incomplete_size
        )
        gate.protocol = protocol
