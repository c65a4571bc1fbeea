"""The layer rules, enforced: the engine never imports the GUI and the desktop imports the engine
only through its public API (import-linter's contracts in pyproject.toml), the engine's modules
import each other without circles (grimp's import graph), and that API (``engine.__all__``)
resolves while ``import engine`` alone stays cheap.

Both read the source, not the running program: an import inside a function or under
``if TYPE_CHECKING:`` counts like one at the top of a module.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Import circles allowed in engine/: none (issue 14 took the last ones apart). The test fails on
# any circle not listed here, and on a listed one that no longer exists, so the list only shrinks.
ALLOWED_CIRCLES: tuple[frozenset[str], ...] = ()


# lint-imports' console script, run with this interpreter.
_LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_hold() -> None:
    """import-linter's contracts (pyproject.toml [tool.importlinter]) all hold: the engine never
    imports the GUI, and the desktop imports no engine module but ``engine`` itself."""
    result = subprocess.run(
        [sys.executable, "-c", _LINT, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        pytest.fail(
            "An import-linter contract is broken (engine/ must not import desktop, PySide6, "
            "shiboken6 or pyqtgraph; keep GUI code in desktop/; desktop/ imports the engine only "
            "as `from engine import X`):\n" + result.stdout + result.stderr,
            pytrace=False,
        )


def test_engine_has_no_import_circles_but_the_allowed_ones() -> None:
    graph = grimp.build_graph("engine", cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    found = set(circles(imports))
    allowed = set(ALLOWED_CIRCLES)
    new = sorted(found - allowed, key=sorted)
    gone = sorted(allowed - found, key=sorted)
    message = [_describe(graph, circle) for circle in new]
    message += [
        "This allowed circle no longer exists; take it out of ALLOWED_CIRCLES in "
        f"tests/test_architecture.py: {', '.join(sorted(circle))}"
        for circle in gone
    ]
    if message:
        pytest.fail("\n\n".join(message), pytrace=False)


def circles(imports: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The import circles of a graph {module: modules it imports}: its strongly connected
    components of more than one module (Tarjan's algorithm, iterative), plus modules that
    import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for start in sorted(imports):
        if start in index:
            continue
        work = [(start, iter(sorted(imports.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(imports.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.add(member)
                    if member == node:
                        break
                if len(members) > 1 or node in imports.get(node, ()):
                    found.append(frozenset(members))
    return found


def _describe(graph: grimp.ImportGraph, circle: frozenset[str]) -> str:
    """A new circle and the imports that close it, with their lines."""
    lines = [
        f"New import circle between {', '.join(sorted(circle))}. Move what both sides need "
        "into a module they both import (or make one side not need the other):"
    ]
    for importer in sorted(circle):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & circle):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(
                    f"  {importer}:{detail['line_number']} imports {imported}: "
                    f"{detail['line_contents']}"
                )
    return "\n".join(lines)


def test_circles_finds_every_circle_and_only_circles() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},
        "d": {"e"},
        "e": set(),
        "f": {"f"},
        "g": {"h"},
        "h": {"g", "a"},
    }
    assert sorted(map(sorted, circles(graph))) == [["a", "b", "c"], ["f"], ["g", "h"]]


# What `import engine` alone may load: the package and its lazy-import helper, nothing heavy.
_CHEAP_IMPORT = """
import sys
import engine
heavy = sorted(m for m in ("torch", "numpy", "PIL", "PySide6") if m in sys.modules)
inner = sorted(m for m in sys.modules if m.startswith("engine.") and m != "engine.lazy")
print(heavy, inner)
"""


def test_import_engine_alone_loads_no_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _CHEAP_IMPORT],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []", (
        "`import engine` must stay cheap (its names are imported on first use, PEP 562); "
        f"it loaded [heavy packages] [engine modules]: {result.stdout.strip()}"
    )


def _type_checking_imports() -> dict[str, str]:
    """{name: module} of the ``if TYPE_CHECKING:`` imports in engine/__init__.py."""
    tree = ast.parse((ROOT / "engine" / "__init__.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module, (
                    "only `from module import name` under TYPE_CHECKING in engine/__init__.py"
                )
                for alias in statement.names:
                    found[alias.asname or alias.name] = statement.module
    return found


def test_the_public_api_resolves_and_type_checkers_see_it() -> None:
    """Every name of engine.__all__ is importable from engine, comes from the module its
    TYPE_CHECKING import names (so type checkers see what the program gets), and no name is
    also an engine submodule's (importing the submodule would replace the name)."""
    engine = importlib.import_module("engine")
    table: dict[str, str] = engine._LAZY
    public = set(engine.__all__)
    assert len(engine.__all__) == len(public), "a name is twice in engine.__all__"
    assert set(table) <= public, f"lazy but not public: {sorted(set(table) - public)}"
    assert public - set(table) <= set(vars(engine)), "a public name is neither lazy nor defined"
    assert _type_checking_imports() == table, (
        "engine/__init__.py: the TYPE_CHECKING imports and the _LAZY table differ"
    )
    for name in sorted(public):
        value = getattr(engine, name)
        assert not isinstance(value, types.ModuleType), f"engine.{name} is a module"
        if name in table:
            assert value is getattr(importlib.import_module(table[name]), name), name
    submodules = {p.stem for p in (ROOT / "engine").iterdir() if not p.stem.startswith("_")}
    assert not public & submodules, f"named like an engine submodule: {public & submodules}"
