"""Checks of scripts/bundle_manifest.py against what the code does (tests/test_bundle_manifest.py).

Two kinds: a static scan of engine/ and desktop/ for modules imported by name, and the judgement
of what a real run (recorded by tests/bundle_audit.py) read from the installed packages and
loaded from them by path. Each check returns sentences, one per omission; none means all declared.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement

MANIFEST = "scripts/bundle_manifest.py"

# -- static: modules imported by name ------------------------------------------------------------

#: Calls whose first argument names a module PyInstaller must carry.
_BY_NAME_CALLS = {
    "importlib.import_module",
    "import_module",
    "__import__",
    "importlib.util.find_spec",
    "util.find_spec",
    "find_spec",
}


#: Calls whose second argument is a table of module names imported on first use.
_LAZY_EXPORTS = {"lazy_getattr", "engine.lazy.lazy_getattr"}


@dataclass(frozen=True)
class ByNameImport:
    """One call that imports (or looks up) a module by name."""

    file: str  # relative to the repository, with "/"
    line: int
    function: str  # the enclosing function's name, "<module>" at module level
    call: str
    names: tuple[str, ...] | None  # None: the argument could not be resolved statically


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _strings(node: ast.expr | None) -> tuple[str, ...] | None:
    """The strings a literal holds: a string, or the values of a dict / items of a sequence."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.Dict):
        values = [_strings(v) for v in node.values]
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        values = [_strings(v) for v in node.elts]
    else:
        return None
    if any(v is None or len(v) != 1 for v in values):
        return None
    return tuple(v[0] for v in values)  # type: ignore[index]


def _assignments(body: Iterable[ast.stmt]) -> dict[str, ast.expr]:
    """``name = value`` and ``name: T = value`` statements directly in ``body`` (last wins)."""
    found: dict[str, ast.expr] = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name):
            found[target.id] = value
    return found


def _function_assignments(func: ast.AST) -> dict[str, ast.expr]:
    return _assignments(n for n in ast.walk(func) if isinstance(n, ast.Assign | ast.AnnAssign))


def resolve_names(
    node: ast.expr, constants: Mapping[str, ast.expr], local: Mapping[str, ast.expr]
) -> tuple[str, ...] | None:
    """The module names ``node`` can evaluate to: a string literal, a module-level string
    constant, or any value of a module-level table when ``node`` is ``TABLE[key]``,
    ``TABLE.get(key)`` or a local variable assigned from one; None when not resolvable."""
    if isinstance(node, ast.Constant):
        return _strings(node)
    if isinstance(node, ast.Name):
        if node.id in local:
            return resolve_names(local[node.id], constants, {})
        if node.id in constants:
            return _strings(constants[node.id])
        return None
    table = None
    if isinstance(node, ast.Subscript):
        table = node.value
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
    ):
        table = node.func.value
    if isinstance(table, ast.Name) and table.id in constants:
        return _strings(constants[table.id])
    return None


def scan_source(source: str, file: str) -> tuple[set[str], list[ByNameImport]]:
    """Modules a file imports by statement, and its by-name import calls."""
    tree = ast.parse(source, filename=file)
    module = file.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    package = module if file.endswith("__init__.py") else module.rpartition(".")[0]
    constants = _assignments(tree.body)
    statements: set[str] = set()
    calls: list[ByNameImport] = []

    def visit(node: ast.AST, function: str, local: Mapping[str, ast.expr]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function, local = node.name, _function_assignments(node)
        if isinstance(node, ast.Import):
            statements.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            statements.add(base)
            statements.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _dotted(node.func) in _BY_NAME_CALLS and node.args:
            names = resolve_names(node.args[0], constants, local)
            calls.append(ByNameImport(file, node.lineno, function, _dotted(node.func), names))
        elif isinstance(node, ast.Call) and _dotted(node.func) in _LAZY_EXPORTS and node.args[1:]:
            # engine.lazy.lazy_getattr(package, TABLE): every module of TABLE is imported by name
            names = resolve_names(node.args[1], constants, local)
            calls.append(ByNameImport(file, node.lineno, function, _dotted(node.func), names))
        for child in ast.iter_child_nodes(node):
            visit(child, function, local)

    visit(tree, "<module>", {})
    return statements, calls


def scan_tree(root: Path, folders: Iterable[str]) -> tuple[set[str], list[ByNameImport]]:
    """``scan_source`` over every .py file under ``folders`` of ``root``."""
    statements: set[str] = set()
    calls: list[ByNameImport] = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            found, by_name = scan_source(path.read_text(encoding="utf-8"), rel)
            statements |= found
            calls += by_name
    return statements, calls


def by_name_problems(
    statements: set[str],
    calls: Iterable[ByNameImport],
    hidden_imports: Iterable[str],
    allowed_unresolved: Mapping[tuple[str, str], str],
) -> list[str]:
    """One sentence per by-name import PyInstaller would not see."""
    declared = set(hidden_imports) | statements
    problems = []
    for call in calls:
        where = f"{call.file}:{call.line}"
        if call.names is None:
            if (call.file, call.function) not in allowed_unresolved:
                problems.append(
                    f"{where}: {call.call}() in {call.function} gets a module name that cannot "
                    "be read from the source; pass a literal or a module-level constant or "
                    "table, or add (file, function) with the reason to ALLOWED_UNRESOLVED in "
                    "tests/test_bundle_manifest.py."
                )
            continue
        for name in call.names:
            if name not in declared:
                problems.append(
                    f"{where}: {call.call}({name!r}) imports a module no import statement names; "
                    f"add {name!r} to HIDDEN_IMPORTS in {MANIFEST}."
                )
    return problems


# -- dynamic: files read and libraries loaded from the installed packages -----------------------


def normalize(dist: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", dist).lower()


def requires_closure(names: Iterable[str]) -> set[str]:
    """``names`` and everything they require, recursively, as ``copy_metadata(recursive=True)``
    follows them: requirements whose markers hold here, extras left out."""
    done: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if normalize(name) in done:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        done.add(normalize(name))
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return done


def transformers_hook_metadata() -> set[str]:
    """Distributions whose metadata PyInstaller's own hook-transformers copies (pyinstaller-hooks-
    contrib stdhooks/hook-transformers.py): every entry of
    ``transformers.dependency_versions_table.deps`` that this environment satisfies."""
    # Read, not imported: importing transformers takes seconds.
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return set()
    table = Path(next(iter(spec.submodule_search_locations))) / "dependency_versions_table.py"
    assignments = _assignments(ast.parse(table.read_text(encoding="utf-8")).body)
    deps = ast.literal_eval(assignments["deps"]) if "deps" in assignments else {}
    found = set()
    for text in deps.values():
        req = Requirement(text)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if req.specifier.contains(version, prereleases=True):
            found.add(normalize(req.name))
    return found


def excluded_distributions(excludes: Iterable[str]) -> set[str]:
    """Distributions all of whose top-level modules the bundle excludes."""
    tops: dict[str, set[str]] = {}
    for top, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            tops.setdefault(normalize(dist), set()).add(top)
    excluded = {e for e in excludes if "." not in e}
    return {dist for dist, names in tops.items() if names <= excluded}


def metadata_distribution(path: str) -> str | None:
    """The distribution a ``<name>-<version>.dist-info/...`` path belongs to, else None."""
    top = path.split("/", 1)[0]
    if not top.endswith((".dist-info", ".egg-info")):
        return None
    return normalize(top.rsplit(".", 1)[0].split("-", 1)[0])


@dataclass(frozen=True)
class Coverage:
    """What the bundle carries, from the manifest plus what PyInstaller's hooks are known to add."""

    data_packages: frozenset[str]
    metadata: frozenset[str]
    libraries_by_path: Mapping[str, tuple[str, ...]]


def file_problems(files: Iterable[str], coverage: Coverage, during: str) -> list[str]:
    """One sentence per data file read at run time that the bundle would not carry."""
    problems = []
    for path in sorted(files):
        dist = metadata_distribution(path)
        if dist is not None:
            if path.endswith("/entry_points.txt") or dist in coverage.metadata:
                # importlib.metadata.entry_points() reads every installed distribution's
                # entry_points.txt to list plugins (torch looks for device backends): in the
                # bundle it lists those bundled, which is all the app needs.
                continue
            problems.append(
                f"{path} is read during `refit {during}` but its distribution's metadata is not "
                f"collected; add {dist!r} to METADATA in {MANIFEST}."
            )
            continue
        if any(path.startswith(p.replace(".", "/") + "/") for p in coverage.data_packages):
            continue
        package = path.split("/", 1)[0]
        problems.append(
            f"{path} is read during `refit {during}` but is not collected; add {package!r} to "
            f"DATA_PACKAGES in {MANIFEST}."
        )
    return problems


def library_problems(libraries: Iterable[str], coverage: Coverage, during: str) -> list[str]:
    """One sentence per library loaded by path that the bundle would not carry."""
    problems = []
    for path in sorted(libraries):
        # torch/lib: PyInstaller's hook-torch collects it (collect_dynamic_libs("torch")).
        # nvidia/: torch preloads the CUDA wheels' libraries best effort
        # (_preload_cuda_deps(required=False)); the ones it needs are DT_NEEDED by
        # torch/lib/libtorch_cuda.so (rpath ../../nvidia/*/lib), which PyInstaller's binary
        # dependency analysis follows. The CPU edition has neither.
        if path.startswith(("torch/lib/", "nvidia/")):
            continue
        package, _, name = path.partition("/")
        stem = name.split(".")[0]
        # build.spec looks for the stems directly in the package's folder.
        if "/" not in name and stem in coverage.libraries_by_path.get(package, ()):
            continue
        problems.append(
            f"{path} is loaded by path during `refit {during}` but is not collected; add "
            f"{stem!r} to LIBRARIES_BY_PATH[{package!r}] in {MANIFEST}."
        )
    return problems


def coverage_of(
    manifest: ModuleType,
    hook_data_packages: Iterable[str],
    probed_absent: Iterable[str],
) -> Coverage:
    """What the bundle built from ``manifest`` carries (metadata read for ``probed_absent``
    distributions and for excluded ones counts as carried: 'not installed' is the right answer)."""
    metadata = (
        {normalize(d) for d in manifest.METADATA}
        | requires_closure(manifest.METADATA_RECURSIVE)
        | transformers_hook_metadata()
        | excluded_distributions(manifest.EXCLUDES)
        | {normalize(d) for d in probed_absent}
    )
    return Coverage(
        data_packages=frozenset(manifest.DATA_PACKAGES) | frozenset(hook_data_packages),
        metadata=frozenset(metadata),
        libraries_by_path=dict(manifest.LIBRARIES_BY_PATH),
    )
