"""The ``ocrstream`` command: ``serve`` (and, later, ``submit`` and ``watch``)."""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from typing import TYPE_CHECKING

import trio

from .config import load_settings
from .errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrstream", description="Streaming OCR over SSE")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default OCRSTREAM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default OCRSTREAM_PORT or 8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(host=arguments.host, port=arguments.port)
    except ConfigError as error:
        print(f"ocrstream: {error.message}", file=sys.stderr)
        return 2
    from .engines.base import EngineUnavailable
    from .serve import check_engine, run_server

    try:
        check_engine(settings)
    except EngineUnavailable as error:
        print(f"ocrstream: OCRSTREAM_OCR_ENGINE={settings.ocr_engine}: {error}", file=sys.stderr)
        return 2
    trio.run(partial(run_server, settings))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
