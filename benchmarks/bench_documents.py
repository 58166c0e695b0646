"""PDFs through the service: scanned pages beside the raw engine, born-digital pages, and
the time to the first page.

Measured in one run, each rep back to back (so outside load hits both alike):

1. raw engine: the same 20 pages of the scanned PDF, rendered beforehand in this process
   with ``ocrstream.documents.pdf.read_pdf_page(..., use_text_layer=False)`` at the dpi
   the service renders at (so both recognise the same pixels), recognised by N spawned
   processes (``concurrent.futures.ProcessPoolExecutor``; single-threaded, engine loaded
   and warm, the pages already in each process): pages/s of one pass;
2. one page's OCR time: pages recognised one after another by one of those processes,
   nothing else running in the pool: the median ``recognize`` time;
3. the service, full HTTP path (``ocrstream serve`` in a subprocess, loopback socket,
   OCRSTREAM_OCR_ENGINE=rapidocr, OCRSTREAM_OCR_WORKERS=N, OCRSTREAM_RENDER_DPI=the
   same dpi): the 20-page scanned PDF in one request, pages/s from the first request
   byte sent to ``processing_complete`` read; and the time from the last request byte
   sent to the first ``page_ocr_success`` read;
4. the same service, a 20-page born-digital PDF (fpdf2, the same invoice text; read from
   its text layer): pages/s.

Before the reps the service's workers are warmed with one small upload (an N-page scanned
PDF and a 1-page born-digital one). The scanned pages are invoice-like (two invoices of
``tests/invoices.py``'s ``render_invoice`` per page, 14 lines), grey, PAGE_PIXELS at
DPI dpi, made into a PDF by img2pdf as ``tests/pdfs.py``'s ``scanned()`` does.

Printed: medians over ``--repeat`` reps and the ratios the issue sets goals for: service /
raw pages/s (goal >= 0.9), born-digital / scanned pages/s (goal >= 50), first-page
latency minus one page's OCR time (goal < 100 ms); beside them, the service's own
per-page ``duration_ms`` (the worker call: the PDF's bytes sent, the page rendered and
recognised) against the raw per-page time in the N-process pass, to tell where a gap is.

Usage: ``python benchmarks/bench_documents.py [--workers 2] [--repeat 3]`` (about 2.5
minutes on 2 CPUs with the defaults). Loopback only; every wait is bounded and
everything started here (the server, the pool) is stopped on the way out, Ctrl-C too.
"""

from __future__ import annotations

import os

# Before numpy/onnxruntime/rapidocr load anywhere in this process (or its children).
os.environ.update({"OMP_THREAD_LIMIT": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})

import argparse
import contextlib
import io
import json
import multiprocessing
import random
import signal
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import img2pdf  # type: ignore[import-untyped]
from fpdf import FPDF
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ocr import _cpu, _others_share
from bench_stream import BOUNDARY, HOST, _ended, _request

from ocrstream.documents.pdf import RenderedPage, read_pdf_page
from ocrstream.engines.base import EngineOptions
from tests.chunked import dechunk
from tests.e2e.served import serve_in_subprocess
from tests.images import Upload, multipart_body
from tests.invoices import render_invoice

if TYPE_CHECKING:
    from collections.abc import Iterator

PAGES = 20
DPI = 150
#: A4 at DPI (8.27 x 11.69 in).
PAGE_PIXELS = (1240, 1754)
INVOICES_PER_PAGE = 2
ENGINE = "rapidocr"
MAX_PIXELS = 40_000_000  # MAX_IMAGE_PIXELS's default, as the service's workers use it
REQUEST_TIMEOUT = 300.0
SINGLE_PAGES = 3  # pages recognised alone per rep, for one page's OCR time
_SEED = 11
_COMPANIES = ["Acme Supplies Ltd", "Northwind Traders", "Blue River Logistics", "Orion Co"]
_ITEMS = ["Printer paper", "Toner cartridge", "Desk lamp", "Shipping fee", "Coffee beans"]


# -- the documents -------------------------------------------------------------------


def _invoice_lines(rng: random.Random) -> list[str]:
    lines = [
        rng.choice(_COMPANIES),
        f"Invoice No {rng.randint(10000, 99999)}",
        f"Date 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ]
    total = 0.0
    for item in rng.sample(_ITEMS, 3):
        amount = rng.randint(100, 99999) / 100
        total += amount
        lines.append(f"{item} {amount:.2f}")
    lines.append(f"Total due {total:.2f} EUR")
    return lines


def _page_texts(count: int) -> list[list[list[str]]]:
    """Per page, its invoices' lines."""
    rng = random.Random(_SEED)
    return [[_invoice_lines(rng) for _ in range(INVOICES_PER_PAGE)] for _ in range(count)]


def scanned_pdf(texts: list[list[list[str]]]) -> bytes:
    """An image-only PDF: one grey PAGE_PIXELS page at DPI per entry of ``texts``."""
    pngs = []
    for invoices in texts:
        page = Image.new("L", PAGE_PIXELS, 255)
        top = 90
        for lines in invoices:
            with Image.open(io.BytesIO(render_invoice(lines))) as block:
                page.paste(block.convert("L"), (90, top))
                top += block.height + 80
        out = io.BytesIO()
        page.save(out, format="PNG", dpi=(DPI, DPI))
        pngs.append(out.getvalue())
    layout = img2pdf.get_fixed_dpi_layout_fun((DPI, DPI))
    return bytes(img2pdf.convert(pngs, layout_fun=layout))


def born_digital_pdf(texts: list[list[list[str]]]) -> bytes:
    """A PDF whose A4 pages hold the same invoice lines as real text (Helvetica)."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_auto_page_break(auto=False)
    for invoices in texts:
        pdf.add_page()
        pdf.set_font("helvetica", size=13)
        y = 60.0
        for lines in invoices:
            for line in lines:
                pdf.text(45, y, line)
                y += 24
            y += 36
    return bytes(pdf.output())


def render_pages(pdf: bytes, count: int) -> tuple[list[Image.Image], list[float]]:
    """Every page as the service's worker renders it (RENDER_DPI=DPI), and the seconds
    each render took here."""
    images, seconds = [], []
    for index in range(count):
        start = time.perf_counter()
        read = read_pdf_page(pdf, index, dpi=DPI, max_pixels=MAX_PIXELS, use_text_layer=False)
        seconds.append(time.perf_counter() - start)
        assert isinstance(read, RenderedPage)
        images.append(read.image)
    return images, seconds


# -- the raw engine ------------------------------------------------------------------

_pages: list[Image.Image] = []
_pdf: list[bytes] = []


def _raw_init(pages: list[Image.Image], pdf: bytes) -> None:
    """A raw process: Ctrl-C is the parent's to handle (it ends us); single-threaded (set
    before the spawn), the engine loaded as the service's ``init`` loads it, warm."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ocrstream.engines.worker import engine_module

    _pages.extend(pages)
    _pdf.append(pdf)
    engine = engine_module(ENGINE)
    engine.load(EngineOptions())
    engine.recognize(_pages[0])
    _worker_path(0)


def _raw_recognise(index: int) -> float:
    """Recognise pre-rendered page ``index``: the seconds ``recognize`` took."""
    from ocrstream.engines.worker import engine_module

    start = time.perf_counter()
    engine_module(ENGINE).recognize(_pages[index])
    return time.perf_counter() - start


def _worker_path(index: int) -> float:
    """Page ``index`` of the PDF through the service's worker function (open the PDF,
    render, recognise, build the page): the seconds it took."""
    from ocrstream.engines.worker import PageRequest, recognize_page

    request = PageRequest(
        format="PDF", page_index=index, dpi=DPI, max_pixels=MAX_PIXELS, use_text_layer=False
    )
    start = time.perf_counter()
    recognize_page(ENGINE, _pdf[0], request)
    return time.perf_counter() - start


@contextlib.contextmanager
def raw_pool(workers: int, pages: list[Image.Image], pdf: bytes) -> Iterator[ProcessPoolExecutor]:
    """``workers`` spawned raw processes, each loaded and warm; killed on the way out."""
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_raw_init,
        initargs=(pages, pdf),
    )
    try:
        # One task per process, all at once: every process started and through its init.
        futures = [pool.submit(time.sleep, 0.5) for _ in range(workers)]
        for future in futures:
            future.result(timeout=REQUEST_TIMEOUT)
        yield pool
    finally:
        processes = list(pool._processes.values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=10)


def raw_pass(pool: ProcessPoolExecutor, count: int) -> tuple[float, float, list[float]]:
    """Every page recognised by the whole pool: (wall seconds, seconds to the first page
    done, per-page seconds)."""
    start = time.perf_counter()
    futures = [pool.submit(_raw_recognise, index) for index in range(count)]
    first = 0.0
    for future in as_completed(futures, timeout=REQUEST_TIMEOUT):
        future.result()
        first = first or time.perf_counter() - start
    return time.perf_counter() - start, first, [future.result() for future in futures]


def raw_alone(pool: ProcessPoolExecutor, indices: list[int]) -> tuple[list[float], list[float]]:
    """Per-page seconds of pages recognised one at a time (the pool otherwise idle): the
    engine on the pre-rendered page, and the service's worker function on the PDF."""
    engine = [pool.submit(_raw_recognise, i).result(timeout=REQUEST_TIMEOUT) for i in indices]
    worker = [pool.submit(_worker_path, i).result(timeout=REQUEST_TIMEOUT) for i in indices]
    return engine, worker


# -- the service ---------------------------------------------------------------------


@contextlib.contextmanager
def service(workers: int, log: Path) -> Iterator[int]:
    """``ocrstream serve`` in a subprocess: its port."""
    settings = {
        "OCRSTREAM_OCR_ENGINE": ENGINE,
        "OCRSTREAM_OCR_WORKERS": str(workers),
        "OCRSTREAM_RENDER_DPI": str(DPI),
    }
    with serve_in_subprocess(settings, log=log) as url:
        port = urlsplit(url).port
        assert port is not None
        yield port


@dataclass(frozen=True, slots=True)
class Job:
    """One PDF's request: seconds from the first byte sent to ``processing_complete``,
    from the last byte sent to the first ``page_ocr_success``, each page's
    ``duration_ms`` and ``page_index`` in the order they came."""

    whole: float
    first_page: float
    durations: list[float]
    order: list[int]


_FIRST_PAGE = b"event: page_ocr_success"
_COMPLETE = b"event: processing_complete"


def post(port: int, request: bytes, *, pages: int, source: str) -> Job:
    """Send one upload of one PDF and read its stream to the end.

    Raises:
        RuntimeError: the stream ended without ``processing_complete``, or not every page
            came back from ``source``.
    """
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    sock.sendall(request)
    sent = time.perf_counter()
    received = bytearray()
    chunks: list[bytes] = []
    first = end = 0.0
    with sock:
        sock.settimeout(REQUEST_TIMEOUT)
        while data := sock.recv(1 << 20):
            scan = max(0, len(received) - len(_COMPLETE))
            received += data
            chunks.append(data)
            if not first and received.find(_FIRST_PAGE, scan) >= 0:
                first = time.perf_counter()
            if not end and received.find(_COMPLETE, scan) >= 0:
                end = time.perf_counter()
            if _ended(chunks):
                break
    body = dechunk(bytes(received).partition(b"\r\n\r\n")[2])
    durations: list[float] = []
    order: list[int] = []
    complete: dict[str, int] = {}
    for line in body.split(b"\n"):
        if not line.startswith(b"data: "):
            continue
        event = json.loads(line[len(b"data: ") :])
        if event["type"] == "page_ocr_success" and event["data"]["source"] == source:
            durations.append(float(event["data"]["duration_ms"]) / 1000)
            order.append(int(event["data"]["page_index"]))
        elif event["type"] == "processing_complete":
            complete = event["data"]
    if not end or complete.get("ocr_success_count") != 1 or len(durations) != pages:
        raise RuntimeError(f"the PDF was not read page by page ({source}): {body[-600:]!r}")
    return Job(whole=end - start, first_page=first - sent, durations=durations, order=order)


def upload(port: int, name: str, pdf: bytes) -> bytes:
    """The whole HTTP request uploading ``pdf``."""
    return _request(port, multipart_body([Upload(pdf, name, "application/pdf")], BOUNDARY))


# -- the run -------------------------------------------------------------------------


@dataclass
class Results:
    """Per rep (pages/s, seconds), and per page (seconds) over every rep."""

    raw: list[float] = field(default_factory=list)
    scanned: list[float] = field(default_factory=list)
    born: list[float] = field(default_factory=list)
    first_page: list[float] = field(default_factory=list)
    first_outside: list[float] = field(default_factory=list)
    alone: list[float] = field(default_factory=list)
    worker_alone: list[float] = field(default_factory=list)
    raw_first: list[float] = field(default_factory=list)
    raw_page: list[float] = field(default_factory=list)
    service_page: list[float] = field(default_factory=list)
    born_page: list[float] = field(default_factory=list)


def run(workers: int, repeat: int, log: Path) -> tuple[Results, dict[str, float]]:
    texts = _page_texts(PAGES)
    scanned = scanned_pdf(texts)
    born = born_digital_pdf(texts)
    images, render_seconds = render_pages(scanned, PAGES)
    facts = {
        "scanned_bytes": len(scanned),
        "born_bytes": len(born),
        "render_ms": statistics.median(render_seconds) * 1000,
        "width": images[0].width,
        "height": images[0].height,
    }
    # A file of one page sends no page_ocr_success: the warm-up has two at least.
    warm = max(2, workers)
    results = Results()
    with raw_pool(workers, images, scanned) as pool, service(workers, log) as port:
        requests = {
            "scanned": upload(port, "scanned.pdf", scanned),
            "born": upload(port, "born-digital.pdf", born),
        }
        post(port, upload(port, "warm.pdf", scanned_pdf(texts[:warm])), pages=warm, source="ocr")
        warm_born = upload(port, "warm-born.pdf", born_digital_pdf(texts[:2]))
        post(port, warm_born, pages=2, source="text_layer")
        for rep in range(repeat):
            wall, first, seconds = raw_pass(pool, PAGES)
            results.raw.append(PAGES / wall)
            results.raw_first.append(first)
            results.raw_page.extend(seconds)
            start = (rep * SINGLE_PAGES) % PAGES
            engine, worker = raw_alone(pool, list(range(start, start + SINGLE_PAGES)))
            results.alone.extend(engine)
            results.worker_alone.extend(worker)
            job = post(port, requests["scanned"], pages=PAGES, source="ocr")
            results.scanned.append(PAGES / job.whole)
            results.first_page.append(job.first_page)
            # The first page's time outside its worker call: validation, waiting for a
            # slot, the spool read, the event's way out (robust to the machine's load).
            results.first_outside.append(job.first_page - job.durations[0])
            results.service_page.extend(job.durations)
            order = job.order
            job = post(port, requests["born"], pages=PAGES, source="text_layer")
            results.born.append(PAGES / job.whole)
            results.born_page.extend(job.durations)
            print(
                f"   rep {rep + 1}: raw {results.raw[-1]:.2f}, scanned {results.scanned[-1]:.2f}"
                f" ({results.scanned[-1] / results.raw[-1]:.2f}), born-digital "
                f"{results.born[-1]:.1f} pages/s; first page {results.first_page[-1] * 1000:.0f}"
                f" ms (page {order[0]}); pages came back {','.join(map(str, order[:6]))},...",
                flush=True,
            )
    return results, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2, help="OCR workers = raw processes")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement")
    args = parser.parse_args()
    workers: int = max(1, args.workers)
    repeat: int = max(1, args.repeat)

    began = time.perf_counter()
    cpu_before = _cpu()
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as scratch:
        try:
            results, facts = run(workers, repeat, Path(scratch) / "server.log")
        except KeyboardInterrupt:
            print("interrupted: the server and the pool are stopped", file=sys.stderr)
            raise SystemExit(130) from None
    others = _others_share(cpu_before, _cpu())

    med = statistics.median
    raw, scanned, born = med(results.raw), med(results.scanned), med(results.born)
    first, alone = med(results.first_page), med(results.alone)
    paired = [s / r for s, r in zip(results.scanned, results.raw, strict=True)]
    print(
        f"\nocrstream documents, engine {ENGINE}, {workers} workers / raw processes, "
        f"{os.cpu_count()} CPUs; {PAGES}-page PDFs, A4 at {DPI} dpi "
        f"({int(facts['width'])}x{int(facts['height'])} px), medians of {repeat}\n"
    )
    rows = [
        ("raw engine, pre-rendered pages", f"{raw:.2f} pages/s"),
        (
            f"service, scanned PDF ({facts['scanned_bytes'] / 1024:.0f} KB)",
            f"{scanned:.2f} pages/s",
        ),
        (f"service, born-digital PDF ({facts['born_bytes'] / 1024:.0f} KB)", f"{born:.1f} pages/s"),
        ("first page_ocr_success after the body", f"{first * 1000:.0f} ms"),
        ("one page's OCR time (1 process, alone)", f"{alone * 1000:.0f} ms"),
        ("ratio service/raw, scanned (goal >= 0.9)", f"{scanned / raw:.2f}"),
        ("  median of the per-rep ratios", f"{med(paired):.2f}"),
        ("ratio born-digital/scanned (goal >= 50)", f"{born / scanned:.1f}"),
        ("first page - one page's OCR (goal < 100 ms)", f"{(first - alone) * 1000:.0f} ms"),
        (
            "first page: time outside its OCR call",
            f"{med(results.first_outside) * 1000:.0f} ms",
        ),
        ("raw: first page done in the pass", f"{med(results.raw_first) * 1000:.0f} ms"),
        (
            "first page - raw first page in the pass",
            f"{(first - med(results.raw_first)) * 1000:.0f} ms",
        ),
        ("raw ms per page in the pass (median)", f"{med(results.raw_page) * 1000:.0f} ms"),
        ("service duration_ms per page (median)", f"{med(results.service_page) * 1000:.0f} ms"),
        ("worker function on the PDF page, alone", f"{med(results.worker_alone) * 1000:.0f} ms"),
        ("  of which rendering, here alone (median)", f"{facts['render_ms']:.0f} ms"),
        ("born-digital duration_ms per page (median)", f"{med(results.born_page) * 1000:.1f} ms"),
        ("CPU used by other processes (% of machine)", f"{others * 100:.0f}%"),
    ]
    for label, value in rows:
        print(f"{label:<46}{value:>14}")
    print(f"\n(total run {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
