"""The Redis connection: one client per process, on Trio, with bounded waits.

coredis 6 runs natively under Trio (through anyio). Every command is bounded: a Redis that
neither answers nor refuses within :data:`STORE_TIMEOUT` seconds counts as unreachable
(SPEC "Several instances"), which is how a paused or partitioned Redis shows up.
"""

from __future__ import annotations

import coredis

__all__ = ["PREFIX", "STORE_TIMEOUT", "describe_error", "key", "open_redis"]

#: Seconds past which a Redis that does not answer counts as unreachable.
STORE_TIMEOUT = 2.0
#: Every key of ocrstream's starts with this.
PREFIX = "ocrstream:"


def key(*parts: object) -> str:
    """``ocrstream:`` + the parts joined by ``:``."""
    return PREFIX + ":".join(str(part) for part in parts)


def open_redis(url: str, *, blocking_slack: float = 0.0) -> coredis.Redis[bytes]:
    """A client of ``url`` (``redis://`` or ``rediss://``, with its password if any).

    Args:
        url: REDIS_URL.
        blocking_slack: seconds added to the read timeout, for clients that issue
            blocking reads (``XREAD BLOCK``) of up to that long.
    """
    client: coredis.Redis[bytes] = coredis.Redis.from_url(
        url,
        decode_responses=False,
        connect_timeout=STORE_TIMEOUT,
        stream_timeout=STORE_TIMEOUT + blocking_slack,
        pool_timeout=STORE_TIMEOUT,
        client_name="ocrstream",
    )
    return client


def describe_error(error: BaseException) -> str:
    """``error`` in one line for a log: each of a group's, and the cause of each (coredis
    says "Unable to establish a connection" and leaves the reason, a refused port or a
    certificate that does not verify, to ``__cause__``)."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in error.exceptions)
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    if cause is not None and str(cause) not in text:
        text += f" ({describe_error(cause)})"
    return text[:400]
