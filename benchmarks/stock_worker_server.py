"""The fan-out ablation's server (bench_fanout.py): ocrstream on Hypercorn's own worker.

Usage: ``python benchmarks/stock_worker_server.py PORT``, with the OCRSTREAM_* environment
``ocrstream serve`` would have. Listens on 127.0.0.1 only; stops on SIGTERM or SIGINT.

The same as ``ocrstream serve --host 127.0.0.1 --port PORT`` (the same app, settings,
listening sockets, signals and graceful shutdown, through ``run_server``) except for
the server loop: ``hypercorn.trio.run.worker_serve``, the worker that stock
``hypercorn.trio.serve`` runs once it has wrapped the app (as ``run_server`` does),
instead of ocrstream's copy of it, ``serve_hypercorn``. That copy's one addition is
``DIRECT_CONNECTION``; without it the hand-off, the one fan-out task and its coalescing
all stay, but no reader has a direct writer, so the fan-out task hands each reader's
frames to that reader's own task, which sends them as one chunk through ASGI
``send`` (Hypercorn's h11, send lock and ``send_all``).
"""

from __future__ import annotations

import logging
import sys
from functools import partial

import trio
from hypercorn.trio.run import worker_serve

from ocrstream.core.config import load_settings
from ocrstream.http.serve import run_server

HOST = "127.0.0.1"


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(host=HOST, port=int(sys.argv[1]))
    trio.run(partial(run_server, settings, worker=worker_serve))


if __name__ == "__main__":
    main()
