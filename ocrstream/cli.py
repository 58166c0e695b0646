"""The ``ocrstream`` command: ``serve``, ``worker [--metrics-port P]``,
``submit FILES… [--save DIR --format txt,pdf]`` and ``watch JOB_ID``.

``worker`` (REDIS_URL required) recognises pages from the shared Redis queue until
SIGTERM/SIGINT; then it takes no more, lets the pages it holds finish for
``--stop-grace`` seconds (:data:`WORKER_STOP_GRACE`) and hands the rest back to the queue
(they go to another worker at once, and the interrupted try does not count).

Exit codes of ``submit`` and ``watch`` (see :mod:`ocrstream.client.terminal`): 0 every file
valid (and recognised); 1 the job finished but some file was invalid or failed OCR;
2 bad arguments or configuration; 3 the job ended with ``processing_error``; 4 the
server refused the request; 5 the server could not be reached or the stream broke off.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import trio
from rich.text import Text

from ocrstream.core.config import load_settings
from ocrstream.core.errors import ConfigError
from ocrstream.core.exports import EXPORT_FORMATS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ocrstream.core.config import Settings

__all__ = ["WORKER_STOP_GRACE", "main"]

_DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds a stopping ``ocrstream worker`` lets the pages it holds finish.
WORKER_STOP_GRACE = 10.0


def _export_formats(value: str) -> list[str]:
    formats = [item.strip().lower() for item in value.split(",") if item.strip()]
    unknown = [item for item in formats if item not in EXPORT_FORMATS]
    if unknown or not formats:
        choices = ", ".join(EXPORT_FORMATS)
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(unknown) or value!r}; choose from {choices}"
        )
    return formats


async def _client_command(arguments: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from ocrstream.client.client import OCRStreamClient, ProblemError
    from ocrstream.client.exports import save_exports
    from ocrstream.client.terminal import EXIT_CONNECTION, EXIT_REFUSED, JobView

    console = Console(stderr=arguments.json, soft_wrap=True)
    token = arguments.token or os.environ.get("OCRSTREAM_API_TOKEN")
    view = JobView()
    async with OCRStreamClient(arguments.url, token=token) as client:
        if arguments.command == "submit":
            events = client.submit(
                arguments.files, ocr=not arguments.no_ocr, pdf_text=arguments.pdf_text
            )
        else:
            events = client.watch(arguments.job_id)
        try:
            if arguments.json:
                async for envelope in events:
                    view.apply(envelope)
                    print(envelope.to_json(), flush=True)
            elif not console.is_terminal:
                # Not a terminal (a pipe, a log): plain lines, no live redrawing.
                async for envelope in events:
                    text = view.apply(envelope)
                    line = view.describe(envelope)
                    if line:
                        console.print(Text(line))
                    if text is not None:
                        console.print(Text(text))
                console.print(Text(view.summary()))
            else:
                with Live(view.render(), console=console, auto_refresh=False) as live:
                    async for envelope in events:
                        text = view.apply(envelope)
                        if text is not None:
                            index = envelope.event.file_index  # type: ignore[union-attr]
                            name = view.files[index].file_name
                            live.console.print(Text(f"── {name} ──\n{text}"))
                        live.update(view.render(), refresh=True)
                console.print(Text(view.summary()))
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            sys.stderr.close()
            return view.exit_code()
        except ProblemError as error:
            console.print(Text(f"ocrstream: refused: {error}"))
            return EXIT_REFUSED
        except httpx.HTTPError as error:
            console.print(Text(f"ocrstream: {arguments.url}: {type(error).__name__}: {error}"))
            return EXIT_CONNECTION
        finally:
            await events.aclose()
        if arguments.command == "submit" and arguments.save and view.job_id:
            try:
                saved = await save_exports(
                    client,
                    view,
                    local_names=arguments.files,
                    directory=Path(arguments.save),
                    formats=arguments.format,
                )
            except (ProblemError, httpx.HTTPError, OSError) as error:
                console.print(Text(f"ocrstream: saving exports failed: {error}"))
                return EXIT_CONNECTION
            for path in saved:
                console.print(Text(f"saved {path}"))
    return view.exit_code()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrstream", description="Streaming OCR over SSE")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default OCRSTREAM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default OCRSTREAM_PORT or 8000)")
    worker = commands.add_parser("worker", help="recognise pages from the shared Redis queue")
    worker.add_argument(
        "--metrics-port", type=int, help="serve /metrics and /healthz on 127.0.0.1:PORT"
    )
    worker.add_argument(
        "--stop-grace",
        type=float,
        default=WORKER_STOP_GRACE,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, seconds the pages held may finish before they are handed"
        f" back to the queue (default {WORKER_STOP_GRACE:g})",
    )
    submit = commands.add_parser("submit", help="upload files and show their progress")
    submit.add_argument("files", nargs="+", help="images, multi-page TIFFs and PDFs to upload")
    submit.add_argument("--no-ocr", action="store_true", help="validate only (?ocr=false)")
    submit.add_argument(
        "--pdf-text", choices=("auto", "ocr"), help="read PDF text layers, or recognise every page"
    )
    submit.add_argument(
        "--save", metavar="DIR", help="write each recognised file's exports into DIR"
    )
    submit.add_argument(
        "--format",
        default="txt",
        type=_export_formats,
        help=f"exports --save writes, comma-separated: {','.join(EXPORT_FORMATS)} (default txt)",
    )
    watch = commands.add_parser("watch", help="follow an existing job")
    watch.add_argument("job_id", help="the job's id (from the Location header or any event)")
    for command in (submit, watch):
        command.add_argument("--url", default=_DEFAULT_URL, help=f"server (default {_DEFAULT_URL})")
        command.add_argument("--token", help="bearer token (default: OCRSTREAM_API_TOKEN)")
        command.add_argument("--json", action="store_true", help="one JSON event per line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    arguments = _parser().parse_args(argv)
    if arguments.command == "submit":
        missing = [name for name in arguments.files if not os.path.isfile(name)]
        if missing:
            print(f"ocrstream: no such file: {', '.join(missing)}", file=sys.stderr)
            return 2
    if arguments.command in {"submit", "watch"}:
        return trio.run(_client_command, arguments)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(
            host=getattr(arguments, "host", None), port=getattr(arguments, "port", None)
        )
    except ConfigError as error:
        print(f"ocrstream: {error.message}", file=sys.stderr)
        return 2
    from ocrstream.engines.base import EngineUnavailable
    from ocrstream.http.serve import check_engine, run_server

    if arguments.command == "worker":
        if settings.redis_url is None:
            print(
                "ocrstream: worker needs OCRSTREAM_REDIS_URL (the Redis the instances share)",
                file=sys.stderr,
            )
            return 2
        if settings.ocr_workers < 1 or settings.ocr_engine == "none":
            print(
                "ocrstream: worker needs OCRSTREAM_OCR_WORKERS of 1 or more and an engine"
                " (OCRSTREAM_OCR_ENGINE)",
                file=sys.stderr,
            )
            return 2
    try:
        check_engine(settings)
    except EngineUnavailable as error:
        print(f"ocrstream: OCRSTREAM_OCR_ENGINE={settings.ocr_engine}: {error}", file=sys.stderr)
        return 2
    if arguments.command == "worker":
        trio.run(
            partial(
                _run_worker,
                settings,
                metrics_port=arguments.metrics_port,
                stop_grace=arguments.stop_grace,
            )
        )
        return 0
    trio.run(partial(run_server, settings))
    return 0


async def _run_worker(settings: Settings, *, metrics_port: int | None, stop_grace: float) -> None:
    from ocrstream.core.redis_url import redacted
    from ocrstream.http.worker_http import serve_worker_http
    from ocrstream.service.redis.worker import RedisWorkers, run_redis_workers

    logger = logging.getLogger("ocrstream.worker")
    assert settings.redis_url is not None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def work(*, task_status: trio.TaskStatus[RedisWorkers]) -> None:
                await run_redis_workers(settings, task_status=task_status)
                nursery.cancel_scope.cancel()  # stopped taking, and the held pages are done

            workers: RedisWorkers = await nursery.start(work)
            logger.info(
                "worker %s: %d slots (%s) on %s",
                workers.worker_id,
                len(workers.slots),
                settings.ocr_engine,
                redacted(settings.redis_url),
            )
            if metrics_port is not None:
                port = await nursery.start(serve_worker_http, metrics_port, workers)
                logger.info("metrics on http://127.0.0.1:%d/metrics", port)
            async for signum in signals:
                logger.info("received %s: stopping", signal.Signals(signum).name)
                break
            workers.stop_taking(grace=stop_grace)
            # A backstop: the hand-back of held pages is bounded, and so is the stop.
            nursery.cancel_scope.deadline = trio.current_time() + stop_grace + 5


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
