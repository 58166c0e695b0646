"""The pure core: no I/O library is imported anywhere below this package.

Settings (:mod:`~ocrstream.core.config`), the error tree (:mod:`~ocrstream.core.errors`),
events (:mod:`~ocrstream.core.events`) and their wire format (:mod:`~ocrstream.core.sse`),
file names (:mod:`~ocrstream.core.names`), image checks
(:mod:`~ocrstream.core.validation`), job records (:mod:`~ocrstream.core.jobs`) and the
OpenAPI document (:mod:`~ocrstream.core.openapi`). ``tests/test_public_api.py`` imports
every module here in a fresh interpreter and checks that trio, Quart, Hypercorn, httpx,
trio-parallel and Redis clients stayed out of ``sys.modules``.
"""

from __future__ import annotations

__all__: list[str] = []
