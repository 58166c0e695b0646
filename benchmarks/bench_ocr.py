"""Does the service keep the OCR engine busy? Service throughput beside the raw engine.

Recognises the same 20 invoice images (``tests/invoices.py``, PNG and JPEG, a quarter
rotated by EXIF) and measures, in one run, images per second:

1. the raw engine in this process (``load()`` then ``recognize(exif_transpose(open()))``),
   single-threaded (OMP/OpenBLAS at one thread, as the service's workers run it);
2. the raw engine in 2 spawned processes sharing the images from one counter, each warm
   before timing (the raw throughput of 2 cores);
3. the service, full HTTP path (``ocrstream serve`` in a subprocess, loopback sockets),
   with OCRSTREAM_OCR_WORKERS=1 and 2: one request of 20 files, and 20 concurrent
   one-file requests, from the first request byte sent to the last
   ``processing_complete`` read. A discarded 20-file request warms the workers first;

Each rep runs the raw pass and the service requests back to back (the raw processes
and the server both stay up and warm), so outside load hits both alike. Then printed:
the ratios service / raw (1 worker vs 1 process, 2 workers vs 2 processes; the goal is
at least 0.9), the mean ``duration_ms`` the service reports per image (time inside
``OCRService.recognize``) beside the raw time per image, and the share of the CPUs
other processes used meanwhile (a noisy machine makes every number suspect).

Then, in this process, the rendered receipts (``tests/receipts.py``, a seed of the
benchmark's own; clean, faint, small on an A4 page at 600 dpi, photographed): what the
service's engine reads (``recognize``) beside the raw engine (``tests.receipts.raw_read``:
the library as it ships, or Tesseract as ocrstream ran it before, on the image as is):
amounts, dates and times, totals and rows read exactly, numbers cut by a space ("73.
00"), and seconds per page by kind; then the big-page handling's cost: finding the
printed area of an A4 page, and whole A4 pages full of print (nothing to cut away, so
the detector works on a scaled copy while lines are read at full resolution); and the
20 invoices (ordinary images) in passes taken in turns, images/s. The goal: every
figure at least the raw engine's, the images/s of ordinary images unchanged.

Usage: ``python benchmarks/bench_ocr.py [--engine rapidocr|tesseract] [--reps 3]
[--receipts 24] [--no-throughput]``. Medians over ``--reps`` repetitions. Loopback only;
every loop is bounded and the script stops by itself (about 2 minutes for rapidocr on 2
CPUs, plus about 2 minutes for the receipts).
"""

from __future__ import annotations

import os

# Before numpy/onnxruntime/rapidocr load anywhere in this process (or its children).
os.environ.update({"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})

import argparse
import contextlib
import importlib
import io
import json
import multiprocessing
import random
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_stream import BOUNDARY, HOST, _ended, _request, _server

from tests.chunked import dechunk
from tests.images import Upload, multipart_body
from tests.invoices import invoice_set
from tests.receipts import A4_600DPI, KINDS, Score, raw_read, receipt_set, render_receipt

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Barrier
    from types import ModuleType

    from ocrstream.engines.base import PageText
    from tests.invoices import Invoice
    from tests.receipts import Receipt

IMAGES = 20
REQUEST_TIMEOUT = 120.0
#: The receipts' seed: the benchmark's own (the tests use 11, the spacing fit 1001/2002).
RECEIPT_SEED = 2026
FULL_PAGES = 3
ORDINARY_PASSES = 5
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}


# -- the raw engine ------------------------------------------------------------------


def _engine(name: str) -> ModuleType:
    return importlib.import_module(f"ocrstream.engines.{name}")


def _recognise(engine: ModuleType, data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as opened:
        engine.recognize(ImageOps.exif_transpose(opened))


class _Raw:
    """The raw engine: in this process (``processes=1``) or in spawned processes that
    share each pass over the images through one counter; every process is warm before
    the first timed pass. Use as a context manager; :meth:`rate` times one pass."""

    def __init__(self, name: str, images: list[bytes], processes: int) -> None:
        self._images = images
        self._context = multiprocessing.get_context("spawn")
        self._barrier = self._context.Barrier(processes + 1, timeout=REQUEST_TIMEOUT)
        self._counter: Synchronized[int] = self._context.Value("i", 0)
        self._workers = [
            self._context.Process(
                target=_raw_worker, args=(name, images, self._barrier, self._counter)
            )
            for _ in range(processes if processes > 1 else 0)
        ]
        self._engine = _engine(name) if processes == 1 else None

    def __enter__(self) -> _Raw:
        if self._engine is not None:
            self._engine.load()
            for data in self._images[:2]:
                _recognise(self._engine, data)
        for worker in self._workers:
            worker.start()
        return self

    def rate(self) -> float:
        """Images/s of one pass over the images."""
        if self._engine is not None:
            start = time.perf_counter()
            for data in self._images:
                _recognise(self._engine, data)
            return len(self._images) / (time.perf_counter() - start)
        self._counter.value = 0
        self._barrier.wait()  # every process warm and waiting
        start = time.perf_counter()
        self._barrier.wait()  # every image recognised
        return len(self._images) / (time.perf_counter() - start)

    def __exit__(self, *exc: object) -> None:
        if self._workers:
            self._counter.value = -1  # stop
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()
        for worker in self._workers:
            worker.join(timeout=15)
            if worker.is_alive():
                worker.kill()
                worker.join()


def _raw_worker(
    name: str, images: list[bytes], barrier: Barrier, counter: Synchronized[int]
) -> None:
    """One raw process: load and warm up, then per pass take images from ``counter``."""
    engine = _engine(name)
    engine.load()
    _recognise(engine, images[0])
    while True:
        barrier.wait()  # the next pass starts (counter 0) or the run is over (-1)
        if counter.value < 0:
            return
        while True:
            with counter.get_lock():
                index = counter.value
                counter.value += 1
            if index >= len(images):
                break
            _recognise(engine, images[index])
        barrier.wait()  # this pass done


# -- the service ---------------------------------------------------------------------


def _body(images: list[tuple[bytes, str]]) -> bytes:
    uploads = [
        Upload(data, f"invoice-{i}.{fmt.lower()}", _MIME[fmt])
        for i, (data, fmt) in enumerate(images)
    ]
    return multipart_body(uploads, BOUNDARY)


def _job(port: int, raw: bytes) -> tuple[float, float, list[float]]:
    """Send one request; return (t_start, t_processing_complete, OCR duration_ms per image).

    Raises:
        RuntimeError: the stream ended without ``processing_complete`` or not every
            file was recognised.
    """
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    sock.sendall(raw)
    chunks: list[bytes] = []
    end = 0.0
    with sock:
        sock.settimeout(REQUEST_TIMEOUT)
        while data := sock.recv(1 << 20):
            chunks.append(data)
            if not end and b"event: processing_complete" in b"".join(chunks[-2:]):
                end = time.perf_counter()
            if _ended(chunks):
                break
    received = dechunk(b"".join(chunks).partition(b"\r\n\r\n")[2])
    durations: list[float] = []
    complete: dict[str, int] = {}
    for line in received.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        event = json.loads(line[len(b"data: ") :])
        if event["type"] == "image_ocr_success":
            durations.append(float(event["data"]["duration_ms"]))
        elif event["type"] == "processing_complete":
            complete = event["data"]
    if not end or not complete or complete["ocr_success_count"] != complete["file_count"]:
        raise RuntimeError(f"job did not recognise every file: {received[-600:]!r}")
    return start, end, durations


@dataclass
class _Results:
    """Images/s per rep, OCR ``duration_ms`` per image and the others' CPU share."""

    raw: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)
    single: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    others: float = 0.0


def _measure(name: str, workers: int, invoices: list[Invoice], reps: int) -> _Results:
    """Per rep, interleaved (so that outside load hits both alike): one raw pass over the
    images with ``workers`` processes, one 20-file request and 20 concurrent 1-file
    requests to a server with OCRSTREAM_OCR_WORKERS=``workers``."""
    env = {"OCRSTREAM_OCR_ENGINE": name, "OCRSTREAM_OCR_WORKERS": str(workers)}
    typed = [(invoice.data, invoice.format) for invoice in invoices]
    results = _Results()
    cpu_before = _cpu()
    with (
        _Raw(name, [invoice.data for invoice in invoices], workers) as raw,
        _server(env) as port,
        ThreadPoolExecutor(len(typed)) as pool,
    ):
        batch = _request(port, _body(typed))
        singles = [_request(port, _body([image])) for image in typed]
        _job(port, batch)  # warm-up: every worker started and has recognised images
        for _ in range(reps):
            results.raw.append(raw.rate())
            start, end, seen = _job(port, batch)
            results.whole.append(len(typed) / (end - start))
            results.durations.extend(seen)
            jobs = list(pool.map(_job, [port] * len(singles), singles))
            first = min(start for start, _, _ in jobs)
            last = max(end for _, end, _ in jobs)
            results.single.append(len(typed) / (last - first))
            results.durations.extend(d for _, _, seen in jobs for d in seen)
    results.others = _others_share(cpu_before, _cpu())
    return results


def _cpu() -> tuple[float, float, float]:
    """(wall, machine busy CPU-seconds, CPU-seconds of this process and reaped children)."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return time.monotonic(), (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), own


def _others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """The share of the machine's CPUs that other processes used between two snapshots."""
    wall = after[0] - before[0]
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others) / (wall * (os.cpu_count() or 1))


# -- receipts ----------------------------------------------------------------------


def _upright(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as opened:
        return ImageOps.exif_transpose(opened)


def _timed(read: Callable[[Image.Image], PageText], image: Image.Image) -> tuple[PageText, float]:
    start = time.perf_counter()
    page = read(image)
    return page, time.perf_counter() - start


def _full_page(rng: random.Random) -> tuple[list[Receipt], Image.Image]:
    """An A4 page at 600 dpi covered by four small receipts, two by two: its print
    spans the page, so there is nothing to cut away."""
    from ocrstream.engines.preprocessing import printed_area

    receipts = [render_receipt("a4", rng) for _ in range(4)]
    page = Image.new("RGB", A4_600DPI, (252, 252, 252))
    for index, receipt in enumerate(receipts):
        area = printed_area(receipt.image)
        part = receipt.image.crop(area.box) if area else receipt.image
        page.paste(part, (150 + (index % 2) * 2400, 150 + (index // 2) * 3400))
    return receipts, page


def _receipts(name: str, count: int) -> None:
    """Service and raw engine on ``count`` rendered receipts and on full A4 pages."""
    from ocrstream.engines.preprocessing import printed_area

    engine = _engine(name)
    engine.load()
    receipts = receipt_set(count, seed=RECEIPT_SEED)
    service, raw = Score(), Score()
    seconds: dict[tuple[str, str], list[float]] = {}
    raw_read(name, receipts[0].image)  # warm both up
    engine.recognize(receipts[0].image)
    for receipt in receipts:
        page, spent = _timed(engine.recognize, receipt.image)
        service.add(receipt, page)
        seconds.setdefault(("service", receipt.kind), []).append(spent)
        page, spent = _timed(lambda image: raw_read(name, image), receipt.image)
        raw.add(receipt, page)
        seconds.setdefault(("raw", receipt.kind), []).append(spent)
    print(f"\nreceipts, engine {name}: {count} rendered receipts (seed {RECEIPT_SEED})\n")
    print(f"{'':<44}{'service':>10}{'raw':>12}")
    for label, got, drawn in (
        ("amounts exact", (service.amounts_found, raw.amounts_found), service.amounts),
        ("dates and times exact", (service.dates_found, raw.dates_found), service.dates),
        ("totals exact", (service.totals_found, raw.totals_found), service.totals),
        ("rows exact", (service.rows_exact, raw.rows_exact), service.rows),
    ):
        print(
            f"{f'{label} (of {drawn})':<44}{got[0]:>5} {got[0] / drawn:>4.0%}"
            f"{got[1]:>7} {got[1] / drawn:>4.0%}"
        )
    print(f"{'numbers cut by a space (drawn: 0)':<44}{service.splits:>10}{raw.splits:>12}")
    for kind in KINDS:
        _row(
            f"seconds per page, {kind}",
            (
                statistics.median(seconds[("service", kind)]),
                statistics.median(seconds[("raw", kind)]),
            ),
            " s",
        )
    # Ordinary images: the invoices, in passes taken in turns by both (outside load hits
    # both alike), images/s.
    invoices = [_upright(invoice.data) for invoice in invoice_set(IMAGES)]
    rates: dict[str, list[float]] = {"service": [], "raw": []}
    for _ in range(ORDINARY_PASSES):
        for which, read in (
            ("service", engine.recognize),
            ("raw", lambda image: raw_read(name, image)),
        ):
            start = time.perf_counter()
            for image in invoices:
                read(image)
            rates[which].append(len(invoices) / (time.perf_counter() - start))
    _row(
        f"ordinary images ({IMAGES} invoices), images/s",
        (statistics.median(rates["service"]), statistics.median(rates["raw"])),
    )
    # The big-page handling: the printed-area search alone, then whole pages of print.
    a4 = [receipt.image for receipt in receipts if receipt.kind == "a4"]
    searches = []
    for image in a4:
        start = time.perf_counter()
        printed_area(image)
        searches.append(time.perf_counter() - start)
    rng = random.Random(RECEIPT_SEED)
    full_service, full_raw = Score(), Score()
    full_seconds: dict[str, list[float]] = {"service": [], "raw": []}
    for _ in range(FULL_PAGES):
        printed, image = _full_page(rng)
        page, spent = _timed(engine.recognize, image)
        full_seconds["service"].append(spent)
        for receipt in printed:
            full_service.add(receipt, page)
        page, spent = _timed(lambda image: raw_read(name, image), image)
        full_seconds["raw"].append(spent)
        for receipt in printed:
            full_raw.add(receipt, page)
    print(
        f"{'printed-area search, A4 at 600 dpi (median)':<44}{statistics.median(searches):>8.2f} s"
    )
    _row(
        f"full A4 pages ({FULL_PAGES}), seconds per page",
        (statistics.median(full_seconds["service"]), statistics.median(full_seconds["raw"])),
        " s",
    )
    print(
        f"{f'full A4 pages, amounts exact (of {full_service.amounts})':<44}"
        f"{full_service.amounts_found:>10}{full_raw.amounts_found:>12}"
    )
    print(
        f"{f'full A4 pages, dates and times (of {full_service.dates})':<44}"
        f"{full_service.dates_found:>10}{full_raw.dates_found:>12}"
    )


# -- report --------------------------------------------------------------------------


def _row(label: str, values: tuple[float, float], unit: str = "") -> None:
    print(f"{label:<44}{values[0]:>10.2f}{unit}{values[1]:>12.2f}{unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--engine", choices=("rapidocr", "tesseract"), default="rapidocr")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--receipts", type=int, default=24, help="rendered receipts (0: none)")
    parser.add_argument("--no-throughput", action="store_true", help="receipts only")
    args = parser.parse_args()
    name: str = args.engine
    reps: int = max(1, args.reps)
    if not args.no_throughput:
        _throughput(name, reps)
    if args.receipts > 0:
        _receipts(name, args.receipts)


def _throughput(name: str, reps: int) -> None:
    """The images/s part: raw engine against the service over HTTP."""
    invoices = invoice_set(IMAGES)
    began = time.perf_counter()
    one, two = (_measure(name, workers, invoices, reps) for workers in (1, 2))
    raw = (statistics.median(one.raw), statistics.median(two.raw))
    whole = (statistics.median(one.whole), statistics.median(two.whole))
    single = (statistics.median(one.single), statistics.median(two.single))

    print(
        f"ocrstream OCR throughput, engine {name}, {IMAGES} invoices, {os.cpu_count()} CPUs; "
        f"images/s, medians of {reps}\n"
    )
    print(f"{'':<44}{'1 worker':>10}{'2 workers':>12}")
    _row("raw engine (1 process / 2 processes)", raw)
    _row("service, 1 request of 20 files", whole)
    _row("service, 20 concurrent 1-file requests", single)
    _row("ratio service/raw, 1 request of 20 files", (whole[0] / raw[0], whole[1] / raw[1]))
    _row("ratio service/raw, 20 x 1-file requests", (single[0] / raw[0], single[1] / raw[1]))
    _row("raw ms per image (per process)", (1000 / raw[0], 2000 / raw[1]))
    _row(
        "service OCR duration_ms per image (mean)",
        (statistics.mean(one.durations), statistics.mean(two.durations)),
    )
    _row("CPU used by other processes (% of machine)", (one.others * 100, two.others * 100))
    print(f"\n(total run {time.perf_counter() - began:.0f} s; goal: ratios >= 0.9)")


if __name__ == "__main__":
    main()
