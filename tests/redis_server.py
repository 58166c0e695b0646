"""A private redis-server for a test: a free loopback port, its own temporary directory,
no persistence; started by a fixture and stopped by its PID after the test.

It can also be stopped and started again on the same port (a restart, empty since
nothing persists), paused with SIGSTOP (a peer that neither answers nor refuses), and
serve TLS only (``rediss://``) with a certificate of a private CA made by ``openssl``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["RedisServer", "redis_server", "requires_redis"]

REDIS_SERVER = shutil.which("redis-server")
OPENSSL = shutil.which("openssl")
#: Marks tests that need Debian's redis-server (CI installs it).
requires_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on ``port``, data in ``directory`` (never written)."""

    def __init__(self, directory: Path, *, password: str | None = None, tls: bool = False) -> None:
        self.directory = directory
        self.port = _free_port()
        self.password = password
        self.tls = tls
        self._process: subprocess.Popen[bytes] | None = None
        if tls:
            _make_certificates(directory)

    @property
    def ca_file(self) -> Path:
        """The private CA's certificate (TLS only)."""
        return self.directory / "ca.pem"

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0``; with TLS
        ``rediss://…localhost:<port>/0?ssl_ca_certs=<the CA>`` (the name the
        certificate is for)."""
        credentials = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{credentials}localhost:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"redis://{credentials}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait (bounded) until it answers."""
        assert REDIS_SERVER is not None
        command = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls:
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += [
                "--tls-cert-file", str(self.directory / "server.pem"),
                "--tls-key-file", str(self.directory / "server.key"),
                "--tls-ca-cert-file", str(self.ca_file),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self._process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            try:
                if self._answers():
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}: {self.log()}")

    def _answers(self) -> bool:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=0.2)
        with conn:
            if self.tls:
                context = ssl.create_default_context(cafile=self.ca_file)
                conn = context.wrap_socket(conn, server_hostname="localhost")
            with conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Stop it by its PID (SIGKILL if it does not go within 5 s); nothing is saved."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)

    def log(self) -> str:
        """The server's log so far."""
        try:
            return (self.directory / "redis.log").read_text()[-2000:]
        except OSError:
            return ""


def _make_certificates(directory: Path) -> None:
    """A private CA (``ca.pem``) and a certificate it signed for ``localhost`` and
    127.0.0.1 (``server.pem``, ``server.key``), valid for a day."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed")

    def run(*arguments: str) -> None:
        subprocess.run([OPENSSL, *arguments], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=ocrstream test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")  # fmt: skip


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running private redis-server, stopped after the test."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
