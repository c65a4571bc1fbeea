"""Run one ``refit`` command and record which files it reads and which libraries it loads from
the installed packages: ``python tests/bundle_audit.py OUT.json <refit arguments>``.

An audit hook (``sys.addaudithook``) sees every ``open`` and every ``ctypes.dlopen`` (which
``torch.ops.load_library`` goes through). Kept are data files (not Python sources, bytecode or
extension modules, which PyInstaller finds by following imports) and libraries inside the
site-packages folders, as paths relative to them; ``tests/test_bundle_manifest.py`` checks them
against scripts/bundle_manifest.py.
"""

from __future__ import annotations

import json
import os
import re
import site
import sys
import sysconfig

_CODE = re.compile(r"\.(py|pyc|pyi|pyd|dylib|so(\.\d+)*)$|\.cpython-[^/]*\.so$")


def package_roots() -> list[str]:
    """The folders installed distributions live in (site-packages / dist-packages), real paths."""
    roots = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    roots.update(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        roots.add(site.getusersitepackages())
    return sorted({os.path.realpath(r) for r in roots if r and os.path.isdir(r)}, key=len)[::-1]


def relative_to_roots(path: object, roots: list[str]) -> str | None:
    """``path`` relative to the package folder holding it (with ``/``), or None."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        return None
    real = os.path.realpath(path)
    for root in roots:
        if real.startswith(root + os.sep):
            return real[len(root) + 1 :].replace(os.sep, "/")
    return None


def main(argv: list[str]) -> int:
    out, cli_args = argv[0], argv[1:]
    roots = package_roots()
    data_files: set[str] = set()
    libraries: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            rel = relative_to_roots(args[0], roots)
            if rel is not None and not _CODE.search(rel):
                data_files.add(rel)
        elif event == "ctypes.dlopen":
            rel = relative_to_roots(args[0], roots)
            if rel is not None:
                libraries.add(rel)

    sys.addaudithook(hook)
    from engine.cli import main as refit_main

    try:
        status = refit_main(cli_args)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    record = {"status": status, "data_files": sorted(data_files), "libraries": sorted(libraries)}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
