"""The oldest glibc (and libstdc++) a Linux bundle runs on: the highest versions its ELF files need.

    python scripts/glibc_floor.py dist/refit-studio
    python scripts/glibc_floor.py dist/refit-studio --above 2.28   # which files need newer

Every ELF file under the folder (links not followed) is read with ``readelf -V`` (binutils); the
version needs (``.gnu.version_r``) name symbol versions such as ``GLIBC_2.28``,
``GLIBCXX_3.4.29`` and ``CXXABI_1.3.13``. The highest of each family is what the system must
provide: the glibc floor of the bundle. The dynamic loader refuses to start a program, or to load
a library, whose needs the system's libc.so.6 / libstdc++.so.6 lacks.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FAMILIES = ("GLIBC", "GLIBCXX", "CXXABI")
_NEED = re.compile(r"Name:\s+(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)\b")


@dataclass(frozen=True)
class Floor:
    """The highest version of one family any file needs, and the files that need exactly it."""

    family: str
    version: tuple[int, ...]
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        """``GLIBC_2.28``."""
        return f"{self.family}_{'.'.join(map(str, self.version))}"


def is_elf(path: Path) -> bool:
    """True for a regular file (not a link) that starts with the ELF magic number."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"\x7fELF"
    except OSError:
        return False


def needs(path: Path) -> dict[str, set[tuple[int, ...]]]:
    """The symbol versions ``path`` requires, by family: {"GLIBC": {(2, 17), (2, 28)}, ...}."""
    readelf = shutil.which("readelf")
    if readelf is None:
        raise SystemExit("readelf was not found; install binutils (apt-get install binutils).")
    done = subprocess.run(
        [readelf, "-V", "--wide", str(path)], capture_output=True, text=True, check=False
    )
    found: dict[str, set[tuple[int, ...]]] = {}
    for family, version in _NEED.findall(done.stdout):
        found.setdefault(family, set()).add(tuple(int(part) for part in version.split(".")))
    return found


def elf_files(folder: Path) -> list[Path]:
    """Every ELF file under ``folder``, sorted."""
    return sorted(path for path in Path(folder).rglob("*") if is_elf(path))


def floors(folder: Path) -> dict[str, Floor]:
    """The highest GLIBC, GLIBCXX and CXXABI versions any ELF file under ``folder`` needs."""
    by_file = {path: needs(path) for path in elf_files(folder)}
    result: dict[str, Floor] = {}
    for family in FAMILIES:
        highest = max((max(v[family]) for v in by_file.values() if v.get(family)), default=None)
        if highest is None:
            continue
        files = tuple(path for path, v in by_file.items() if highest in v.get(family, ()))
        result[family] = Floor(family, highest, files)
    return result


def newer_than(folder: Path, glibc: tuple[int, ...]) -> dict[Path, tuple[int, ...]]:
    """Files that need a glibc newer than ``glibc``, with the newest version each needs."""
    result = {}
    for path in elf_files(folder):
        wanted = needs(path).get("GLIBC")
        if wanted and max(wanted) > glibc:
            result[path] = max(wanted)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a bundle folder, e.g. dist/refit-studio")
    parser.add_argument(
        "--above", help="list the files that need a glibc newer than this, e.g. 2.28"
    )
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if not folder.is_dir():
        raise SystemExit(f"{args.folder} is not a folder.")
    count = len(elf_files(folder))
    print(f"{count} ELF files under {folder}")
    for floor in floors(folder).values():
        shown = ", ".join(str(path.relative_to(folder)) for path in floor.files[:5])
        more = f" and {len(floor.files) - 5} more" if len(floor.files) > 5 else ""
        print(f"{floor.name:<16} needed by {shown}{more}")
    if args.above:
        limit = tuple(int(part) for part in args.above.split("."))
        for path, version in newer_than(folder, limit).items():
            print(f"GLIBC_{'.'.join(map(str, version))}  {path.relative_to(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
