"""The Redis client against a real private redis-server (the fixture starts and stops it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import coredis
import pytest
import trio

from ocrstream.service.redis.connection import describe_error, key, open_redis
from ocrstream.service.redis.ocr import open_store
from tests.redis_server import RedisServer, redis_server, requires_redis

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = requires_redis
__all__ = ["redis_server"]


async def test_the_client_talks_to_a_private_server(redis_server: RedisServer) -> None:
    client = open_redis(redis_server.url)
    async with client:
        assert await client.ping() == b"PONG"
        assert await client.set(key("probe"), b"1")
        assert await client.get(key("probe")) == b"1"


async def test_a_password_is_used_and_never_shown(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="hunter2")
    server.start()
    try:
        async with open_redis(server.url) as client:
            assert await client.ping() == b"PONG"
        wrong = server.url.replace("hunter2", "wrong")
        # coredis raises from its connection's task group: the error may come grouped.
        with pytest.raises(
            (coredis.exceptions.AuthenticationFailureError, ExceptionGroup)
        ) as caught:
            async with open_redis(wrong) as client:
                await client.ping()
        assert "wrong" not in repr(caught.value)
        assert "invalid username-password" in _messages(caught.value)

    finally:
        server.stop()


def _messages(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup):
        return " ".join(_messages(inner) for inner in error.exceptions)
    return str(error)


async def test_tls_verifies_the_server_against_the_ca_it_is_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path, tls=True)
    server.start()
    try:
        assert server.url.startswith("rediss://localhost:")
        async with open_redis(server.url) as client:
            assert await client.ping() == b"PONG"
        # Without the private CA the certificate does not verify: refused, and the
        # reason is in the log (coredis puts it in the error's cause).
        untrusted = server.url.partition("?")[0]
        with pytest.raises((coredis.exceptions.ConnectionError, ExceptionGroup)) as caught:
            async with open_redis(untrusted) as client:
                await client.ping()
        assert "CERTIFICATE_VERIFY_FAILED" in describe_error(caught.value)
        with trio.move_on_after(0.5):
            async with open_store(untrusted):
                raise AssertionError("connected to a server whose certificate is not trusted")
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
        assert "retrying" in caplog.text
    finally:
        server.stop()


async def test_open_store_cancelled_mid_attempt_closes_what_it_opened(tmp_path: Path) -> None:
    # Stopping an instance while Redis is unreachable cancels open_store inside an
    # attempt (here a TLS handshake that will not verify, retried with backoff): the
    # half-open client's task group is closed, nothing is left running (it corrupted
    # the task's nursery stack before, seen in a test).
    server = RedisServer(tmp_path, tls=True)
    server.start()
    try:
        untrusted = server.url.partition("?")[0]
        for deadline in range(1, 40, 3):
            with trio.move_on_after(deadline / 1000):
                async with open_store(untrusted):
                    raise AssertionError("connected to an untrusted server")
        async with trio.open_nursery() as nursery:  # the task's nursery stack is sound
            nursery.start_soon(trio.sleep, 0)
    finally:
        server.stop()
