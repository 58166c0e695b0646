"""nox is the single entry point: ``nox -s lint typecheck tests`` is what CI runs."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = os.environ.get("OCRSTREAM_NOX_PYTHON", "3.11")
SOURCES = ["ocrstream", "tests", "benchmarks", "noxfile.py"]


def install(session: nox.Session, *extras: str) -> None:
    """The one install helper: the project (editable) with the given extras."""
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("--upgrade", "pip")
    session.install("-e", spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite: unit, property (Hypothesis) and end-to-end against Hypercorn."""
    install(session, "test")
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package, the tests, the benchmarks and this file."""
    install(session, "dev")
    session.run("mypy", "--strict", *SOURCES)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks: each script starts what it measures and prints medians and ratios."""
    install(session, "test")
    scripts = session.posargs or sorted(str(path) for path in Path("benchmarks").glob("bench_*.py"))
    for script in scripts:
        session.run("python", script)
