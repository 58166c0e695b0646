"""REDIS_URL: its checks, and the form of it that may be shown (the password never is).

Pure. The URL itself is handed to the Redis client untouched; this module only judges
its shape at start-up (so a typo stops start-up with one line naming the variable) and
gives :func:`redacted`, the only form logs, metrics and errors ever show.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redacted"]

#: ``rediss`` is Redis over TLS.
REDIS_SCHEMES = frozenset({"redis", "rediss"})


def check_redis_url(url: str) -> str:
    """``url`` when it is a usable ``redis://`` or ``rediss://`` URL.

    Raises:
        ValueError: what is wrong, with the URL redacted.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(
            f"{redacted(url)} is not a URL (redis://[user:password@]host[:port][/db])"
        ) from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"{redacted(url)}: the scheme must be redis:// or rediss://")
    if not parts.hostname:
        raise ValueError(f"{redacted(url)} names no host")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"{redacted(url)}: the database must be a number")
    del port
    return url


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    credentials = f"{user}:***" if parts.password is not None else user
    netloc = f"{credentials}@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
