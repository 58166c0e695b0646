"""Documents: code that reads and writes PDFs and multi-page images; it runs in worker processes, never on the server's event loop."""  # noqa: E501

from __future__ import annotations

__all__: list[str] = []
