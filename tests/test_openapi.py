"""The OpenAPI document: valid 3.1, complete, and true to the events the code really sends."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ocrstream import create_app
from ocrstream.core import events as ev
from ocrstream.core.config import Settings, load_settings
from ocrstream.core.envelope import Envelope
from ocrstream.core.errors import OCR_ERROR_CODES, VALIDATION_ERROR_CODES, RequestRefused
from ocrstream.core.jobs import JobRecord
from ocrstream.core.openapi import event_classes
from ocrstream.http.docs import DOCS_CSP, docs_html, openapi_document
from tests.apps import serving
from tests.images import Upload, make_image, multipart_body
from tests.samples import one_of_each
from tests.sse_reading import SSEDecoder

BOUNDARY = "ocrstream-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
JOB_ID = "2f1d3c4b-5a69-4788-9abc-def012345678"
BASE = "urn:ocrstream:openapi"


def _settings(**overrides: object) -> Settings:
    return load_settings({}, **({"ocr_engine": "none"} | overrides))


def _document(**overrides: object) -> dict[str, Any]:
    # Through JSON, exactly as a client receives it.
    document: dict[str, Any] = json.loads(json.dumps(openapi_document(_settings(**overrides))))
    return document


def _pointer(*parts: str) -> str:
    return "".join("/" + quote(part.replace("~", "~0").replace("/", "~1")) for part in parts)


def _validator(document: dict[str, Any], *pointer: str) -> Draft202012Validator:
    """A validator for the schema at ``pointer`` whose ``$ref``s resolve in ``document``."""
    resource: Resource[Any] = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(BASE, resource)
    return Draft202012Validator(
        {"$ref": BASE + "#" + _pointer(*pointer)},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _schema(document: dict[str, Any], name: str) -> Draft202012Validator:
    return _validator(document, "components", "schemas", name)


def _errors(validator: Draft202012Validator, instance: object) -> list[str]:
    return [error.message for error in validator.iter_errors(instance)]


def _envelope(event: ev.Event, seq: int = 0) -> dict[str, Any]:
    jobless = isinstance(event, ev.StreamLagged)
    envelope = Envelope(
        event=event,
        job_id=None if jobless else JOB_ID,
        seq=None if jobless else seq,
        timestamp=datetime(2026, 11, 29, 12, 0, 1, 234567, tzinfo=UTC),
    )
    decoded: dict[str, Any] = json.loads(envelope.to_json())
    return decoded


@pytest.mark.parametrize(
    "overrides",
    [{}, {"api_token": "t0k3n", "admin_token": "adm1n", "max_files": 3}],
    ids=["default", "tokens"],
)
def test_the_document_is_valid_openapi_3_1(overrides: dict[str, object]) -> None:
    document = _document(**overrides)
    assert document["openapi"].startswith("3.1.")
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_route_the_app_registers_is_documented_and_nothing_else() -> None:
    app = create_app(_settings())
    registered = {
        (re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in _document()["paths"].items() for method in item}
    assert registered == documented


def test_every_event_type_has_an_envelope_and_a_data_schema() -> None:
    schemas = _document()["components"]["schemas"]
    assert list(schemas["Event"]["discriminator"]["mapping"]) == list(ev.EVENT_TYPES)
    assert "stream_lagged" not in schemas["JobEvent"]["discriminator"]["mapping"]
    for name in ("Event", "JobEvent"):
        frame = schemas[f"{name}Frame"]["properties"]
        assert frame["event"]["enum"] == list(schemas[name]["discriminator"]["mapping"])
        assert frame["data"]["contentSchema"] == {"$ref": f"#/components/schemas/{name}"}
    for type_name, cls in event_classes().items():
        envelope = schemas[f"{cls.__name__}Event"]
        assert envelope["properties"]["type"] == {"const": type_name}
        data = schemas[cls.__name__]
        assert list(data["properties"]) == [field.name for field in dataclasses.fields(cls)]
        assert data["required"] == list(data["properties"])
        assert data["additionalProperties"] is False


def test_every_event_class_is_covered_by_the_examples() -> None:
    assert {event.type for event in one_of_each()} == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event", one_of_each(), ids=lambda event: type(event).__name__)
def test_real_events_match_their_schemas(event: ev.Event) -> None:
    document = _document()
    envelope = _envelope(event, seq=7)
    assert _errors(_schema(document, "Event"), envelope) == []
    assert _errors(_schema(document, f"{type(event).__name__}Event"), envelope) == []
    job_event = _schema(document, "JobEvent")
    assert job_event.is_valid(envelope) == (not isinstance(event, ev.StreamLagged))


def test_the_schemas_reject_what_the_code_never_sends() -> None:
    document = _document()
    event_schema = _schema(document, "Event")
    good = _envelope(
        ev.ImageValidationError(
            file_index=0,
            file_name="x",
            size_bytes=1,
            error=ev.ErrorInfo(code="not_an_image", message="no"),
        )
    )
    assert event_schema.is_valid(good)
    broken = [json.loads(json.dumps(good)) for _ in range(7)]
    broken[0]["data"]["extra"] = 1  # a field the dataclass does not have
    del broken[1]["data"]["size_bytes"]  # a field it has, missing
    broken[2]["data"]["file_index"] = "0"  # a wrong type
    broken[3]["data"]["error"]["code"] = "ocr_failed"  # an OCR code on a validation error
    broken[4]["job_id"] = broken[4]["seq"] = None  # only stream_lagged belongs to no job
    broken[5]["type"] = "image_validation_success"  # type and data disagree
    broken[6]["timestamp"] = "yesterday"
    assert [event_schema.is_valid(envelope) for envelope in broken] == [False] * len(broken)


def _snapshot_schema(document: dict[str, Any]) -> Draft202012Validator:
    return _validator(
        document,
        "paths",
        "/api/ocr/{job_id}",
        "get",
        "responses",
        "200",
        "content",
        "application/json",
        "schema",
    )


def test_snapshots_with_every_kind_of_result_match_their_schema() -> None:
    document = _document()
    record = JobRecord(job_id=JOB_ID)
    # Every job event but the terminal ones; file 0 ends with its OCR error.
    for event in one_of_each()[:-3]:
        record.record(event, now=1.0)
    running = record.snapshot()
    assert _errors(_snapshot_schema(document), json.loads(json.dumps(running))) == []
    record.record(
        ev.ProcessingError(error=ev.ErrorInfo(code="shutting_down", message="bye")), now=2
    )
    failed = json.loads(json.dumps(record.snapshot()))
    assert failed["status"] == "cancelled"
    assert failed["files"][0]["status"] == "ocr_failed"
    assert _errors(_snapshot_schema(document), failed) == []
    recognised = JobRecord(job_id=JOB_ID)
    for event in one_of_each()[:9]:
        recognised.record(event, now=1.0)
    snapshot = json.loads(json.dumps(recognised.snapshot()))
    assert snapshot["files"][0]["lines"][0]["bbox"] == [1, 2, 30, 12]
    assert _errors(_snapshot_schema(document), snapshot) == []


def _problem_schema(document: dict[str, Any], path: str, method: str, status: int) -> Any:
    return _validator(
        document,
        "paths",
        path,
        method,
        "responses",
        str(status),
        "content",
        "application/problem+json",
        "schema",
    )


async def test_a_real_upload_its_snapshot_and_refusals_match_the_document() -> None:
    settings = _settings()
    document = json.loads(json.dumps(openapi_document(settings)))
    async with serving(create_app(settings)) as client:
        await _upload_and_refusals_match(document, client)


async def _upload_and_refusals_match(document: dict[str, Any], client: Any) -> None:
    body = multipart_body(
        [Upload(make_image("PNG"), "a.png", "image/png"), Upload(b"nope", "b.txt", "text/plain")],
        BOUNDARY,
    )
    response = await client.post("/api/ocr", data=body, headers={"Content-Type": MULTIPART})
    assert response.status_code == 200
    messages = SSEDecoder().feed(await response.get_data(as_text=False))
    job_event = _schema(document, "JobEvent")
    frame = _schema(document, "JobEventFrame")
    for message in messages:
        envelope = json.loads(message.data)
        assert message.event == envelope["type"]
        assert message.id == str(envelope["seq"])
        assert _errors(job_event, envelope) == []
        as_parsed = {"event": message.event, "id": message.id, "data": message.data}
        assert _errors(frame, as_parsed) == []
    assert {json.loads(m.data)["type"] for m in messages} >= {
        "upload_started",
        "image_validation_success",
        "image_validation_error",
        "processing_complete",
    }

    snapshot = await client.get(response.headers["Location"])
    assert _errors(_snapshot_schema(document), await snapshot.get_json()) == []

    refusals = [
        ("/api/ocr", "post", await client.post("/api/ocr", data=b"x")),
        ("/api/ocr/{job_id}", "get", await client.get(f"/api/ocr/{JOB_ID}")),
        ("/api/ocr/{job_id}/events", "get", await client.get(f"/api/ocr/{JOB_ID}/events")),
        ("/api/events", "get", await client.get("/api/events")),
    ]
    for path, method, refusal in refusals:
        assert refusal.headers["Content-Type"] == "application/problem+json"
        schema = _problem_schema(document, path, method, refusal.status_code)
        assert _errors(schema, json.loads(await refusal.get_data())) == []


def test_problem_codes_come_from_the_error_tree() -> None:
    documented = set(_document()["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    pending: list[type[RequestRefused]] = [RequestRefused]
    codes: set[str] = set()
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        codes |= {cls.code} if cls.code else set()
    # A failed file's export answers 422 with the code of the file's own error.
    codes |= set(VALIDATION_ERROR_CODES + OCR_ERROR_CODES)
    assert documented == codes


def test_the_document_follows_the_settings() -> None:
    open_server = _document()
    guarded = _document(api_token="t0k3n", max_files=3)
    assert "security" not in open_server["paths"]["/api/ocr"]["post"]
    assert guarded["paths"]["/api/ocr"]["post"]["security"] == [{"apiToken": []}]
    assert guarded["paths"]["/api/ocr/{job_id}"]["get"]["security"] == [{"apiToken": []}]
    assert guarded["paths"]["/api/events"]["get"]["security"] == [{"adminToken": []}]
    assert "At most 3 files" in guarded["paths"]["/api/ocr"]["post"]["description"]


async def test_openapi_json_is_served_without_a_token() -> None:
    settings = _settings(api_token="t0k3n")
    response = await create_app(settings).test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert await response.get_json() == json.loads(json.dumps(openapi_document(settings)))


def _csp_source(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


async def test_docs_is_a_self_contained_page_its_policy_allows() -> None:
    response = await create_app(_settings()).test_client().get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = await response.get_data(as_text=True)
    assert page == docs_html()
    policy = response.headers["Content-Security-Policy"]
    assert policy == DOCS_CSP
    assert "default-src 'none'" in policy
    # No CDN, no external resource, no inline event handler.
    assert not re.search(r"\bsrc\s*=|https?://|//cdn", page)
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert _csp_source(script) in policy
    assert _csp_source(style) in policy
    assert "textContent" in script
    assert "innerHTML" not in script


def test_every_event_schema_describes_its_data() -> None:
    components = openapi_document(_settings())["components"]
    assert isinstance(components, dict)
    schemas = components["schemas"]
    for name, cls in event_classes().items():
        schema = schemas[cls.__name__]
        assert schema.get("description"), f"{name}: the event class has no docstring"
