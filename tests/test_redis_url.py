"""REDIS_URL's checks and its redacted form (the password is never shown)."""

from __future__ import annotations

import pytest

from ocrstream.core.redis_url import check_redis_url, redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:hunter2@cache:6380/2", "redis://:***@cache:6380/2"),
        ("rediss://user:p%40ss@cache", "rediss://user:***@cache"),
        ("redis://user@cache", "redis://user@cache"),
    ],
)
def test_the_password_is_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert check_redis_url(url) == url


def test_an_unparseable_url_is_not_echoed() -> None:
    assert redacted("redis://:hunter2@cache:99999") == "<unparseable URL>"
