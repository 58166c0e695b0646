"""The document workers: PDFs are opened in worker processes, each call bounded in time.

Real trio-parallel processes. A crash is scripted (a function that exits its process); the
time bound is met by a real pathological PDF (200,000 pages, each of whose sizes a probe
reads, with MAX_PAGES set out of the way: seconds of PDFium's time), under a bound of 2 s
set for that call; the pool's other calls have 60 s, since the bound includes a cold
worker's start-up after a kill, which takes seconds on a loaded machine.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio

from ocrstream.core.config import load_settings
from ocrstream.core.errors import InvalidImage
from ocrstream.service.documents import DocumentWorkerFailed, open_document_workers
from tests import pdfs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ocrstream.service.documents import DocumentWorkers


@pytest.fixture
async def workers() -> AsyncIterator[DocumentWorkers]:
    # The bound is 60 s but for the calls that must run past it (2 s): a cold worker's
    # start-up after a kill is inside the bound, and takes seconds on a loaded machine.
    settings = load_settings({}, document_timeout=60, validation_threads=1)
    async with open_document_workers(settings) as pool:
        await pool.run(partial(int, "1"))  # a warm worker
        yield pool


def _exit_process() -> None:
    os._exit(3)


async def test_a_crashed_worker_costs_one_call() -> None:
    # A bound far above a crash's few milliseconds: the crash must be told from a hang
    # even on a loaded machine (and the next call's worker starts cold).
    settings = load_settings({}, document_timeout=60, validation_threads=1)
    async with open_document_workers(settings) as workers:
        with pytest.raises(DocumentWorkerFailed, match="died"):
            await workers.run(_exit_process)
        facts = await workers.probe_pdf(
            pdfs.born_digital(), max_pages=10, dpi=200, max_pixels=10**8
        )
    assert facts.page_count == 3


async def test_a_hung_worker_is_killed_at_the_time_bound(workers: DocumentWorkers) -> None:
    started = trio.current_time()
    workers.timeout = 2
    with pytest.raises(DocumentWorkerFailed, match=r"longer than 2 seconds"):
        await workers.run(partial(time.sleep, 60))
    workers.timeout = 60
    assert trio.current_time() - started < 20
    assert await workers.run(partial(int, "7")) == 7


async def test_a_pdf_that_takes_too_long_to_open_is_corrupt_for_its_file_only(
    workers: DocumentWorkers,
) -> None:
    # The bound is a quarter of what opening this PDF takes on this machine (measured
    # first, so a fast machine cannot open it inside the bound: 200,000 pages took
    # 1.3 s here, once past a fixed 2 s bound on a slower one).
    slow = pdfs.many_pages(200_000)
    started = trio.current_time()
    facts = await workers.probe_pdf(slow, max_pages=10**6, dpi=200, max_pixels=10**8)
    assert facts.page_count == 200_000
    workers.timeout = (trio.current_time() - started) / 4
    with pytest.raises(InvalidImage) as caught:
        await workers.probe_pdf(slow, max_pages=10**6, dpi=200, max_pixels=10**8)
    workers.timeout = 60
    assert caught.value.code == "corrupt_image"
    assert "longer than" in caught.value.message
    facts = await workers.probe_pdf(pdfs.born_digital(), max_pages=10, dpi=200, max_pixels=10**8)
    assert facts.page_count == 3


async def test_the_pdfs_own_refusals_come_back_as_they_were_raised(
    workers: DocumentWorkers,
) -> None:
    with pytest.raises(InvalidImage) as caught:
        await workers.probe_pdf(
            pdfs.encrypted(pdfs.born_digital()), max_pages=10, dpi=200, max_pixels=10**8
        )
    assert caught.value.code == "encrypted_document"


def test_the_server_process_never_loads_pdfium() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from ocrstream import create_app; create_app();"
        "import ocrstream.service.pipeline, ocrstream.http.results;"
        "print(sorted(m for m in ('pypdfium2', 'pikepdf', 'img2pdf') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
