"""The OpenAPI 3.1 document of the service, generated from the code's own models.

Event schemas come from the frozen dataclasses of :mod:`ocrstream.events` (their fields
and type hints), error codes from :mod:`ocrstream.errors`, job states from
:mod:`ocrstream.jobs`: a field added to an event shows up here without an edit, and the
tests validate real events and snapshots against the document so any drift fails.

OpenAPI 3.1 has no ``itemSchema`` (3.2) for the items of a ``text/event-stream``. As
tools read a 3.1 event stream's ``schema`` as one event's (schemathesis does), the stream
responses' ``schema`` is one frame ``{event, id, data}`` whose ``data`` is JSON text with
the envelope as its ``contentSchema``; ``x-events`` also maps every SSE ``event:`` name
to its envelope schema.

``openapi_routes`` serves ``GET /openapi.json`` and ``GET /docs`` (a small page, no CDN,
that renders the document in the browser).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, cast, get_args, get_origin, get_type_hints

from quart import Blueprint, Response, current_app

from . import events
from .errors import (
    OCR_ERROR_CODES,
    PROCESSING_ERROR_CODES,
    VALIDATION_ERROR_CODES,
    RequestRefused,
)
from .jobs import FileResult, JobStatus
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

# The page's files and their content types (web.py keeps the table private).
from .web import _ASSETS as WEB_ASSETS

if TYPE_CHECKING:
    from .app import OCRStreamApp
    from .config import Settings

__all__ = [
    "DOCS_CSP",
    "OPENAPI_VERSION",
    "build_openapi",
    "docs_html",
    "event_classes",
    "openapi_routes",
]

_Schema = dict[str, object]

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/"

#: Events that belong to no job: their envelope has ``job_id`` and ``seq`` null.
_JOBLESS: frozenset[type[events.Event]] = frozenset({events.StreamLagged})
#: Error events and the codes their ``error.code`` may take (their ``__post_init__`` rule).
_ERROR_CODES: tuple[tuple[type[events.Event], str, tuple[str, ...]], ...] = (
    (events.ImageValidationError, "ValidationErrorInfo", VALIDATION_ERROR_CODES),
    (events.ImageOCRError, "OCRErrorInfo", OCR_ERROR_CODES),
    (events.ProcessingError, "ProcessingErrorInfo", PROCESSING_ERROR_CODES),
)
_ALL_ERROR_CODES = VALIDATION_ERROR_CODES + PROCESSING_ERROR_CODES + OCR_ERROR_CODES


def _ref(name: str) -> _Schema:
    return {"$ref": _REF + name}


def _nullable(schema: _Schema) -> _Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def event_classes() -> dict[str, type[events.Event]]:
    """Every event class, keyed by its SPEC type, in ``EVENT_TYPES`` order.

    Raises:
        RuntimeError: ``Event`` and ``EVENT_TYPES`` disagree.
    """
    classes = {cls.type: cls for cls in get_args(events.Event)}
    if set(classes) != set(events.EVENT_TYPES):
        raise RuntimeError("ocrstream.events.Event and EVENT_TYPES disagree")
    return {name: classes[name] for name in events.EVENT_TYPES}


def _docstring(cls: type) -> str | None:
    doc = cls.__doc__
    # dataclasses invent ``Name(*, field: type, ...)`` when a class has no docstring.
    if not doc or doc.startswith(f"{cls.__name__}("):
        return None
    return " ".join(doc.strip().split("\n\n")[0].split())


class _SchemaBuilder:
    """Turns type hints and dataclasses into JSON Schema (2020-12, as OpenAPI 3.1 uses)."""

    def __init__(self) -> None:
        self.components: dict[str, _Schema] = {}

    def dataclass_ref(
        self, cls: type, *, overrides: Mapping[str, _Schema] | None = None, name: str | None = None
    ) -> _Schema:
        """A ``$ref`` to ``cls``'s object schema, which is built on first use."""
        name = name or cls.__name__
        if name in self.components:
            return _ref(name)
        self.components[name] = {}  # placeholder, so a recursive type terminates
        overrides = overrides or {}
        hints = get_type_hints(cls)
        properties: dict[str, _Schema] = {}
        for field in dataclasses.fields(cls):
            if field.name in overrides:
                properties[field.name] = overrides[field.name]
            else:
                properties[field.name] = self.schema_of(hints[field.name])
        schema: _Schema = {"type": "object", "title": name}
        description = _docstring(cls)
        if description:
            schema["description"] = description
        # ``dataclasses.asdict`` always writes every field, so every one is required.
        schema |= {
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        self.components[name] = schema
        return _ref(name)

    def schema_of(self, hint: object) -> _Schema:
        """The JSON Schema of one type hint.

        Raises:
            TypeError: a type with no JSON form here (add it rather than guess).
        """
        simple: dict[object, _Schema] = {
            type(None): {"type": "null"},
            bool: {"type": "boolean"},
            int: {"type": "integer"},
            float: {"type": "number"},
            str: {"type": "string"},
            datetime: {"type": "string", "format": "date-time"},
            object: {},
            typing.Any: {},
        }
        if hint in simple:
            return dict(simple[hint])
        if isinstance(hint, type) and issubclass(hint, Enum):
            return {"type": "string", "enum": [str(member.value) for member in hint]}
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            return self.dataclass_ref(hint)
        origin, args = get_origin(hint), get_args(hint)
        if origin in (types.UnionType, typing.Union):
            return {"anyOf": [self.schema_of(arg) for arg in args]}
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema_of(args[0])}
            if args and all(arg == args[0] for arg in args):
                item = self.schema_of(args[0])
                return {
                    "type": "array",
                    "items": item,
                    "minItems": len(args),
                    "maxItems": len(args),
                }
            return {
                "type": "array",
                "prefixItems": [self.schema_of(arg) for arg in args],
                "items": False,
            }
        if origin in (list, Sequence, frozenset, set):
            return {"type": "array", "items": self.schema_of(args[0]) if args else {}}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.schema_of(args[1])}
        raise TypeError(f"no JSON Schema for the type hint {hint!r}")


def _problem_codes() -> dict[int, list[str]]:
    """The ``code`` of every refusal, by HTTP status (from the RequestRefused subclasses)."""
    codes: dict[int, list[str]] = {}
    pending: list[type[RequestRefused]] = [RequestRefused]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.code:
            codes.setdefault(cls.status_hint, []).append(cls.code)
    return {status: sorted(found) for status, found in sorted(codes.items())}


def _components(builder: _SchemaBuilder) -> tuple[dict[str, str], dict[str, str]]:
    """Add the event, envelope, problem and snapshot schemas to ``builder``.

    Returns:
        The SSE event names of job streams and of the firehose, each → its envelope ref.
    """
    components = builder.components
    builder.dataclass_ref(
        events.ErrorInfo,
        overrides={"code": {"type": "string", "enum": list(_ALL_ERROR_CODES)}},
    )
    error_overrides: dict[type, _Schema] = {}
    for cls, name, codes in _ERROR_CODES:
        components[name] = {
            "title": name,
            "description": f"The error of a {cls.type} event.",
            "allOf": [_ref("ErrorInfo")],
            "properties": {"code": {"enum": list(codes)}},
        }
        error_overrides[cls] = _ref(name)

    envelope_hints = get_type_hints(events.Envelope)
    job_id_type = _non_null(builder.schema_of(envelope_hints["job_id"]))
    seq_type = _non_null(builder.schema_of(envelope_hints["seq"]))
    job_events: dict[str, str] = {}
    firehose_events: dict[str, str] = {}
    for type_name, cls in event_classes().items():
        hints = get_type_hints(cls)
        overrides: dict[str, _Schema] = {}
        if cls in error_overrides:
            if hints.get("error") is not events.ErrorInfo:
                raise RuntimeError(f"{cls.__name__}.error is expected to be an ErrorInfo")
            overrides["error"] = error_overrides[cls]
        data = builder.dataclass_ref(cls, overrides=overrides)
        jobless = cls in _JOBLESS
        envelope = f"{cls.__name__}Event"
        components[envelope] = {
            "type": "object",
            "title": f"{type_name} event",
            "description": f"The envelope of a `{type_name}` event (one SSE frame's data).",
            "properties": {
                "type": {"const": type_name},
                "timestamp": {
                    "type": "string",
                    "format": "date-time",
                    "description": "RFC 3339, UTC, milliseconds",
                },
                "job_id": {"type": "null"} if jobless else job_id_type | {"format": "uuid"},
                "seq": {"type": "null"} if jobless else seq_type | {"minimum": 0},
                "data": data,
            },
            "required": ["type", "timestamp", "job_id", "seq", "data"],
            "additionalProperties": False,
        }
        firehose_events[type_name] = _REF + envelope
        if not jobless:
            job_events[type_name] = _REF + envelope
    for name, members, description, ids in (
        (
            "Event",
            firehose_events,
            "Any event (the firehose carries every type).",
            "The broadcast ring's sequence number (none on `stream_lagged`).",
        ),
        ("JobEvent", job_events, "An event of one job's stream.", "The event's `seq`."),
    ):
        components[name] = {
            "title": name,
            "description": description,
            "oneOf": [{"$ref": ref} for ref in members.values()],
            "discriminator": {"propertyName": "type", "mapping": dict(members)},
        }
        components[f"{name}Frame"] = _frame(members, name, ids=ids)

    problem_codes = _problem_codes()
    components["Problem"] = {
        "type": "object",
        "title": "Problem",
        "description": "RFC 9457 problem details; `code` is machine-readable.",
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer", "enum": list(problem_codes)},
            "detail": {"type": "string"},
            "code": {
                "type": "string",
                "enum": sorted(code for codes in problem_codes.values() for code in codes),
            },
        },
        "required": ["type", "title", "status", "detail", "code"],
    }

    builder.dataclass_ref(
        FileResult,
        overrides={
            # The record keeps these as plain dicts; on the wire they are these objects.
            "error": _nullable(_ref("ErrorInfo")),
            "lines": _nullable({"type": "array", "items": _ref("OCRLine")}),
        },
    )
    components["JobSnapshot"] = {
        "type": "object",
        "title": "JobSnapshot",
        "description": "What is known of one job: `GET /api/ocr/{job_id}`.",
        "properties": {
            "job_id": {"type": "string", "format": "uuid"},
            "status": builder.schema_of(JobStatus),
            "created_at": {"type": "string", "format": "date-time"},
            "event_count": {"type": "integer", "minimum": 0},
            "error": _nullable(_ref("ProcessingErrorInfo")),
            "files": {"type": "array", "items": _ref("FileResult")},
        },
        "required": ["job_id", "status", "created_at", "event_count", "error", "files"],
        "additionalProperties": False,
    }
    components["Health"] = {
        "type": "object",
        "properties": {"status": {"const": "ok"}},
        "required": ["status"],
    }
    return job_events, firehose_events


def _non_null(schema: _Schema) -> _Schema:
    """``schema`` without its ``null`` alternative (``X | None`` → ``X``)."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [option for option in options if option != {"type": "null"}]
        if len(rest) == 1 and isinstance(rest[0], dict):
            return dict(rest[0])
    return schema


def _problem(status: int, description: str, codes: Mapping[int, list[str]]) -> _Schema:
    schema: _Schema = {
        "allOf": [_ref("Problem")],
        "properties": {"status": {"const": status}, "code": {"enum": codes.get(status, [])}},
    }
    return {"description": description, "content": {"application/problem+json": {"schema": schema}}}


def _stream(
    description: str, frame: str, event_refs: Mapping[str, str], headers: _Schema | None = None
) -> _Schema:
    names = ", ".join(f"`{name}`" for name in event_refs)
    response: _Schema = {
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
                "schema": _ref(frame),
                "x-events": dict(event_refs),
            }
        },
    }
    if headers:
        response["headers"] = headers
    return response


def _frame(event_refs: Mapping[str, str], envelope: str, *, ids: str) -> _Schema:
    """One SSE frame as an SSE parser yields it: ``{event, id, data}``, ``data`` as JSON text."""
    return {
        "type": "object",
        "title": f"{envelope} frame",
        "description": f"One SSE frame; its `data` is a `{envelope}` as one line of JSON.",
        "properties": {
            "event": {"type": "string", "enum": list(event_refs)},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": ids},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref(envelope),
            },
        },
        "required": ["event", "data"],
    }


def _header(description: str, schema: _Schema, *, required: bool = False) -> _Schema:
    return {"description": description, "required": required, "schema": schema}


def _paths(
    settings: Settings, job_events: Mapping[str, str], firehose_events: Mapping[str, str]
) -> _Schema:
    codes = _problem_codes()
    api_security: list[_Schema] = [{"apiToken": []}] if settings.api_token is not None else []
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
    job_id: _Schema = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "description": "The job's id (a random UUID4, from the upload's `Location`).",
        "schema": {"type": "string", "format": "uuid"},
    }
    resume: list[_Schema] = [
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
    stream_headers: _Schema = {
        "Cache-Control": _header("`no-cache`", {"type": "string"}, required=True),
        "X-Accel-Buffering": _header("`no`: proxies must not buffer", {"type": "string"}),
    }
    formats = ", ".join(sorted(settings.allowed_formats))
    api_extra: _Schema = {"security": api_security} if api_security else {}

    submit: _Schema = {
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
            "413": _problem(413, "`Content-Length` is over MAX_REQUEST_SIZE.", codes),
            "415": _problem(415, "Not multipart/form-data, or no boundary.", codes),
            "503": busy,
        },
    } | api_extra
    snapshot: _Schema = {
        "operationId": "getJob",
        "tags": ["jobs"],
        "summary": "A job's state and per-file results",
        "parameters": [job_id],
        "responses": {
            "200": {
                "description": "The job's snapshot.",
                "content": {"application/json": {"schema": _ref("JobSnapshot")}},
            },
            "401": unauthorized,
            "404": not_found,
        },
    } | api_extra
    watch: _Schema = {
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
    firehose: _Schema = {
        "operationId": "watchAll",
        "tags": ["operations"],
        "summary": "Every job's events as they happen (for operators)",
        "description": (
            f"Needs the admin token (ADMIN_TOKEN is {admin}). Served from a ring of "
            f"{settings.event_buffer} events (EVENT_BUFFER); frame ids are the ring's own "
            "sequence numbers. A subscriber that falls behind gets `stream_lagged` (no `id:` "
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

    def plain(operation_id: str, summary: str, media_type: str, schema: _Schema) -> _Schema:
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

    page: _Schema = {
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
    asset: _Schema = {
        "get": {
            "operationId": "pageAsset",
            "tags": ["page"],
            "summary": "The web page's script and style sheet",
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": sorted(WEB_ASSETS)},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        media_type: {"schema": {"type": "string"}}
                        for media_type in sorted(set(WEB_ASSETS.values()))
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
        "/api/events": {"get": firehose},
        "/healthz": plain("health", "Liveness", "application/json", _ref("Health")),
        "/metrics": plain(
            "metrics",
            "Prometheus metrics (text exposition format)",
            METRICS_CONTENT_TYPE.split(";")[0].strip(),
            {"type": "string"},
        ),
        "/openapi.json": plain(
            "openapi", "This OpenAPI document", "application/json", {"type": "object"}
        ),
        "/docs": plain("docs", "This document as a web page", "text/html", {"type": "string"}),
    }


def build_openapi(settings: Settings) -> dict[str, object]:
    """The OpenAPI 3.1 document of the service as configured by ``settings``.

    Args:
        settings: limits and tokens are described as this server applies them.

    Returns:
        The document, JSON-ready.
    """
    from . import __version__  # late: the package imports this module while it loads

    builder = _SchemaBuilder()
    job_events, firehose_events = _components(builder)
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
        "paths": _paths(settings, job_events, firehose_events),
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


@functools.lru_cache(maxsize=8)
def _document_bytes(settings: Settings) -> bytes:
    return json.dumps(build_openapi(settings), ensure_ascii=False).encode("utf-8")


_DOCS_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ccc;margin-top:2rem}
section{border:1px solid #ddd;border-radius:6px;padding:.4rem 1rem;margin:.8rem 0}
code,pre{font:13px ui-monospace,monospace;background:#f5f5f5}
pre{padding:.6rem;overflow:auto}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5rem}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""

# Everything is rendered with textContent: nothing from the document becomes markup.
_DOCS_SCRIPT = """
"use strict";
const root = document.getElementById("api");
function add(parent, tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  parent.appendChild(node);
  return node;
}
function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  return JSON.stringify(schema);
}
function render(doc) {
  root.textContent = "";
  add(root, "h1", doc.info.title + " " + doc.info.version);
  add(root, "p", doc.info.description || "");
  add(root, "h2", "Operations");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = add(root, "section");
      const title = add(box, "h3");
      add(title, "span", method).className = "method";
      add(title, "code", path);
      add(box, "p", op.summary || "");
      if (op.description) add(box, "p", op.description);
      if (op.security) add(box, "p", "Security: " + JSON.stringify(op.security));
      if (op.parameters && op.parameters.length) {
        const table = add(box, "table");
        const head = add(table, "tr");
        const columns = ["parameter", "in", "required", "schema", "description"];
        for (const column of columns) add(head, "th", column);
        for (const p of op.parameters) {
          const row = add(table, "tr");
          for (const v of [p.name, p.in, p.required ? "yes" : "no", schemaName(p.schema),
                           p.description || ""]) add(row, "td", v);
        }
      }
      if (op.requestBody) {
        for (const [type, media] of Object.entries(op.requestBody.content)) {
          add(box, "h4", "Request body: " + type);
          add(box, "pre", JSON.stringify(media.schema, null, 2));
        }
      }
      const list = add(box, "ul");
      for (const [status, response] of Object.entries(op.responses)) {
        const line = add(list, "li");
        add(line, "strong", status + " ");
        add(line, "span", response.description);
        for (const [type, media] of Object.entries(response.content || {})) {
          const refs = media["x-events"] ? Object.values(media["x-events"]) : [];
          const shown = refs.length ? refs.map((r) => r.split("/").pop()).join(", ")
                                    : schemaName(media.schema);
          add(line, "div", type + ": " + shown);
        }
      }
    }
  }
  add(root, "h2", "Schemas");
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    const box = add(root, "section");
    box.id = "schema-" + name;
    add(box, "h3", name);
    add(box, "pre", JSON.stringify(schema, null, 2));
  }
}
fetch("openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => { root.textContent = "Could not load openapi.json: " + error; });
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


#: The Content-Security-Policy of ``GET /docs``: only its own script and style run.
DOCS_CSP = (
    "default-src 'none'; connect-src 'self'; "
    f"script-src {_csp_hash(_DOCS_SCRIPT)}; style-src {_csp_hash(_DOCS_STYLE)}; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def docs_html() -> str:
    """The ``GET /docs`` page: renders ``/openapi.json`` in the browser, no CDN, no handlers."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>ocrstream API</title>\n"
        f"<style>{_DOCS_STYLE}</style>\n</head>\n<body>\n"
        '<main id="api"><p>Loading <a href="openapi.json">openapi.json</a>…</p></main>\n'
        f"<script>{_DOCS_SCRIPT}</script>\n</body>\n</html>\n"
    )


openapi_routes = Blueprint("openapi", __name__)


@openapi_routes.get("/openapi.json", endpoint="openapi_document")
async def _openapi_document() -> Response:
    """``GET /openapi.json``: the document for this server's settings."""
    app = cast("OCRStreamApp", current_app)
    return Response(_document_bytes(app.state.settings), content_type="application/json")


@openapi_routes.get("/docs", endpoint="docs")
async def _docs_page() -> Response:
    """``GET /docs``: the document as a web page."""
    return Response(
        docs_html(),
        content_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": DOCS_CSP},
    )
