"""The browser rules of SPEC "Browsers on other origins", as pure decisions."""

from __future__ import annotations

import pytest

from ocrstream.core.config import load_settings
from ocrstream.core.cors import (
    ALLOWED_HEADERS,
    is_cross_site,
    normalise_origin,
    origin_allowed,
    preflight_headers,
    response_headers,
)
from ocrstream.core.errors import ConfigError

APP = frozenset({"https://app.example"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://app.example", "https://app.example"),
        ("HTTPS://App.Example:443", "https://app.example"),
        ("http://app.example:80/", "http://app.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("app.example", None),
        ("ftp://app.example", None),
        ("https://app.example/path", None),
        ("https://user@app.example", None),
        ("https://app.example:99999", None),
        ("null", None),
    ],
)
def test_normalise_origin(value: str, expected: str | None) -> None:
    assert normalise_origin(value) == expected


def test_cors_origins_setting_is_parsed_and_checked() -> None:
    settings = load_settings(
        {"OCRSTREAM_CORS_ORIGINS": " https://App.example:443 , http://x.test:81"}
    )
    assert settings.cors_origins == {"https://app.example", "http://x.test:81"}
    assert load_settings({"OCRSTREAM_CORS_ORIGINS": "*"}).cors_origins == {"*"}
    assert load_settings({}).cors_origins == frozenset()
    with pytest.raises(ConfigError, match=r"OCRSTREAM_CORS_ORIGINS.*not an origin"):
        load_settings({"OCRSTREAM_CORS_ORIGINS": "https://ok.example,/relative"})


def test_origin_allowed() -> None:
    assert origin_allowed("https://app.example", APP)
    assert origin_allowed("https://APP.example:443", APP)
    assert not origin_allowed("https://evil.example", APP)
    assert not origin_allowed("http://app.example", APP)  # another scheme is another origin
    assert not origin_allowed(None, APP)
    assert not origin_allowed("https://app.example", frozenset())
    assert origin_allowed("https://any.example", frozenset({"*"}))


def test_response_headers() -> None:
    assert response_headers("https://app.example", APP) == {
        "Access-Control-Allow-Origin": "https://app.example",
        "Access-Control-Expose-Headers": "Location",
        "Vary": "Origin",
    }
    assert response_headers("https://any.example", frozenset({"*"})) == {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "Location",
    }
    assert response_headers("https://evil.example", APP) == {}
    assert response_headers(None, frozenset({"*"})) == {}


def test_preflight_headers() -> None:
    headers = preflight_headers("https://app.example", APP)
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = {name.strip().lower() for name in headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "last-event-id", "content-type"}
    assert headers["Access-Control-Allow-Headers"] == ALLOWED_HEADERS
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert int(headers["Access-Control-Max-Age"]) > 0
    # An origin not allowed gets no Access-Control-Allow-* header at all.
    assert preflight_headers("https://evil.example", APP) == {}


@pytest.mark.parametrize(
    ("sec_fetch_site", "origin", "host", "cross"),
    [
        # Fetch Metadata decides whenever a browser sends it.
        ("same-origin", "https://evil.example", "ocr.example", False),
        ("none", None, "ocr.example", False),  # typed in the address bar, a bookmark
        ("cross-site", None, "ocr.example", True),
        ("same-site", "https://other.ocr.example", "ocr.example", True),
        ("Cross-Site", "https://ocr.example", "ocr.example", True),
        # No Sec-Fetch-Site (an older browser): the Origin's host and port against Host.
        (None, "http://ocr.example", "ocr.example", False),
        (None, "http://ocr.example:8000", "ocr.example:8000", False),
        (None, "https://ocr.example", "ocr.example", False),  # TLS ended at a proxy
        (None, "http://ocr.example:8000", "ocr.example", True),
        (None, "http://evil.example", "ocr.example", True),
        (None, "null", "ocr.example", True),  # an opaque origin
        (None, "not an origin", "ocr.example", True),
        # Neither header: curl, scripts.
        (None, None, "ocr.example", False),
        ("", "", "ocr.example", False),
    ],
)
def test_is_cross_site(
    sec_fetch_site: str | None, origin: str | None, host: str, cross: bool
) -> None:
    assert (
        is_cross_site(sec_fetch_site=sec_fetch_site, origin=origin, host=host, scheme="http")
        is cross
    )
