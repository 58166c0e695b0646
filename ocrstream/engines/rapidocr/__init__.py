"""The RapidOCR engine (the default): the engine module contract of
:mod:`ocrstream.engines.base`, implemented in :mod:`~ocrstream.engines.rapidocr.adapter`."""

from __future__ import annotations

from ocrstream.engines.rapidocr.adapter import NAME, check_available, load, recognize

__all__ = ["NAME", "check_available", "load", "recognize"]
