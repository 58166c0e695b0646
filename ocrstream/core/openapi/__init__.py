"""The OpenAPI 3.1 document of the service, generated from the code's own models.

Event schemas come from the frozen dataclasses of :mod:`ocrstream.core.events` (their fields
and type hints), error codes from :mod:`ocrstream.core.errors`, job states from
:mod:`ocrstream.core.jobs`: a field added to an event shows up here without an edit, and the
tests validate real events and snapshots against the document so any drift fails.

OpenAPI 3.1 has no ``itemSchema`` (3.2) for the items of a ``text/event-stream``. As
tools read a 3.1 event stream's ``schema`` as one event's (schemathesis does), the stream
responses' ``schema`` is one frame ``{event, id, data}`` whose ``data`` is JSON text with
the envelope as its ``contentSchema``; ``x-events`` also maps every SSE ``event:`` name
to its envelope schema.

The document is a pure function of the settings (:func:`build_openapi`); the HTTP layer
serves it (``GET /openapi.json``) and the page that renders it (``GET /docs``, see
:mod:`ocrstream.http.docs`). :mod:`~ocrstream.core.openapi.schema` turns types into JSON
Schema, :mod:`~ocrstream.core.openapi.components` adds the models,
:mod:`~ocrstream.core.openapi.paths` the routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrstream.core.openapi.components import add_components
from ocrstream.core.openapi.paths import paths
from ocrstream.core.openapi.schema import SchemaBuilder, event_classes
from ocrstream.version import __version__

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ocrstream.core.config import Settings

__all__ = ["OPENAPI_VERSION", "build_openapi", "event_classes"]

OPENAPI_VERSION = "3.1.0"


def build_openapi(
    settings: Settings, *, page_assets: Mapping[str, str], metrics_content_type: str
) -> dict[str, object]:
    """The OpenAPI 3.1 document of the service as configured by ``settings``.

    Args:
        settings: limits and tokens are described as this server applies them.
        page_assets: the web page's files under ``/static/`` → their content types.
        metrics_content_type: the Content-Type of ``GET /metrics``.

    Returns:
        The document, JSON-ready.
    """
    builder = SchemaBuilder()
    job_events, firehose_events = add_components(builder)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ocrstream",
            "version": __version__,
            "summary": "Streaming OCR over Server-Sent Events",
            "description": (
                "Upload images to `POST /api/ocr` and read their validation and OCR results "
                "as a stream of events. Refusals before a stream starts are RFC 9457 problem "
                "documents (`application/problem+json`); everything after is events."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "jobs", "description": "Uploads, their streams and results"},
            {"name": "operations", "description": "For operators and tools"},
            {"name": "page", "description": "The web page for people"},
        ],
        "paths": paths(
            settings,
            job_events,
            firehose_events,
            page_assets=page_assets,
            metrics_content_type=metrics_content_type,
        ),
        "components": {
            "schemas": dict(sorted(builder.components.items())),
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "OCRSTREAM_API_TOKEN: when set, every /api/ route but "
                    "/api/events needs it.",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "OCRSTREAM_ADMIN_TOKEN: needed by GET /api/events; "
                    "unset, that route answers 404.",
                },
            },
        },
    }
