"""The fair scheduler, and the worker pool driven through real processes (fake engine)."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing
from PIL import Image, PngImagePlugin

from ocrstream.core.errors import OCRError
from ocrstream.engines.base import EngineOptions
from ocrstream.service.ocr import FairScheduler, OCRService, open_ocr_service
from tests.images import scripted_png

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def test_scheduler_serves_jobs_in_turn() -> None:
    scheduler = FairScheduler(1)
    order: list[str] = []

    async def work(job: str, index: int) -> None:
        async with scheduler.slot(job):
            order.append(f"{job}{index}")
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        for index in range(5):
            nursery.start_soon(work, "big", index)
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(work, "small", 0)
    # The small job arrived last but is served right after the slot frees up once.
    assert order.index("small0") <= 2
    assert scheduler.in_use == 0
    assert scheduler.waiting == 0


async def test_scheduler_cancelled_waiters_leave_no_trace() -> None:
    scheduler = FairScheduler(1)
    await scheduler.acquire("a")
    with trio.move_on_after(0.05):
        await scheduler.acquire("b")
    assert scheduler.waiting == 0
    scheduler.release()
    assert scheduler.in_use == 0


async def test_scheduler_passes_on_a_grant_its_waiter_no_longer_wants() -> None:
    scheduler = FairScheduler(1)
    await scheduler.acquire("a")
    got: list[str] = []
    async with trio.open_nursery() as nursery:
        cancel_b = trio.CancelScope()

        async def waiter_b() -> None:
            with cancel_b:
                async with scheduler.slot("b"):
                    got.append("b")

        async def waiter_c() -> None:
            await scheduler.acquire("c")
            got.append("c")
            scheduler.release()

        nursery.start_soon(waiter_b)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(waiter_c)
        await trio.testing.wait_all_tasks_blocked()
        # b is cancelled, and before it runs the slot frees up and is granted to it:
        # b must pass the slot on to c rather than lose it.
        cancel_b.cancel()
        scheduler.release()
    assert got == ["c"]
    assert scheduler.in_use == 0


@pytest.fixture
async def service() -> AsyncIterator[OCRService]:
    async with open_ocr_service(
        engine="fake", workers=1, ocr_timeout=10, max_tasks_per_worker=1000, max_worker_rss=2**40
    ) as ocr:
        yield ocr


async def test_recognition_runs_in_a_worker_process(service: OCRService) -> None:
    async with service.slot("job"):
        page = await service.recognize(scripted_png("Invoice 42\nTotal PID"))
    assert page.text.split("\n")[0] == "Invoice 42"
    worker_pid = int(page.text.split()[-1])
    assert worker_pid != os.getpid()
    assert [line.text for line in page.lines] == page.text.split("\n")


async def test_exif_orientation_is_applied_before_ocr(service: OCRService) -> None:
    info = PngImagePlugin.PngInfo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° to display
    out = io.BytesIO()
    Image.new("RGB", (60, 20), "white").save(out, format="PNG", exif=exif.tobytes(), pnginfo=info)
    page = await service.recognize(out.getvalue())
    assert page.text == "20x60"  # the fake engine saw the upright, portrait image


async def test_engine_errors_and_crashes_become_ocr_failed(service: OCRService) -> None:
    with pytest.raises(OCRError) as failed:
        await service.recognize(scripted_png("please FAIL"))
    assert failed.value.code == "ocr_failed"
    assert "scripted failure" in failed.value.message
    with pytest.raises(OCRError) as crashed:
        await service.recognize(scripted_png("CRASH"))
    assert crashed.value.code == "ocr_failed"
    assert "died" in crashed.value.message
    assert (await service.recognize(scripted_png("still here"))).text == "still here"


async def test_timeout_kills_the_worker(service: OCRService) -> None:
    pid = int((await service.recognize(scripted_png("PID"))).text)
    with pytest.raises(OCRError) as slow:
        await service.recognize(scripted_png("SLEEP:30"))
    assert slow.value.code == "ocr_timeout"
    assert "OCR_TIMEOUT" in slow.value.message
    _assert_gone(pid)
    assert (await service.recognize(scripted_png("next"))).text == "next"


async def test_cancellation_kills_the_computation(service: OCRService) -> None:
    pid = int((await service.recognize(scripted_png("PID"))).text)
    with trio.move_on_after(0.3):
        await service.recognize(scripted_png("SLEEP:30"))
    _assert_gone(pid)


def _assert_gone(pid: int) -> None:
    # trio-parallel reaps the killed worker before returning control.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_engine_options_reach_the_workers() -> None:
    async with open_ocr_service(
        engine="fake",
        workers=1,
        ocr_timeout=5,
        max_tasks_per_worker=1000,
        max_worker_rss=2**40,
        engine_options=EngineOptions(max_side=1234),
    ) as ocr:
        assert (await ocr.recognize(scripted_png("MAX_SIDE"))).text == "1234"


async def test_workers_retire_after_their_task_budget() -> None:
    async with open_ocr_service(
        engine="fake", workers=1, ocr_timeout=5, max_tasks_per_worker=2, max_worker_rss=2**40
    ) as ocr:
        pids = [int((await ocr.recognize(scripted_png("PID"))).text) for _ in range(4)]
    assert pids[0] == pids[1]
    assert pids[2] == pids[3]
    assert pids[1] != pids[2]


async def test_workers_retire_past_their_memory_bound() -> None:
    # Any Python process is over 1 MiB: every worker retires after one image.
    async with open_ocr_service(
        engine="fake", workers=1, ocr_timeout=5, max_tasks_per_worker=1000, max_worker_rss=2**20
    ) as ocr:
        pids = [int((await ocr.recognize(scripted_png("PID"))).text) for _ in range(3)]
    assert len(set(pids)) == 3
