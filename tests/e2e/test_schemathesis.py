"""Schemathesis against a real ``ocrstream serve``, from the server's own ``/openapi.json``.

Every documented operation gets generated requests, valid and invalid; each response must
not be a 5xx and must conform to the document: status code, content type and body.
Schemathesis reads an event stream to its end and checks each frame against the
response's schema, and each frame's ``data`` against its ``contentSchema`` (the event
envelopes), so the streaming routes are checked too. A second pass aims the ``{job_id}``
operations at a real finished job, so its snapshot and replayed stream are checked, not
only their 404s. The firehose runs without ADMIN_TOKEN (it would never end), so only its
refusal is exercised here.

Schemathesis's own pytest integration (``schemathesis.pytest.from_fixture``) fails on
pytest 9.2 (it sets ``request.node._nodeid``, which pytest no longer has), so the tests
drive its Hypothesis strategies (``APIOperation.as_strategy``) and ``call_and_validate``
directly, one test per operation of the generated document.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ocrstream.core.config import load_settings
from ocrstream.http.docs import openapi_document
from tests.e2e.served import serve_in_subprocess
from tests.images import Upload, make_image, multipart_body
from tests.ordering import TERMINAL, check_stream
from tests.sse_reading import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from schemathesis import CheckContext
    from schemathesis.schemas import BaseSchema

pytestmark = pytest.mark.e2e

#: More than any stream here can hold (MAX_PARTS parts, a few events each): streams are
#: read to their end, not cut at schemathesis's default of 20 events.
MAX_STREAM_EVENTS = 10_000


def job_streams_follow_the_spec(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """A job's stream ends with its one terminal event, seqs consecutive; uploads: rules 1-6."""
    content_type = response.headers.get("content-type", [""])[0]
    if response.status_code != 200 or not content_type.startswith("text/event-stream"):
        return None
    assert not response.stream_cut_short, "the stream did not end"
    messages = SSEDecoder().feed(response.content)
    events: list[dict[str, Any]] = [json.loads(message.data) for message in messages]
    assert [message.id for message in messages] == [str(event["seq"]) for event in events]
    if case.method == "POST":
        check_stream(events)
        return None
    types = [event["type"] for event in events]
    assert [kind in TERMINAL for kind in types] == [False] * (len(types) - 1) + [True], types
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    job_streams_follow_the_spec,
]
#: Per operation; the examples and coverage phases add a few fixed cases to these.
MAX_EXAMPLES = 25
STARTUP_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m ocrstream serve`` on a free loopback port, no OCR engine, no tokens."""
    settings = {"OCRSTREAM_OCR_ENGINE": "none", "OCRSTREAM_SHUTDOWN_GRACE": "1"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with serve_in_subprocess(settings, log=log) as url:
        yield url


@pytest.fixture(scope="module")
def finished_job(server_url: str) -> str:
    """The id of a job that has ended: one valid and one invalid file."""
    boundary = "schemathesis-fixture"
    body = multipart_body(
        [Upload(make_image("PNG"), "a.png", "image/png"), Upload(b"nope", "b.txt", "text/plain")],
        boundary,
    )
    response = httpx.post(
        f"{server_url}/api/ocr",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 200
    assert "processing_complete" in response.text
    return response.headers["Location"].rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def api_schema(server_url: str) -> BaseSchema:
    """The live server's own document, as schemathesis loads it."""
    schema = schemathesis.openapi.from_url(f"{server_url}/openapi.json", wait_for_schema=10)
    schema.config.update(request_timeout=20)
    schema.config.max_stream_events = MAX_STREAM_EVENTS
    return schema


def _operations(**overrides: object) -> list[tuple[str, str]]:
    document = openapi_document(load_settings({}, ocr_engine="none", **overrides))
    paths = document["paths"]
    assert isinstance(paths, dict)
    return [(method.upper(), path) for path, item in paths.items() for method in item]


OPERATIONS = _operations()
JOB_OPERATIONS = [(method, path) for method, path in OPERATIONS if "{job_id}" in path]


def test_the_served_document_is_the_generated_one(server_url: str) -> None:
    served = httpx.get(f"{server_url}/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(openapi_document(load_settings({}, ocr_engine="none"))))


def _run(
    schema: BaseSchema, method: str, path: str, path_parameters: dict[str, str] | None = None
) -> None:
    """Send up to 2 x MAX_EXAMPLES valid and invalid requests; every response must conform."""
    operation = schema[path][method]
    strategies = [
        operation.as_strategy(mode, path_parameters=path_parameters)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]

    @given(case=st.one_of(strategies))
    @settings(
        max_examples=2 * MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        database=None,
    )
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    check()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_conforms_to_the_document(
    api_schema: BaseSchema, method: str, path: str
) -> None:
    _run(api_schema, method, path)


@pytest.mark.parametrize(("method", "path"), JOB_OPERATIONS)
def test_a_real_jobs_snapshot_and_stream_conform_to_the_document(
    api_schema: BaseSchema, finished_job: str, method: str, path: str
) -> None:
    _run(api_schema, method, path, {"job_id": finished_job})
