"""What one small upload's pipeline costs, in-process: no HTTP, no sockets, no scheduler noise
from other connections.

The HTTP figures of ``bench_upload.py`` move by +-30% from round to round on a shared
2-CPU machine, so a change of a few percent in the pipeline cannot be seen there. This
script times the pipeline alone, in one process, with the cyclic garbage collector off
during each round (its pauses are ``bench_upload.py``'s subject), in CPU time:

- ocrstream: :func:`ocrstream.service.pipeline.run_job` on a 24x24 PNG (bench_upload's
  small image), OCR off, with the registry, the firehose ring and the metrics wired as
  the app wires them (no readers attached: the fan-out's writes are not in it): the
  intake (python-multipart), validation (Pillow, inline), six events sequenced,
  encoded once and recorded;
- baseline, the same body through the naive endpoint's own work
  (``benchmarks/naive_sse_server.py``): Werkzeug's multipart parser, the one Quart's
  ``request.files`` runs, and its six events framed with ``json.dumps``, nothing decoded.

Rounds alternate; each prints the median of ROUNDS rounds of JOBS jobs, and the ratio
of the two in each round (median). Usage: ``python benchmarks/bench_pipeline.py
[--rounds 9] [--jobs 2000]`` (about 30 s).
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from werkzeug.formparser import parse_form_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_upload import _png
from naive_sse_server import _upload_events

from ocrstream.core.config import load_settings
from ocrstream.service.memory.broadcast import Broadcaster
from ocrstream.service.memory.registry import JobRegistry
from ocrstream.service.metrics import Metrics
from ocrstream.service.pipeline import JobOptions, run_job
from tests.images import Upload, multipart_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

BOUNDARY = "bench-pipeline-boundary"
ROUNDS = 9
JOBS = 2_000


def _ocrstream(body: bytes) -> Callable[[], Awaitable[None]]:
    settings = load_settings({})
    broadcaster = Broadcaster(settings.event_buffer)
    metrics = Metrics(
        open_streams=lambda: 0,
        running_jobs=lambda: 0,
        lagged=lambda: (0, 0),
        watcher_writes=lambda: (0, 0),
    )
    registry = JobRegistry(
        result_ttl=settings.result_ttl, on_publish=(broadcaster.publish, metrics.observe)
    )
    limiter = trio.CapacityLimiter(settings.validation_threads)
    options = JobOptions(boundary=BOUNDARY.encode(), content_length=len(body))

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    async def one() -> None:
        handle = registry.create()
        await run_job(handle, chunks(), options=options, settings=settings, limiter=limiter)
        if handle.record.history[-1].type != "processing_complete":
            raise RuntimeError(f"the job ended with {handle.record.history[-1].type}")

    return one


def _naive(body: bytes) -> Callable[[], Awaitable[None]]:
    environ: dict[str, object] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": None,
    }

    async def one() -> None:
        environ["wsgi.input"] = io.BytesIO(body)
        _, _, files = parse_form_data(environ)
        uploads = [(f.filename or "", f.content_type, f.read()) for f in files.getlist("files")]
        frames = _upload_events("0" * 32, uploads)
        if len(frames) != 6:
            raise RuntimeError(f"{len(frames)} frames")

    return one


async def _round(one: Callable[[], Awaitable[None]], jobs: int) -> float:
    """CPU microseconds per job over ``jobs`` jobs, the collector off."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        for _ in range(jobs):
            await one()
        return (time.process_time() - start) / jobs * 1e6
    finally:
        gc.enable()


async def _main(rounds: int, jobs: int) -> None:
    # bench_upload.py's small image: 24x24 of noise.
    body = multipart_body([Upload(_png((24, 24), noise=True), "small.png", "image/png")], BOUNDARY)
    sides = {"ocrstream run_job": _ocrstream(body), "naive route's work": _naive(body)}
    for one in sides.values():
        await _round(one, 200)  # warm up
    results: dict[str, list[float]] = {name: [] for name in sides}
    for turn in range(rounds):
        order = list(sides) if turn % 2 == 0 else list(reversed(sides))
        for name in order:
            results[name].append(await _round(sides[name], jobs))
    for name, figures in results.items():
        rounded = ", ".join(f"{figure:.0f}" for figure in figures)
        print(f"{name:20s} median {statistics.median(figures):6.1f} us/job  ({rounded})")
    ours, naive = results.values()
    ratio = statistics.median(a / b for a, b in zip(ours, naive, strict=True))
    print(f"ocrstream / naive: {ratio:.2f} (median of the rounds' ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--jobs", type=int, default=JOBS)
    arguments = parser.parse_args()
    trio.run(_main, arguments.rounds, arguments.jobs)


if __name__ == "__main__":
    main()
