"""ocrstream: streaming OCR over Server-Sent Events, on Trio.

The package is layered, each layer a subpackage that may import only those below it:

* :mod:`ocrstream.core`: pure (no trio, Quart, Hypercorn, httpx, trio-parallel or Redis
  client): settings, the error tree, events and their SSE wire format, file names,
  image validation, job records, the OpenAPI document;
* :mod:`ocrstream.engines`: the OCR engines and the worker-process side of them;
* :mod:`ocrstream.service`: the Trio shell: intake, one upload's pipeline, the OCR
  queue, metrics, and the backend seam (jobs, events, broadcast) with the in-memory
  backend behind it;
* :mod:`ocrstream.http`: the Quart-Trio app, its routes and streams, the watchers'
  fan-out and Hypercorn serving;
* :mod:`ocrstream.client`: the Python client and the terminal view;
* :mod:`ocrstream.cli`: the ``ocrstream`` command, on top of everything.

Importing this package loads nothing but the version: ``create_app`` is imported on
first use, so ``import ocrstream.core.events`` stays free of the I/O stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrstream.version import __version__

if TYPE_CHECKING:
    from ocrstream.http.app import create_app

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> object:
    # PEP 562: the app (and with it the whole I/O stack) loads only when asked for.
    if name == "create_app":
        from ocrstream.http.app import create_app

        return create_app
    raise AttributeError(f"module 'ocrstream' has no attribute {name!r}")
