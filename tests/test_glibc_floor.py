"""scripts/glibc_floor.py on a folder holding a copy of a system program."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import glibc_floor  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("readelf") is None or not Path("/bin/true").exists(), reason="needs readelf"
)


def test_finds_the_glibc_need_of_each_elf_file(tmp_path: Path, capsys) -> None:
    shutil.copy2("/bin/true", tmp_path / "program")
    (tmp_path / "notes.txt").write_text("not an ELF file")
    (tmp_path / "alias").symlink_to("program")
    assert glibc_floor.elf_files(tmp_path) == [tmp_path / "program"]
    glibc = glibc_floor.floors(tmp_path)["GLIBC"]
    assert glibc.files == (tmp_path / "program",)
    assert glibc.version >= (2, 2)
    assert glibc.name.startswith("GLIBC_2.")
    assert glibc_floor.newer_than(tmp_path, (2, 0)) == {tmp_path / "program": glibc.version}
    assert glibc_floor.main([str(tmp_path)]) == 0
    assert f"{glibc.name}" in capsys.readouterr().out
