"""``ocrstream serve`` in a subprocess, the way a user starts it (for tests that cannot
share the test's event loop: a browser, schemathesis, an asyncio client)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "STARTUP_TIMEOUT",
    "Listening",
    "free_port",
    "listening_process",
    "serve_in_subprocess",
]

STARTUP_TIMEOUT = 30.0
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback address now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Listening:
    """A server process listening on a loopback port."""

    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextmanager
def listening_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path | None = None,
    port: int | None = None,
) -> Iterator[Listening]:
    """Run ``command`` ("{port}" in it replaced by a free loopback port) until it listens.

    Args:
        command: the server's command line.
        env: its whole environment.
        log: where its stdout and stderr go (shown when it fails to start); None drops them.
        port: the port it listens on, when its configuration names it (default: a free
            one, picked here).

    Raises:
        RuntimeError: it exited, or did not listen within STARTUP_TIMEOUT seconds.

    The process gets SIGTERM on exit (then SIGKILL after 20 s).
    """
    port = free_port() if port is None else port
    argv = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") if log is not None else open(os.devnull, "wb") as output:
        process = subprocess.Popen(argv, env=dict(env), stdout=output, stderr=subprocess.STDOUT)

    def failed(what: str) -> RuntimeError:
        shown = log.read_text(errors="replace") if log is not None else "(output dropped)"
        return RuntimeError(f"{argv[0]} {what}:\n{shown}")

    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise failed(f"exited with {process.returncode} before listening")
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise failed(f"did not listen on {port} in {STARTUP_TIMEOUT:.0f} s") from None
                time.sleep(0.05)
        yield Listening(port=port, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serve_in_subprocess(settings: Mapping[str, str], *, log: Path) -> Iterator[str]:
    """Start ``python -m ocrstream serve`` on a free loopback port; yield its base URL.

    Args:
        settings: OCRSTREAM_* variables (the test's own OCRSTREAM_* are dropped first).
        log: where the server's output goes (shown when it fails to start).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCRSTREAM_")}
    env.update(settings)
    command = [sys.executable, "-m", "ocrstream", "serve", "--host", HOST, "--port", "{port}"]
    with listening_process(command, env=env, log=log) as server:
        yield server.url
