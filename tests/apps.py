"""The app through Quart-Trio's test client: building one, serving it, reading streams."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ocrstream import create_app
from ocrstream.core.config import load_settings
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["BOUNDARY", "MULTIPART", "decode_events", "make_app", "serving"]

BOUNDARY = "ocrstream-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def decode_events(raw: bytes) -> list[dict[str, Any]]:
    """The JSON documents of a raw SSE body."""
    return [json.loads(message.data) for message in SSEDecoder().feed(raw)]


def make_app(**overrides: object) -> Any:
    """An app with the given settings (OCR off unless asked for)."""
    values: dict[str, object] = {"ocr_engine": "none"}
    values.update(overrides)
    return create_app(load_settings({}, **values))


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Any]:
    """A test client with the app's lifespan running (the watchers' fan-out task)."""
    async with app.test_app() as running:
        yield running.test_client()
