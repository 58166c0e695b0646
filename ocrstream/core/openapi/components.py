"""The components of the document: events, their envelopes, problems, snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING, get_type_hints

from ocrstream.core import events
from ocrstream.core.documents import Document
from ocrstream.core.envelope import Envelope
from ocrstream.core.errors import (
    OCR_ERROR_CODES,
    PROCESSING_ERROR_CODES,
    VALIDATION_ERROR_CODES,
    RequestRefused,
    ResultUnavailable,
)
from ocrstream.core.jobs import FileResult, JobStatus
from ocrstream.core.openapi.schema import (
    REF,
    Schema,
    SchemaBuilder,
    event_classes,
    non_null,
    nullable,
    ref,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ALL_ERROR_CODES", "ERROR_CODES", "JOBLESS", "add_components", "problem_codes"]

#: Events that belong to no job: their envelope has ``job_id`` and ``seq`` null.
JOBLESS: frozenset[type[events.Event]] = frozenset({events.StreamLagged})
#: Error events and the codes their ``error.code`` may take (their ``__post_init__`` rule).
ERROR_CODES: tuple[tuple[type[events.Event], str, tuple[str, ...]], ...] = (
    (events.ImageValidationError, "ValidationErrorInfo", VALIDATION_ERROR_CODES),
    (events.ImageOCRError, "OCRErrorInfo", OCR_ERROR_CODES),
    (events.ProcessingError, "ProcessingErrorInfo", PROCESSING_ERROR_CODES),
)
ALL_ERROR_CODES = VALIDATION_ERROR_CODES + PROCESSING_ERROR_CODES + OCR_ERROR_CODES


def problem_codes() -> dict[int, list[str]]:
    """The ``code`` of every refusal, by HTTP status (from the RequestRefused subclasses)."""
    codes: dict[int, list[str]] = {}
    pending: list[type[RequestRefused]] = [RequestRefused]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.code:
            codes.setdefault(cls.status_hint, []).append(cls.code)
        elif cls is ResultUnavailable:
            # A failed file's problem carries the code of the file's own error.
            codes.setdefault(cls.status_hint, []).extend(VALIDATION_ERROR_CODES + OCR_ERROR_CODES)
    return {status: sorted(found) for status, found in sorted(codes.items())}


def add_components(builder: SchemaBuilder) -> tuple[dict[str, str], dict[str, str]]:
    """Add the event, envelope, problem and snapshot schemas to ``builder``.

    Returns:
        The SSE event names of job streams and of the firehose, each → its envelope ref.
    """
    components = builder.components
    builder.dataclass_ref(
        events.ErrorInfo,
        overrides={"code": {"type": "string", "enum": list(ALL_ERROR_CODES)}},
    )
    error_overrides: dict[type, Schema] = {}
    for cls, name, codes in ERROR_CODES:
        components[name] = {
            "title": name,
            "description": f"The error of a {cls.type} event.",
            "allOf": [ref("ErrorInfo")],
            "properties": {"code": {"enum": list(codes)}},
        }
        error_overrides[cls] = ref(name)

    envelope_hints = get_type_hints(Envelope)
    job_id_type = non_null(builder.schema_of(envelope_hints["job_id"]))
    seq_type = non_null(builder.schema_of(envelope_hints["seq"]))
    job_events: dict[str, str] = {}
    firehose_events: dict[str, str] = {}
    for type_name, cls in event_classes().items():
        hints = get_type_hints(cls)
        overrides: dict[str, Schema] = {}
        if cls in error_overrides:
            if hints.get("error") is not events.ErrorInfo:
                raise RuntimeError(f"{cls.__name__}.error is expected to be an ErrorInfo")
            overrides["error"] = error_overrides[cls]
        data = builder.dataclass_ref(cls, overrides=overrides)
        jobless = cls in JOBLESS
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
        firehose_events[type_name] = REF + envelope
        if not jobless:
            job_events[type_name] = REF + envelope
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

    codes_by_status = problem_codes()
    components["Problem"] = {
        "type": "object",
        "title": "Problem",
        "description": "RFC 9457 problem details; `code` is machine-readable.",
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer", "enum": list(codes_by_status)},
            "detail": {"type": "string"},
            "code": {
                "type": "string",
                "enum": sorted(code for codes in codes_by_status.values() for code in codes),
            },
        },
        "required": ["type", "title", "status", "detail", "code"],
    }

    builder.dataclass_ref(Document, name="FileDocument")
    builder.dataclass_ref(
        FileResult,
        overrides={
            # The record keeps these as plain dicts; on the wire they are these objects.
            "error": nullable(ref("ErrorInfo")),
            "lines": nullable({"type": "array", "items": ref("OCRLine")}),
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
            "error": nullable(ref("ProcessingErrorInfo")),
            "files": {"type": "array", "items": ref("FileResult")},
        },
        "required": ["job_id", "status", "created_at", "event_count", "error", "files"],
        "additionalProperties": False,
    }
    components["Health"] = {
        "type": "object",
        "properties": {"status": {"const": "ok"}},
        "required": ["status"],
    }
    components["Ready"] = {
        "type": "object",
        "properties": {"status": {"const": "ready"}},
        "required": ["status"],
    }
    return job_events, firehose_events


def _frame(event_refs: Mapping[str, str], envelope: str, *, ids: str) -> Schema:
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
                "contentSchema": ref(envelope),
            },
        },
        "required": ["event", "data"],
    }
