"""``ocrstream serve`` in a subprocess, the way a user starts it (for tests that cannot
share the test's event loop: a browser, schemathesis, an asyncio client), and any server
process the tests start: :func:`listening_process` for synchronous tests,
:func:`open_listening_process` for Trio tests (it never blocks their event loop: a
process that takes seconds to listen would stall the in-process servers beside it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "STARTUP_TIMEOUT",
    "Listening",
    "free_port",
    "listening_process",
    "open_listening_process",
    "serve_in_subprocess",
]

STARTUP_TIMEOUT = 30.0
#: Seconds a process has to exit after SIGTERM, before SIGKILL.
STOP_TIMEOUT = 20.0
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


def _argv(command: Sequence[str], port: int) -> list[str]:
    return [part.replace("{port}", str(port)) for part in command]


def _failed(argv: Sequence[str], log: Path | None, what: str) -> RuntimeError:
    shown = log.read_text(errors="replace") if log is not None else "(output dropped)"
    return RuntimeError(f"{argv[0]} {what}:\n{shown}")


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

    The process gets SIGTERM on exit (then SIGKILL after STOP_TIMEOUT). For synchronous
    tests: it blocks while it waits (see :func:`open_listening_process`).
    """
    port = free_port() if port is None else port
    argv = _argv(command, port)
    with log.open("wb") if log is not None else open(os.devnull, "wb") as output:
        process = subprocess.Popen(argv, env=dict(env), stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise _failed(argv, log, f"exited with {process.returncode} before listening")
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise _failed(
                        argv, log, f"did not listen on {port} in {STARTUP_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield Listening(port=port, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _terminate(process: trio.Process) -> None:
    process.terminate()
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
        return
    process.kill()


@asynccontextmanager
async def open_listening_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path | None = None,
    port: int | None = None,
) -> AsyncIterator[Listening]:
    """:func:`listening_process` for Trio tests: the process runs in a nursery's task
    (``trio.run_process``), its port is probed with Trio sockets, and leaving stops it
    (SIGTERM, SIGKILL after STOP_TIMEOUT) without ever blocking the event loop.

    Raises:
        RuntimeError: it exited, or did not listen within STARTUP_TIMEOUT seconds.
    """
    port = free_port() if port is None else port
    argv = _argv(command, port)
    async with trio.open_nursery() as nursery:
        output = await trio.open_file(log, "wb") if log is not None else None
        try:
            run = partial(
                trio.run_process,
                argv,
                env=dict(env),
                stdout=subprocess.DEVNULL if output is None else output.wrapped.fileno(),
                stderr=subprocess.STDOUT,
                check=False,
                deliver_cancel=_terminate,
            )
            process: trio.Process = await nursery.start(run)
        finally:
            if output is not None:
                await output.aclose()
        try:
            deadline = trio.current_time() + STARTUP_TIMEOUT
            while not await _listens(port):
                if process.poll() is not None:
                    raise _failed(argv, log, f"exited with {process.returncode} before listening")
                if trio.current_time() > deadline:
                    what = f"did not listen on {port} in {STARTUP_TIMEOUT:.0f} s"
                    raise _failed(argv, log, what)
                await trio.sleep(0.05)
            yield Listening(port=port, pid=process.pid)
        finally:
            nursery.cancel_scope.cancel()


async def _listens(port: int) -> bool:
    try:
        with trio.fail_after(0.5):
            await (await trio.open_tcp_stream(HOST, port)).aclose()
    except (OSError, trio.TooSlowError):
        return False
    return True


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
