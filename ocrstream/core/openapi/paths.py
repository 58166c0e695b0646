"""The paths of the document: every route, its parameters and its responses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrstream.core.openapi.components import problem_codes
from ocrstream.core.openapi.results import export_operation
from ocrstream.core.openapi.schema import Schema, ref

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ocrstream.core.config import Settings

__all__ = ["paths"]

_NOT_READY = "Not ready: shutting down, or the OCR workers are not running."


def _problem(status: int, description: str, codes: Mapping[int, list[str]]) -> Schema:
    schema: Schema = {
        "allOf": [ref("Problem")],
        "properties": {"status": {"const": status}, "code": {"enum": codes.get(status, [])}},
    }
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def _stream(
    description: str, frame: str, event_refs: Mapping[str, str], headers: Schema | None = None
) -> Schema:
    names = ", ".join(f"`{name}`" for name in event_refs)
    response: Schema = {
        "description": (
            f"{description}\n\nServer-Sent Events. Each frame is `id: <id>`, `event: <type>`, "
            "`data: <one line of JSON>`; the JSON is the event's envelope "
            "`{type, timestamp, job_id, seq, data}`. "
            "A `: keep-alive` comment is sent after KEEPALIVE_INTERVAL seconds of silence. "
            f"Event types: {names}. The schema describes one frame (OpenAPI 3.2 calls it "
            "`itemSchema`; before 3.2, tools read an event stream's `schema` that way); "
            "`x-events` maps each SSE event name to its envelope schema."
        ),
        "content": {
            "text/event-stream": {
                "schema": ref(frame),
                "x-events": dict(event_refs),
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: Schema, *, required: bool = False) -> Schema:
    return {"description": description, "required": required, "schema": schema}


def paths(
    settings: Settings,
    job_events: Mapping[str, str],
    firehose_events: Mapping[str, str],
    *,
    page_assets: Mapping[str, str],
    metrics_content_type: str,
) -> Schema:
    """Every route of the service as ``settings`` configure it.

    Args:
        settings: tokens and limits, described as this server applies them.
        job_events, firehose_events: each stream's SSE event names → envelope refs.
        page_assets: the web page's files under ``/static/`` → their content types.
        metrics_content_type: the Content-Type of ``GET /metrics``.
    """
    codes = problem_codes()
    api_security: list[Schema] = [{"apiToken": []}] if settings.api_token is not None else []
    guarded = "set" if settings.api_token is not None else "not set: never sent"
    unauthorized = _problem(401, f"Missing or wrong bearer token (API_TOKEN is {guarded}).", codes)
    unauthorized["headers"] = {
        "WWW-Authenticate": _header('`Bearer realm="ocrstream"`', {"type": "string"})
    }
    not_found = _problem(404, "No such job: unknown, or expired after RESULT_TTL.", codes)
    busy = _problem(503, "MAX_STREAMS streams are open (or the server is busy).", codes)
    busy["headers"] = {
        "Retry-After": _header(
            "Seconds to wait before retrying.", {"type": "integer", "minimum": 0}, required=True
        )
    }
    job_id: Schema = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "The job's id (a random UUID4, from the upload's `Location`).",
        "schema": {"type": "string", "format": "uuid"},
    }
    resume: list[Schema] = [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "Resume after this frame id (what an EventSource sends on reconnect).",
            "schema": {"type": "integer", "minimum": 0},
        },
        {
            "name": "last_event_id",
            "in": "query",
            "required": False,
            "description": "Like `Last-Event-ID`, for clients that cannot set headers.",
            "schema": {"type": "integer", "minimum": 0},
        },
    ]
    stream_headers: Schema = {
        "Cache-Control": _header("`no-cache`", {"type": "string"}, required=True),
        "X-Accel-Buffering": _header("`no`: proxies must not buffer", {"type": "string"}),
    }
    formats = ", ".join(sorted(settings.allowed_formats))
    api_extra: Schema = {"security": api_security} if api_security else {}

    submit: Schema = {
        "operationId": "submitJob",
        "tags": ["jobs"],
        "summary": "Upload images; stream their validation and OCR as events",
        "description": (
            "Every multipart part with a filename is a file, in body order. "
            f"At most {settings.max_files} files are processed (MAX_FILES; later ones get "
            f"`too_many_files`), each up to {settings.max_file_size} bytes (MAX_FILE_SIZE), "
            f"at most {settings.max_parts} parts (MAX_PARTS) and "
            f"{settings.request_size_limit} bytes in all (MAX_REQUEST_SIZE). "
            f"Accepted formats, judged from the bytes: {formats}. "
            "The response head is sent once the whole body has arrived, with "
            "`upload_started` as its first event (or with the one `processing_error` if "
            "the upload fails first); refusals come before the body is asked for (no "
            "`100 Continue` ahead of them). "
            "Failures after the stream has started are events, not HTTP statuses."
        ),
        "parameters": [
            {
                "name": "ocr",
                "in": "query",
                "required": False,
                "description": "`false`, `0`, `no` or `off` skips OCR for this request.",
                "schema": {"type": "string", "examples": ["false", "true"]},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "format": "binary",
                                    "contentMediaType": "application/octet-stream",
                                },
                                "description": "The images (any part with a filename counts).",
                            }
                        },
                        "required": ["files"],
                    }
                }
            },
        },
        "responses": {
            "200": _stream(
                "The job's events, live, until its terminal event.",
                "JobEventFrame",
                job_events,
                stream_headers
                | {
                    "Location": _header(
                        "`/api/ocr/{job_id}`: the job's snapshot",
                        {"type": "string", "format": "uri-reference"},
                        required=True,
                    )
                },
            ),
            "401": unauthorized,
            "403": _problem(
                403,
                "A browser's POST from another site whose origin is not in CORS_ORIGINS "
                "(refused before its body is read and before its token is looked at).",
                codes,
            ),
            "413": _problem(413, "`Content-Length` is over MAX_REQUEST_SIZE.", codes),
            "415": _problem(415, "Not multipart/form-data, or no boundary.", codes),
            "503": busy,
        },
    } | api_extra
    snapshot: Schema = {
        "operationId": "getJob",
        "tags": ["jobs"],
        "summary": "A job's state and per-file results",
        "parameters": [job_id],
        "responses": {
            "200": {
                "description": "The job's snapshot.",
                "content": {"application/json": {"schema": ref("JobSnapshot")}},
            },
            "401": unauthorized,
            "404": not_found,
        },
    } | api_extra
    watch: Schema = {
        "operationId": "watchJob",
        "tags": ["jobs"],
        "summary": "A job's whole stream so far, then live, until its terminal event",
        "parameters": [job_id, *resume],
        "responses": {
            "200": _stream(
                "The job's events after `Last-Event-ID` (all of them without one).",
                "JobEventFrame",
                job_events,
                stream_headers,
            ),
            "204": {"description": "The resume point is at or past the job's terminal event."},
            "401": unauthorized,
            "404": not_found,
            "503": busy,
        },
    } | api_extra
    admin = "set" if settings.admin_token is not None else "not set: this route answers 404"
    firehose: Schema = {
        "operationId": "watchAll",
        "tags": ["operations"],
        "summary": "Every job's events as they happen (for operators)",
        "description": (
            f"Needs the admin token (ADMIN_TOKEN is {admin}). Served from a ring of "
            f"{settings.event_buffer} events (EVENT_BUFFER); frame ids are the ring's own "
            "sequence numbers. A reader that falls behind gets `stream_lagged` (no `id:` "
            "line; `job_id` and `seq` null) and goes on from the oldest event still held."
        ),
        "security": [{"adminToken": []}],
        "parameters": resume,
        "responses": {
            "200": _stream(
                "Every job's events, live; the stream never ends.", "EventFrame", firehose_events
            ),
            "401": _problem(401, "Missing or wrong admin token.", codes),
            "404": _problem(404, "The firehose is disabled (ADMIN_TOKEN is not set).", codes),
            "503": busy,
        },
    }

    def plain(operation_id: str, summary: str, media_type: str, schema: Schema) -> Schema:
        return {
            "get": {
                "operationId": operation_id,
                "tags": ["operations"],
                "summary": summary,
                "responses": {
                    "200": {"description": summary, "content": {media_type: {"schema": schema}}}
                },
            }
        }

    page: Schema = {
        "get": {
            "operationId": "page",
            "tags": ["page"],
            "summary": "The web page: pick or drop images, watch their progress, read the text",
            "responses": {
                "200": {
                    "description": "The page (its script and style are under /static/).",
                    "headers": {
                        "Content-Security-Policy": _header("The page's policy", {"type": "string"})
                    },
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    }
    asset: Schema = {
        "get": {
            "operationId": "pageAsset",
            "tags": ["page"],
            "summary": "The web page's script and style sheet",
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": sorted(page_assets)},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        media_type: {"schema": {"type": "string"}}
                        for media_type in sorted(set(page_assets.values()))
                    },
                },
                "404": _problem(404, "Not one of the page's files.", codes),
            },
        }
    }
    return {
        "/": page,
        "/static/{name}": asset,
        "/api/ocr": {"post": submit},
        "/api/ocr/{job_id}": {"get": snapshot},
        "/api/ocr/{job_id}/events": {"get": watch},
        "/api/ocr/{job_id}/files/{file_index}": {
            "get": export_operation(
                job_id=job_id,
                unauthorized=unauthorized,
                problem=lambda status, description: _problem(status, description, codes),
                extra=api_extra,
            )
        },
        "/api/events": {"get": firehose},
        "/healthz": plain("health", "Liveness", "application/json", ref("Health")),
        "/readyz": {
            "get": {
                "operationId": "ready",
                "tags": ["operations"],
                "summary": "Readiness: whether this instance can take work now",
                "responses": {
                    "200": {
                        "description": "Ready",
                        "content": {"application/json": {"schema": ref("Ready")}},
                    },
                    "503": busy | {"description": _NOT_READY},
                },
            }
        },
        "/metrics": plain(
            "metrics",
            "Prometheus metrics (text exposition format)",
            metrics_content_type.split(";")[0].strip(),
            {"type": "string"},
        ),
        "/openapi.json": plain(
            "openapi", "This OpenAPI document", "application/json", {"type": "object"}
        ),
        "/docs": plain("docs", "This document as a web page", "text/html", {"type": "string"}),
    }
