"""The public surface: explicit ``__all__`` everywhere, and a pure core without I/O."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import ocrstream

PACKAGE_DIR = Path(ocrstream.__file__).parent
MODULES = sorted(
    f"ocrstream.{info.name}"
    for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
    if info.name not in {"__main__"}
)
PURE = {"config", "errors", "events", "sse", "validation", "jobs", "names"}
IO_LIBRARIES = {"trio", "quart", "quart_trio", "hypercorn", "httpx", "anyio", "asyncio", "socket"}


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


@pytest.mark.parametrize("name", sorted(PURE))
def test_pure_modules_import_no_io(name: str) -> None:
    tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
            assert not roots & IO_LIBRARIES, f"{name} imports {roots & IO_LIBRARIES}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                root = (node.module or "").split(".")[0]
                assert root not in IO_LIBRARIES, f"{name} imports {root}"
            else:
                sibling = (node.module or "").split(".")[0]
                assert sibling in PURE, f"pure {name} imports the I/O shell module {sibling}"
