"""Debian's nginx in front of a test server, configured with README's server block.

The block is read from README.md ("Behind nginx"), so the tests check the
configuration exactly as a user copies it; only its ``listen`` port and the
``proxy_pass`` upstream port change. nginx runs under its own prefix in a temporary
directory (its own pid file, logs and temp paths, Debian's service untouched), in the
foreground, and is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.e2e.served import free_port, listening_process, open_listening_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = ["NGINX", "open_nginx", "readme_server_block", "running_nginx"]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
README = Path(__file__).resolve().parents[2] / "README.md"

_MAIN = """\
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{server}
}}
"""


def readme_server_block() -> str:
    """The ``server { … }`` block of README's "Behind nginx" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Behind nginx") :]
    match = re.search(r"```nginx\n(server \{.*?\n\})\n```", section, re.S)
    assert match is not None, "README's 'Behind nginx' has no ```nginx server block"
    return match.group(1)


def _configure(upstream_port: int, prefix: Path) -> tuple[list[str], int]:
    """nginx's command line with README's block, proxying to ``upstream_port``, under
    ``prefix``; and the port it will listen on."""
    block = readme_server_block()
    assert "listen 80;" in block
    assert "proxy_pass http://127.0.0.1:8000;" in block
    port = free_port()
    block = block.replace("listen 80;", f"listen 127.0.0.1:{port};").replace(
        "proxy_pass http://127.0.0.1:8000;", f"proxy_pass http://127.0.0.1:{upstream_port};"
    )
    prefix.mkdir(parents=True, exist_ok=True)
    # Its workers run as nobody: they must be able to use the temp paths.
    os.chmod(prefix, 0o777)
    config = prefix / "nginx.conf"
    config.write_text(_MAIN.format(prefix=prefix, server=block), encoding="utf-8")
    return [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")], port


@contextmanager
def running_nginx(upstream_port: int, prefix: Path) -> Iterator[str]:
    """nginx with README's block, proxying to ``upstream_port``; yields its base URL
    (for synchronous tests; Trio tests use :func:`open_nginx`)."""
    command, port = _configure(upstream_port, prefix)
    with listening_process(
        command, env=dict(os.environ), log=prefix / "nginx.out", port=port
    ) as nginx:
        yield nginx.url


@asynccontextmanager
async def open_nginx(upstream_port: int, prefix: Path) -> AsyncIterator[str]:
    """:func:`running_nginx` for Trio tests (it never blocks their event loop)."""
    command, port = _configure(upstream_port, prefix)
    async with open_listening_process(
        command, env=dict(os.environ), log=prefix / "nginx.out", port=port
    ) as nginx:
        yield nginx.url
