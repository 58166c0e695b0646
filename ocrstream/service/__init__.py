"""The Trio shell: what moves bytes and events and owns tasks, below HTTP.

:mod:`~ocrstream.service.intake` (streaming multipart), :mod:`~ocrstream.service.pipeline`
(one upload's nursery), :mod:`~ocrstream.service.ocr` (the fair OCR queue and its
worker processes), :mod:`~ocrstream.service.metrics`, and the backend seam
(:mod:`~ocrstream.service.backend`): the interfaces the routes and the pipeline talk to
for jobs, their event histories and the broadcast of every job's events, with the
in-memory backend in :mod:`ocrstream.service.memory`.
"""

from __future__ import annotations

__all__: list[str] = []
