"""A Python client: typed events of a submission, on httpx and httpx-sse.

Works under Trio and asyncio (httpx runs on either through anyio)::

    async with OCRStreamClient("http://127.0.0.1:8000") as client:
        async with aclosing(client.submit(["invoice.png"])) as events:
            async for envelope in events:
                print(envelope.type, envelope.event)
        result = await client.recognize(["receipt.jpg"])
        print(result.files[0].text)
        pdf = await client.export(result.job_id, 0, "pdf")  # a searchable PDF

Refusals before a stream starts raise :class:`ProblemError` with the RFC 9457 problem
details; a job that ends with ``processing_error`` makes :meth:`OCRStreamClient.recognize`
raise :class:`JobFailed` (the event iterators just yield it, as the last event).
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import aconnect_sse

from ocrstream.core.envelope import Envelope, parse_envelope
from ocrstream.core.events import ProcessingComplete, ProcessingError
from ocrstream.core.jobs import FileResult, fold_file

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Sequence
    from types import TracebackType

__all__ = [
    "FileResult",
    "JobFailed",
    "JobResult",
    "OCRStreamClient",
    "ProblemError",
    "Upload",
    "collect",
]

#: A file to upload: a path, or ``(name, bytes)``, or ``(name, bytes, content_type)``.
Upload = str | Path | tuple[str, bytes] | tuple[str, bytes, str]


class ProblemError(Exception):
    """The server refused the request (a problem document, RFC 9457).

    Attributes:
        status: the HTTP status.
        title: the problem's title.
        detail: what was wrong.
        code: the service's machine-readable code, if any.
    """

    def __init__(self, status: int, title: str, detail: str, code: str | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code


class JobFailed(Exception):
    """The job ended with ``processing_error``.

    Attributes:
        code: the processing error code (e.g. ``malformed_request``).
        message: the server's message.
        job_id: the job.
    """

    def __init__(self, code: str, message: str, job_id: str | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.job_id = job_id


@dataclass
class JobResult:
    """A finished job: its id, every event, and the per-file results in body order
    (:class:`~ocrstream.core.jobs.FileResult`, as in the server's snapshot)."""

    job_id: str
    events: list[Envelope]
    files: list[FileResult]


def _part(upload: Upload) -> tuple[str, tuple[str, bytes, str]]:
    if isinstance(upload, (str, Path)):
        path = Path(upload)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return "files", (path.name, path.read_bytes(), content_type)
    if len(upload) == 2:
        name, data = upload
        return "files", (name, data, "application/octet-stream")
    name, data, content_type = upload
    return "files", (name, data, content_type)


def _problem(response: httpx.Response, body: bytes) -> ProblemError:
    try:
        document = json.loads(body)
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    return ProblemError(
        response.status_code,
        str(document.get("title", response.reason_phrase)),
        str(document.get("detail", body[:200].decode("utf-8", "replace"))),
        document.get("code") if isinstance(document.get("code"), str) else None,
    )


class OCRStreamClient:
    """A client of one ocrstream server.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000``.
        token: bearer token (API_TOKEN or, for :meth:`firehose`, ADMIN_TOKEN).
        timeout: seconds for connecting and between bytes (None: wait for ever).
        transport: an httpx transport in place of the network (``httpx.MockTransport``
            for a client-side test; the default talks to ``base_url``).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float | None = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> OCRStreamClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (idempotent)."""
        await self._http.aclose()

    async def _events(self, method: str, url: str, **kwargs: Any) -> AsyncGenerator[Envelope]:
        async with aconnect_sse(self._http, method, url, **kwargs) as source:
            response = source.response
            if response.status_code == 204:
                return
            if response.status_code != 200:
                raise _problem(response, await response.aread())
            async for message in source.aiter_sse():
                yield parse_envelope(json.loads(message.data))

    def submit(
        self, files: Sequence[Upload], *, ocr: bool = True, pdf_text: str | None = None
    ) -> AsyncGenerator[Envelope]:
        """Upload ``files`` and yield the job's events as they arrive, terminal last.

        Args:
            files: paths, or ``(name, bytes[, content_type])``.
            ocr: False skips OCR (``?ocr=false``).
            pdf_text: ``auto`` or ``ocr`` for this request's PDFs (None: the server's
                PDF_TEXT).

        Raises:
            ProblemError: the server refused the request before streaming.
        """
        params = {} if ocr else {"ocr": "false"}
        if pdf_text is not None:
            params["pdf_text"] = pdf_text
        return self._events("POST", "/api/ocr", files=[_part(f) for f in files], params=params)

    def watch(self, job_id: str, *, last_event_id: int | None = None) -> AsyncGenerator[Envelope]:
        """Follow an existing job: its history after ``last_event_id``, then live.

        Raises:
            ProblemError: unknown or expired job (404), bad token (401).
        """
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        return self._events("GET", f"/api/ocr/{job_id}/events", headers=headers)

    async def export(self, job_id: str, file_index: int, format: str = "json") -> bytes:
        """One recognised file of a job as ``format``: ``json``, ``txt``, ``hocr``,
        ``alto`` or ``pdf`` (a searchable PDF).

        Raises:
            ProblemError: unknown job or file (404), still being worked on (409), failed
                (422, its error code in ``code``), unknown format (400).
        """
        response = await self._http.get(
            f"/api/ocr/{job_id}/files/{file_index}", params={"format": format}
        )
        if response.status_code != 200:
            raise _problem(response, response.content)
        return response.content

    async def recognize(self, files: Sequence[Upload], *, ocr: bool = True) -> JobResult:
        """Upload ``files``, wait for the job to finish, and return the results.

        Raises:
            ProblemError: the server refused the request.
            JobFailed: the job ended with ``processing_error``.
        """
        events: list[Envelope] = []
        stream = self.submit(files, ocr=ocr)
        try:
            async for envelope in stream:
                events.append(envelope)
        finally:
            await stream.aclose()
        return collect(events)


def collect(events: list[Envelope]) -> JobResult:
    """Fold a job's events into per-file results.

    Raises:
        JobFailed: the events end with ``processing_error``.
    """
    files: dict[int, FileResult] = {}
    job_id = ""
    for envelope in events:
        job_id = envelope.job_id or job_id
        event = envelope.event
        if isinstance(event, ProcessingError):
            raise JobFailed(event.error.code, event.error.message, envelope.job_id)
        fold_file(files, event)
    if not events or not isinstance(events[-1].event, ProcessingComplete):
        raise JobFailed("client_disconnected", "the stream ended before the job did", job_id)
    return JobResult(job_id=job_id, events=events, files=[files[i] for i in sorted(files)])
