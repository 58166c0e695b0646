"""Files of several pages through the pipeline: every page a unit of OCR work.

Ordering rule 4 with pages over generated mixes of single images and multi-page TIFFs
(some pages failing), the pages of one file spread over the workers, a failing page
ending its file, and the job keeping each recognised file's pages with their words.
The worker pool is threads running the real worker code (see test_pipeline_ocr.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import trio
from hypothesis import given
from hypothesis import strategies as st

from ocrstream.core.config import load_settings
from ocrstream.service.documents import DocumentWorkers
from ocrstream.service.memory.registry import JobHandle, JobRegistry
from ocrstream.service.ocr import OCRService
from ocrstream.service.pipeline import JobOptions, run_job
from tests import pdfs
from tests.images import Upload, multipart_body, scripted_png, scripted_tiff
from tests.ordering import check_stream
from tests.test_pipeline_ocr import ThreadContext
from tests.waiting import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import trio_parallel

BOUNDARY = "ocrstream-test-boundary"


def _service(workers: int = 2) -> OCRService:
    return OCRService(ThreadContext(), engine="fake", workers=workers, timeout=10)


def _documents() -> DocumentWorkers:
    context = cast("trio_parallel.WorkerContext", ThreadContext())
    return DocumentWorkers(context, limit=2, timeout=30)


async def _run(
    body: bytes, ocr: OCRService, *, max_pages: int = 10, pdf_text: str | None = None
) -> tuple[list[dict[str, Any]], JobHandle]:
    registry = JobRegistry(result_ttl=60)
    handle = registry.create()

    async def chunks() -> AsyncGenerator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    settings = load_settings({}, max_files=8, max_pages=max_pages, max_parts=30)
    await run_job(
        handle,
        chunks(),
        options=JobOptions(boundary=BOUNDARY.encode(), content_length=len(body), pdf_text=pdf_text),
        settings=settings,
        limiter=trio.CapacityLimiter(2),
        ocr=ocr,
        documents=_documents(),
    )
    return [json.loads(envelope.to_json()) for envelope in handle.record.history], handle


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event["data"] for event in events if event["type"] == kind]


async def test_a_tiff_is_recognised_page_by_page() -> None:
    body = multipart_body([Upload(scripted_tiff(["one", "two two", "three"]), "scan.tif")])
    events, handle = await _run(body, _service())
    check_stream(events, ocr=True)
    valid = _of(events, "image_validation_success")[0]
    assert (valid["format"], valid["page_count"]) == ("TIFF", 3)
    assert _of(events, "image_ocr_start")[0]["page_count"] == 3
    pages = sorted(_of(events, "page_ocr_success"), key=lambda page: page["page_index"])
    assert [page["text"] for page in pages] == ["one", "two two", "three"]
    assert {page["source"] for page in pages} == {"ocr"}
    assert all((page["width"], page["height"]) == (60, 20) for page in pages)
    success = _of(events, "image_ocr_success")[0]
    assert success["text"] == "one\ftwo two\fthree"
    assert [(line["text"], line["page_index"]) for line in success["lines"]] == [
        ("one", 0),
        ("two two", 1),
        ("three", 2),
    ]
    document = handle.document(0)
    assert document is not None
    assert document.text == "one\ftwo two\fthree"
    words = [word.text for word in document.pages[1].lines[0].words]
    assert words == ["two", "two"]


async def test_a_single_image_gets_no_page_events() -> None:
    events, handle = await _run(
        multipart_body([Upload(scripted_png("alone"), "a.png")]), _service()
    )
    check_stream(events, ocr=True)
    assert not _of(events, "page_ocr_success")
    success = _of(events, "image_ocr_success")[0]
    assert (success["page_count"], success["text"]) == (1, "alone")
    assert success["lines"][0]["page_index"] == 0
    document = handle.document(0)
    assert document is not None
    assert [page.source for page in document.pages] == ["ocr"]


async def test_a_failing_page_ends_its_file_and_cancels_the_others() -> None:
    tiff = scripted_tiff(["fine", "FAIL here", "SLEEP:5 late"])
    started = trio.current_time()
    events, handle = await _run(multipart_body([Upload(tiff, "bad.tif")]), _service(workers=3))
    assert trio.current_time() - started < 4, "the sleeping page was cancelled"
    outcome = check_stream(events, ocr=True)
    assert outcome.ocr[0] == "ocr_failed"
    error = _of(events, "image_ocr_error")[0]
    assert error["page_index"] == 1
    assert 2 not in outcome.pages.get(0, {})
    assert handle.document(0) is None
    assert events[-1]["type"] == "processing_complete"


async def test_one_files_pages_keep_every_worker_busy() -> None:
    ocr = _service(workers=3)
    tiff = scripted_tiff([f"SLEEP:0.3 page {index}" for index in range(6)])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run, multipart_body([Upload(tiff, "six.tif")]), ocr)

        # The pages join the queue one scheduling round after another (in page order), so
        # a look between two rounds can see 3 busy and fewer than 3 waiting yet; every page
        # sleeps 0.3 s, so "3 busy, 3 waiting" holds once they have all asked.
        def spread() -> bool:
            statistics = ocr.statistics()
            return (statistics.busy, statistics.waiting) == (3, 3)

        await wait_until(spread, interval=0.005, timeout=5)


async def test_a_newcomer_overtakes_a_long_document() -> None:
    ocr = _service(workers=1)
    tiff = scripted_tiff([f"SLEEP:0.05 page {index}" for index in range(8)])
    finished: list[str] = []

    async def job(name: str, body: bytes) -> None:
        await _run(body, ocr)
        finished.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(job, "document", multipart_body([Upload(tiff, "long.tif")]))
        await wait_until(lambda: ocr.statistics().busy > 0, interval=0.005)
        nursery.start_soon(job, "small", multipart_body([Upload(scripted_png("s"), "s.png")]))
    assert finished == ["small", "document"]


@st.composite
def _files(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    """Files as (kind, page texts): single PNGs, TIFFs and born-digital PDFs of 1-4
    pages, some pages failing (a PDF's only when its pages are recognised)."""
    files = []
    for index in range(draw(st.integers(1, 4))):
        pages = draw(st.integers(1, 4))
        texts = [
            "FAIL" if draw(st.integers(0, 5)) == 0 else f"file {index} page {page}"
            for page in range(pages)
        ]
        kind = draw(st.sampled_from(["tiff", "pdf"] if pages > 1 else ["png", "tiff", "pdf"]))
        files.append((kind, texts))
    return files


def _pdf(texts: list[str]) -> bytes:
    return pdfs.born_digital(
        tuple(pdfs.TextPage(size=(200, 100), lines=((10, 40, text),)) for text in texts)
    )


def _upload(index: int, kind: str, texts: list[str]) -> Upload:
    if kind == "tiff":
        return Upload(scripted_tiff(texts), f"{index}.tif")
    if kind == "pdf":
        return Upload(_pdf(texts), f"{index}.pdf")
    return Upload(scripted_png(texts[0]), f"{index}.png")


@given(files=_files(), pdf_text=st.sampled_from(["auto", "ocr"]))
async def test_page_ordering_rules_hold_for_mixes_of_documents(
    files: list[tuple[str, list[str]]], pdf_text: str
) -> None:
    parts = [_upload(index, kind, texts) for index, (kind, texts) in enumerate(files)]
    events, _handle = await _run(multipart_body(parts), _service(workers=3), pdf_text=pdf_text)
    outcome = check_stream(events, ocr=True)
    assert outcome.terminal == "processing_complete"
    for index, (kind, texts) in enumerate(files):
        assert outcome.page_counts[index] == len(texts)
        layer = kind == "pdf" and pdf_text == "auto"
        if len(texts) > 1:
            sources = set(outcome.pages.get(index, {}).values())
            assert sources <= {"text_layer" if layer else "ocr"}
        if any("FAIL" in text for text in texts) and not layer:
            assert outcome.ocr[index] == "ocr_failed"
            failed = outcome.failed_pages[index]
            assert failed is not None
            assert "FAIL" in texts[failed]
        else:
            assert outcome.ocr[index] == "ok"
            success = next(
                event["data"]
                for event in events
                if event["type"] == "image_ocr_success" and event["data"]["file_index"] == index
            )
            assert success["text"] == "\f".join(texts)


async def test_pages_are_recognised_in_page_order_when_they_queue() -> None:
    texts = [f"SLEEP:0.01 page {index}" for index in range(12)]
    body = multipart_body([Upload(scripted_tiff(texts), "a.tif")])
    events, _handle = await _run(body, _service(workers=1), max_pages=20)
    order = [page["page_index"] for page in _of(events, "page_ocr_success")]
    assert order == list(range(12))
