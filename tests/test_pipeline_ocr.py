"""The pipeline with OCR on: ordering rules 4 and 5 over generated mixes of files.

The worker pool is replaced by threads running the same worker code (the pool itself
is tested through real processes in test_ocr.py and the e2e tests).
"""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import trio
from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.config import load_settings
from ocrstream.engines.worker import PageRequest
from ocrstream.service.memory.registry import JobRegistry
from ocrstream.service.ocr import OCRService
from ocrstream.service.pipeline import JobOptions, run_job
from tests.images import Upload, multipart_body, scripted_png
from tests.ordering import check_stream
from tests.strategies import MAX_FILE_SIZE, MAX_FILES, expected_outcome, file_mixes
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable

BOUNDARY = "ocrstream-test-boundary"
T = TypeVar("T")


#: PDFium is not thread-safe: the real workers are processes of one thread each, and
#: this stand-in runs every call that reaches PDFium under one lock.
_PDFIUM = threading.Lock()


def _reaches_pdfium(fn: Callable[..., object]) -> bool:
    if not isinstance(fn, partial):
        return False
    if fn.func.__module__.startswith("ocrstream.documents"):
        return True
    return any(isinstance(arg, PageRequest) and arg.format == "PDF" for arg in fn.args)


def _locked(fn: Callable[..., T], *args: object) -> T:
    with _PDFIUM:
        return fn(*args)


class ThreadContext:
    """Stands in for a trio-parallel worker context: same calls, run in threads."""

    async def run_sync(
        self,
        fn: Callable[..., T],
        *args: object,
        kill_on_cancel: bool = False,
        limiter: trio.CapacityLimiter | None = None,
    ) -> T:
        call: Callable[..., T] = partial(_locked, fn) if _reaches_pdfium(fn) else fn
        # A killed worker's result never comes back; an abandoned thread's neither.
        return await trio.to_thread.run_sync(
            call, *args, limiter=limiter, abandon_on_cancel=kill_on_cancel
        )


def _service(workers: int = 2) -> OCRService:
    return OCRService(ThreadContext(), engine="fake", workers=workers, timeout=10)


async def _run(body: bytes, ocr: OCRService) -> list[dict[str, Any]]:
    registry = JobRegistry(result_ttl=60)
    handle = registry.create()

    async def chunks() -> AsyncGenerator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    settings = load_settings({}, max_files=MAX_FILES, max_file_size=MAX_FILE_SIZE, max_parts=30)
    await run_job(
        handle,
        chunks(),
        options=JobOptions(boundary=BOUNDARY.encode(), content_length=len(body)),
        settings=settings,
        limiter=trio.CapacityLimiter(2),
        ocr=ocr,
    )
    return [json.loads(envelope.to_json()) for envelope in handle.record.history]


@given(mix=file_mixes(), failing=st.lists(st.booleans(), max_size=3))
async def test_ocr_ordering_rules_hold(mix: list[Any], failing: list[bool]) -> None:
    scripted = [scripted_png("FAIL" if fail else f"text {i}") for i, fail in enumerate(failing)]
    parts = [Upload(f.data, f"{f.kind}.bin") for f in mix] + [
        Upload(data, f"scripted-{i}.png") for i, data in enumerate(scripted)
    ]
    events = await _run(multipart_body(parts, BOUNDARY), _service())
    outcome = check_stream(events, ocr=True)
    assert outcome.terminal == "processing_complete"
    for index, file in enumerate(mix):
        assert outcome.outcomes[index] == expected_outcome(index, file)
    for offset, fail in enumerate(failing):
        index = len(mix) + offset
        if index >= MAX_FILES:
            continue
        assert outcome.ocr[index] == ("ocr_failed" if fail else "ok")
    starts = [e for e in events if e["type"] == "image_ocr_start"]
    assert all(e["data"]["engine"] == "fake" for e in starts)


async def test_ocr_success_carries_text_lines_and_duration() -> None:
    body = multipart_body([Upload(scripted_png("Invoice 7\nTotal 12.50"), "a.png")], BOUNDARY)
    events = await _run(body, _service())
    success = next(e for e in events if e["type"] == "image_ocr_success")["data"]
    assert success["text"] == "Invoice 7\nTotal 12.50"
    assert [line["text"] for line in success["lines"]] == ["Invoice 7", "Total 12.50"]
    assert all(0 <= line["confidence"] <= 1 for line in success["lines"])
    assert success["duration_ms"] >= 0
    assert events[-1]["data"]["ocr_success_count"] == 1


async def test_two_jobs_share_the_workers_fairly() -> None:
    ocr = _service(workers=1)
    big = multipart_body(
        [Upload(scripted_png(f"SLEEP:0.05 big {i}"), f"{i}.png") for i in range(8)], BOUNDARY
    )
    small = multipart_body([Upload(scripted_png("small"), "s.png")], BOUNDARY)
    finished: list[str] = []

    async def job(name: str, body: bytes) -> None:
        await _run(body, ocr)
        finished.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(job, "big", big)
        # The big job is being recognised.
        await wait_until(lambda: ocr.statistics().busy > 0, interval=0.005)
        nursery.start_soon(job, "small", small)
    assert finished == ["small", "big"]
