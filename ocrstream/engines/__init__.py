"""OCR engines: ``rapidocr`` (default), ``tesseract`` and ``fake`` (tests, benchmarks).

Each engine is a module with the contract described in :mod:`ocrstream.engines.base`;
:mod:`ocrstream.engines.worker` runs them inside worker processes.
"""

from __future__ import annotations

__all__: list[str] = []
