"""Where the code an ``auto_map`` names lives, and whether it stays inside the model folder.

transformers imports ``"code/modeling_x.Model"`` from ``os.path.join(folder, "code/modeling_x.py")``
and copies the files that module imports relatively (``from .helper import x``, found by a
line-based regex, docstrings included). An absolute path, "..", or a sub-folder that is a link
would reach code outside the folder, which no hash of the folder covers.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

# The patterns transformers.dynamic_module_utils.get_relative_imports uses.
_RELATIVE_IMPORTS = (
    re.compile(r"^\s*import\s+\.(\S+)\s*$", re.MULTILINE),
    re.compile(r"^\s*from\s+\.(\S+)\s+import", re.MULTILINE),
)
_MAX_SOURCE = 16 * 1024 * 1024  # a module larger than this is not scanned for imports
_MAX_FILES = 1000


def auto_map_references(config: Any) -> list[str]:
    """Every class reference ("module.Class", "repo--module.Class") in a config's auto_map."""
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    collect(auto_map)
    return found


def code_reference_problem(folder: Path, ref: str) -> str | None:
    """How the reference ``ref`` or a file its module imports reaches outside ``folder``
    ("from another repository", "by an absolute path", ...), or None when all stay inside."""
    return _reach(Path(folder), ref)[1]


def reached_code_files(folder: Path, refs: list[str]) -> list[Path]:
    """The module files the references name and every file they import relatively, as
    transformers finds them, for the references that stay inside ``folder``."""
    found: set[Path] = set()
    for ref in refs:
        files, problem = _reach(Path(folder), ref)
        if problem is None:
            found.update(files)
    return sorted(found)


def _reach(folder: Path, ref: str) -> tuple[list[Path], str | None]:
    """The files ``ref`` reaches inside ``folder``, and how it leaves the folder (or None)."""
    if "--" in ref:
        return [], "from another repository"
    top = (ref.rpartition(".")[0] or ref) + ".py"
    todo, seen, found = [top], set[str](), list[Path]()
    while todo and len(seen) < _MAX_FILES:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        problem = _path_problem(folder, rel)
        if problem is not None:
            return found, problem
        path = folder / rel
        if not path.is_file():
            continue
        found.append(path)
        # transformers looks for each import beside the first module; Python beside the
        # importing one: cover both.
        parents = {PurePosixPath(top).parent, PurePosixPath(rel).parent}
        todo += [str(p / f"{name}.py") for name in _relative_imports(path) for p in parents]
    return found, None


def _path_problem(folder: Path, rel: str) -> str | None:
    if "\\" in rel or PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).anchor:
        return "by an absolute path"
    parts = PurePosixPath(rel).parts
    if ".." in parts:
        return "outside the model folder (through '..')"
    here = folder
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            return f"through the linked folder '{part}'"
    # The module file itself may be a link (the Hugging Face cache links every file to its
    # blob): the hash reads what it points to, so a change to that is still seen.
    return None


def _relative_imports(path: Path) -> list[str]:
    from engine.safe_read import read_capped

    try:  # never blocks on a file swapped for a pipe after the is_file check
        text = read_capped(path, _MAX_SOURCE, what="module").decode("utf-8", errors="replace")
    except OSError:
        return []
    return sorted({name for pattern in _RELATIVE_IMPORTS for name in pattern.findall(text)})
