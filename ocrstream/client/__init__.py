"""Clients of the service: the Python client and the terminal view of a job.

``from ocrstream.client import OCRStreamClient`` is the public entry point; see
:mod:`ocrstream.client.client` for the API and :mod:`ocrstream.client.terminal` for
the live table ``ocrstream submit`` draws.
"""

from __future__ import annotations

from ocrstream.client.client import (
    FileResult,
    JobFailed,
    JobResult,
    OCRStreamClient,
    ProblemError,
)

__all__ = ["FileResult", "JobFailed", "JobResult", "OCRStreamClient", "ProblemError"]
