"""The public surface: explicit ``__all__`` everywhere, and a pure core without I/O."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ocrstream

PACKAGE_DIR = Path(ocrstream.__file__).parent
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="ocrstream.")
    if not info.name.endswith("__main__")
)
#: The pure core: every module under ocrstream.core, whatever is added there later.
PURE = sorted(name for name in MODULES if name.startswith("ocrstream.core."))
#: What the core must never load, directly or through anything it imports.
LOADED_IO = {
    "trio",
    "quart",
    "quart_trio",
    "hypercorn",
    "httpx",
    "httpx_sse",
    "anyio",
    "trio_parallel",
    "redis",
    "coredis",
}
#: What core code must not import itself (the standard library's asyncio and socket are
#: loaded by pydantic-settings, so only the source can tell that the core uses neither).
IO_LIBRARIES = LOADED_IO | {"asyncio", "socket"}

#: Run in a fresh interpreter: import one module, print the I/O libraries it loaded.
_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_roots(module: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after importing ``module``."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE_DIR.parent,
    )
    return set(json.loads(result.stdout))


def _isort_key(symbol: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions and the rest.
    if symbol.isupper():
        return (0, symbol)
    return (1 if symbol[0].isupper() else 2, symbol)


def test_package_exports_only_version_and_create_app() -> None:
    assert ocrstream.__all__ == ["__version__", "create_app"]
    assert isinstance(ocrstream.__version__, str)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} declares no __all__"
    assert list(exported) == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
    tree = ast.parse(Path(module.__file__ or "").read_text())
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    public = {n for n in defined if not n.startswith("_") and n != "logger"}
    missing = public - set(exported)
    assert not missing, f"{name} defines public names outside __all__: {sorted(missing)}"


def test_pure_modules_are_the_core_package() -> None:
    assert "ocrstream.core.events" in PURE
    assert "ocrstream.core.openapi" in PURE
    assert all(name.startswith("ocrstream.core.") for name in PURE)


@pytest.mark.parametrize("name", ["ocrstream", *PURE])
def test_importing_the_core_loads_no_io_library(name: str) -> None:
    # A real import in a fresh interpreter: catches indirect imports too (a core module
    # importing a helper that imports trio), which reading the source alone would miss.
    loaded = loaded_roots(name) & LOADED_IO
    assert not loaded, f"importing {name} loads {sorted(loaded)}"


def test_the_probe_sees_an_io_import() -> None:
    # The check above can fail: the shell layer's modules do load trio.
    assert "trio" in loaded_roots("ocrstream.http.app")
    assert "quart" in loaded_roots("ocrstream.http.app")


def test_create_app_is_importable_from_the_package() -> None:
    from ocrstream import create_app
    from ocrstream.http.app import create_app as direct

    assert create_app is direct


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_only_the_core(name: str) -> None:
    module = importlib.import_module(name)
    tree = ast.parse(Path(module.__file__ or "").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
            assert not roots & IO_LIBRARIES, f"{name} imports {roots & IO_LIBRARIES}"
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            assert node.level == 0, f"{name}: relative import"
            assert target.split(".")[0] not in IO_LIBRARIES, f"{name} imports {target}"
            if target.startswith("ocrstream"):
                assert target.startswith(("ocrstream.core", "ocrstream.version")), (
                    f"pure {name} imports the I/O shell module {target}"
                )
