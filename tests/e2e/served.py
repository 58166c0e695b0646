"""``ocrstream serve`` in a subprocess, the way a user starts it (for tests that cannot
share the test's event loop: a browser, schemathesis, an asyncio client)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

__all__ = ["serve_in_subprocess"]

STARTUP_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_subprocess(settings: Mapping[str, str], *, log: Path) -> Iterator[str]:
    """Start ``python -m ocrstream serve`` on a free loopback port; yield its base URL.

    Args:
        settings: OCRSTREAM_* variables (the test's own OCRSTREAM_* are dropped first).
        log: where the server's output goes (shown when it fails to start).

    The server gets SIGTERM on exit (then SIGKILL after 20 s).
    """
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCRSTREAM_")}
    env.update(settings)
    command = [sys.executable, "-m", "ocrstream", "serve", "--host", "127.0.0.1", "--port"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, str(port)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ocrstream serve exited early:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"ocrstream serve never listened:\n{log.read_text()}"
                    ) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
