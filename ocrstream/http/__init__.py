"""HTTP: the Quart-Trio app, its routes and streams, and Hypercorn serving.

:mod:`~ocrstream.http.app` builds the app; the uploader's stream is
:mod:`~ocrstream.http.stream`; watcher streams leave Quart once their head is sent
(:mod:`~ocrstream.http.handoff`) and are written by one fan-out task
(:mod:`~ocrstream.http.fanout`, :mod:`~ocrstream.http.direct`);
:mod:`~ocrstream.http.serve` runs it all under Hypercorn's trio worker.
"""

from __future__ import annotations

__all__: list[str] = []
