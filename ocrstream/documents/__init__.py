"""Documents in and out: reading PDFs (page count, text layers, rendering) and writing
searchable PDFs. The code here parses untrusted files, so it runs in worker processes
only, never on the server's event loop (SPEC "Documents and pages": no byte of an
uploaded PDF is parsed in the server's own process).
"""

from __future__ import annotations

__all__: list[str] = []
