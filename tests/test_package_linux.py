"""scripts/package_linux.py and installers/linux/install.sh on a fake bundle, inside tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import package_linux  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("zstd") is None or sys.platform != "linux", reason="needs Linux and zstd"
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A onedir bundle's shape: the program, `refit` linking to it, an _internal folder."""
    folder = tmp_path / "dist" / "refit-studio"
    (folder / "_internal" / "torch" / "lib").mkdir(parents=True)
    program = folder / "refit-studio"
    program.write_text('#!/bin/sh\necho started as $(basename "$0")\n')
    program.chmod(0o755)
    (folder / "refit").symlink_to("refit-studio")
    (folder / "_internal" / "torch" / "lib" / "libtorch.so").write_bytes(b"\x7fELF fake")
    (folder / "_internal" / "refit_edition.json").write_text('{"edition": "cpu"}')
    return folder


def _unpack(archive: Path, into: Path) -> Path:
    into.mkdir()
    raw = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    tar_path = into / "archive.tar"
    tar_path.write_bytes(raw)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="tar")
    tar_path.unlink()
    return into / "refit-studio"


def _install(unpacked: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    return subprocess.run(
        ["sh", str(unpacked / "install.sh"), *args], env=env, capture_output=True, text=True
    )


def test_archive_members_and_link(bundle: Path, tmp_path: Path) -> None:
    archive = package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0")
    assert archive.name == "refit-studio-0.1.0-linux-x86_64-cpu.tar.zst"
    raw = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    (tmp_path / "a.tar").write_bytes(raw)
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert set(members) == {
        "refit-studio",
        "refit-studio/refit-studio",
        "refit-studio/refit",
        "refit-studio/_internal",
        "refit-studio/_internal/refit_edition.json",
        "refit-studio/_internal/torch",
        "refit-studio/_internal/torch/lib",
        "refit-studio/_internal/torch/lib/libtorch.so",
        "refit-studio/refit-studio.desktop",
        "refit-studio/refit-studio.png",
        "refit-studio/install.sh",
        "refit-studio/uninstall.sh",
    }
    assert members["refit-studio/refit"].issym()
    assert members["refit-studio/refit"].linkname == "refit-studio"
    assert members["refit-studio/install.sh"].mode == 0o755
    assert members["refit-studio/refit-studio"].mode & 0o111
    assert {member.uid for member in members.values()} == {0}


def test_archive_is_reproducible(bundle: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = package_linux.package(bundle, tmp_path / "one", "nvidia", "0.1.0").read_bytes()
    os.utime(bundle / "refit-studio")  # a newer time is clamped to SOURCE_DATE_EPOCH
    second = package_linux.package(bundle, tmp_path / "two", "nvidia", "0.1.0").read_bytes()
    assert first == second


def test_not_a_bundle_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="has no executable refit-studio"):
        package_linux.package(tmp_path, tmp_path / "out", "cpu", "0.1.0")
    with pytest.raises(SystemExit, match="must be one of cpu, nvidia"):
        package_linux.package(tmp_path, tmp_path / "out", "rocm", "0.1.0")


@pytest.mark.parametrize("prefix_name", ["opt/refit-studio", "my apps/refit studio"])
def test_install_and_uninstall(bundle: Path, tmp_path: Path, prefix_name: str) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / prefix_name
    done = _install(unpacked, home, "--prefix", str(prefix))
    assert done.returncode == 0, done.stderr

    program = prefix / "refit-studio"
    assert os.access(program, os.X_OK)
    assert (prefix / "refit").is_symlink()
    assert os.readlink(prefix / "refit") == "refit-studio"
    desktop = home / ".local/share/applications/refit-studio.desktop"
    icon = home / ".local/share/icons/hicolor/256x256/apps/refit-studio.png"
    assert icon.read_bytes() == package_linux.ICON.read_bytes()
    entry = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
    quoted = '"' + str(program) + '"' if " " in str(program) else str(program)
    assert entry["Exec"] == quoted
    assert entry["TryExec"] == str(program)
    assert entry["Icon"] == str(icon)
    for name in ("refit", "refit-studio"):
        link = home / ".local/bin" / name
        assert link.resolve() == program.resolve()
        ran = subprocess.run([str(link)], capture_output=True, text=True, check=True)
        assert ran.stdout.strip() == f"started as {name}"

    gone = subprocess.run(
        ["sh", str(prefix / "uninstall.sh")],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert gone.returncode == 0, gone.stderr
    assert not desktop.exists()
    assert not icon.exists()
    assert not prefix.exists()
    assert not (home / ".local/bin/refit").is_symlink()
    assert not (home / ".local/bin/refit-studio").is_symlink()


def test_install_refuses_a_foreign_folder(bundle: Path, tmp_path: Path) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    done = _install(unpacked, home, "--prefix", str(foreign))
    assert done.returncode == 1
    assert "is not a Refit Studio install" in done.stderr
    assert (foreign / "keep.txt").read_text() == "mine"


def test_reinstall_replaces_the_previous_install(bundle: Path, tmp_path: Path) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "opt" / "refit-studio"
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    (prefix / "stale.txt").write_text("from the old version")
    again = _install(unpacked, home, "--prefix", str(prefix))
    assert again.returncode == 0, again.stderr
    assert not (prefix / "stale.txt").exists()
    assert (home / ".local/share/applications/refit-studio.desktop").exists()


def test_appdir_layout(bundle: Path, tmp_path: Path) -> None:
    made = package_linux.appdir(bundle, tmp_path / "out")
    assert os.access(made / "AppRun", os.X_OK)
    assert (made / "usr/lib/refit-studio/refit").is_symlink()
    entry = (made / "refit-studio.desktop").read_text().splitlines()
    assert "Exec=refit-studio" in entry
    assert not [line for line in entry if line.startswith("TryExec=")]
    assert os.readlink(made / ".DirIcon") == "refit-studio.png"
    for argv0, expected in (("refit", "refit"), ("/x/Refit.AppImage", "refit-studio")):
        env = {"APPDIR": str(made), "ARGV0": argv0, "PATH": os.environ["PATH"]}
        ran = subprocess.run([str(made / "AppRun")], env=env, capture_output=True, text=True)
        assert ran.stdout.strip() == f"started as {expected}"
