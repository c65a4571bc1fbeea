"""Package a Linux onedir bundle (dist/refit-studio) as a .tar.zst a user can install.

    python scripts/package_linux.py dist/refit-studio --edition cpu --version 0.1.0 --out dist
    python scripts/package_linux.py ... --appdir     # also an AppDir for appimagetool

The archive ``refit-studio-<version>-linux-x86_64-<edition>.tar.zst`` holds one folder,
``refit-studio/``: the bundle as it is (its ``refit`` link kept as a link), plus
``refit-studio.desktop`` (a template), ``refit-studio.png`` (256 px), ``install.sh`` and
``uninstall.sh`` from installers/linux/. A .desktop file cannot start a program relative to
itself, so install.sh copies the folder to ~/.local/opt/refit-studio (or ``--prefix``) and writes
the menu entry with absolute paths. Members are sorted and owned by root:root, and their times
are clamped to ``SOURCE_DATE_EPOCH`` when it is set, so equal bundles give equal archives.

Compression: Debian's ``zstd`` program, run as a subprocess. The ``zstandard`` PyPI package is
not a dependency of anything in the development or the build environment, so it is not used.

An AppImage needs appimagetool and the AppImage runtime, which no package registry this project
uses provides (docs/installer.md, "AppImage"); ``--appdir`` writes the AppDir that appimagetool
takes, and ``--appimage`` runs appimagetool on it when one is on PATH.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT / "installers" / "linux"
ICON = ROOT / "resources" / "icons" / "refit-studio-256.png"
TOP = "refit-studio"
EDITIONS = ("cpu", "nvidia")
#: Files added next to the bundle: archive name -> (source, mode).
EXTRAS: dict[str, tuple[Path, int]] = {
    "refit-studio.desktop": (LINUX / "refit-studio.desktop", 0o644),
    "refit-studio.png": (ICON, 0o644),
    "install.sh": (LINUX / "install.sh", 0o755),
    "uninstall.sh": (LINUX / "uninstall.sh", 0o755),
}
#: What install.sh writes into the installed folder; a bundle holding them would look installed.
INSTALL_RECORDS = (".refit-studio-install", ".refit-studio-files")


def archive_name(version: str, edition: str) -> str:
    """``refit-studio-<version>-linux-x86_64-<edition>.tar.zst``."""
    return f"refit-studio-{version}-linux-x86_64-{edition}.tar.zst"


def package(bundle: Path, out_dir: Path, edition: str, version: str, *, level: int = 10) -> Path:
    """Write the .tar.zst of ``bundle`` (a onedir folder) into ``out_dir``; return its path."""
    bundle = Path(bundle)
    _check_edition(edition)
    _check_bundle(bundle)
    zstd = shutil.which("zstd")
    if zstd is None:
        raise SystemExit(
            "The zstd program was not found; install it (Debian/Ubuntu: apt-get install zstd)."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / archive_name(version, edition)
    partial = target.with_name(target.name + ".partial")
    command = [zstd, "-q", "-f", "-T0", f"-{min(max(level, 1), 19)}", "-o", str(partial)]
    try:
        with subprocess.Popen(command, stdin=subprocess.PIPE) as compressor:
            assert compressor.stdin is not None
            with tarfile.open(
                fileobj=compressor.stdin, mode="w|", format=tarfile.PAX_FORMAT
            ) as tar:
                _write_members(tar, bundle)
            compressor.stdin.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if compressor.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SystemExit(f"zstd failed (exit status {compressor.returncode}) writing {target}.")
    partial.replace(target)
    return target


def appdir(bundle: Path, out_dir: Path) -> Path:
    """Write ``RefitStudio.AppDir`` (AppRun, .desktop, icon, the bundle in usr/lib/refit-studio)."""
    bundle = Path(bundle)
    _check_bundle(bundle)
    target = Path(out_dir) / "RefitStudio.AppDir"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle, target / "usr" / "lib" / TOP, symlinks=True)
    shutil.copy2(LINUX / "AppRun", target / "AppRun")
    (target / "AppRun").chmod(0o755)
    # No TryExec: in an AppImage the program is not on PATH, and integration tools rewrite Exec.
    template = (LINUX / "refit-studio.desktop").read_text(encoding="utf-8").splitlines()
    entry = "".join(f"{line}\n" for line in template if not line.startswith("TryExec="))
    (target / "refit-studio.desktop").write_text(entry, encoding="utf-8")
    shutil.copy2(ICON, target / "refit-studio.png")
    (target / ".DirIcon").symlink_to("refit-studio.png")
    return target


def appimage(app_dir: Path, out_dir: Path, edition: str, version: str) -> Path:
    """Run appimagetool on ``app_dir``; fail with one sentence when it is not on PATH."""
    _check_edition(edition)
    tool = shutil.which("appimagetool")
    if tool is None:
        raise SystemExit(
            f"appimagetool is not on PATH (no package registry provides it; see "
            f"docs/installer.md); the AppDir is ready for it at {app_dir}."
        )
    target = Path(out_dir) / f"refit-studio-{version}-linux-x86_64-{edition}.AppImage"
    env = {**os.environ, "ARCH": "x86_64"}
    subprocess.run([tool, "--no-appstream", str(app_dir), str(target)], check=True, env=env)
    return target


def _check_edition(edition: str) -> None:
    if edition not in EDITIONS:
        raise SystemExit(f"The edition must be one of {', '.join(EDITIONS)}, not {edition!r}.")


def _check_bundle(bundle: Path) -> None:
    program = bundle / TOP
    if not (program.is_file() and os.access(program, os.X_OK)):
        raise SystemExit(f"{bundle} is not a onedir bundle: it has no executable {TOP}.")
    clashes = sorted(name for name in (*EXTRAS, *INSTALL_RECORDS) if os.path.lexists(bundle / name))
    if clashes:
        raise SystemExit(f"The bundle already holds {', '.join(clashes)}; rename them there.")


def _check_member(path: Path, info: tarfile.TarInfo | None) -> None:
    """One sentence when ``path`` cannot go into the archive as it is.

    install.sh and uninstall.sh keep lists of paths one a line, so a name with a control
    character (a line break) is refused; so is anything but files, folders and links, and a
    link that is absolute or leads out of the bundle's folder (extracting it would write, or
    point, outside the folder the user chose)."""
    if any(ord(char) < 32 or ord(char) == 127 for char in path.name):
        raise SystemExit(f"{str(path)!r} has a control character (a line break?) in its name.")
    if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
        raise SystemExit(f"{path} is not a file, a folder or a link; take it out of the bundle.")
    if info.issym():
        if os.path.isabs(info.linkname):
            raise SystemExit(
                f"{path} links to the absolute path {info.linkname}; make it relative."
            )
        target = posixpath.normpath(posixpath.join(posixpath.dirname(info.name), info.linkname))
        if target != TOP and not target.startswith(f"{TOP}/"):
            raise SystemExit(
                f"{path} links to {info.linkname}, outside the bundle; copy what it points to."
            )


def _walk(folder: Path) -> Iterator[Path]:
    """Every path under ``folder``, sorted, folders before their contents; links not followed."""
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from _walk(path)


def _write_members(tar: tarfile.TarFile, bundle: Path) -> None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    clamp = int(epoch) if epoch else None

    def add(path: Path, name: str, mode: int | None = None) -> None:
        info = tar.gettarinfo(str(path), arcname=name)
        _check_member(path, info)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if mode is not None:
            info.mode = mode
        if clamp is not None:
            info.mtime = min(int(info.mtime), clamp)
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)

    add(bundle, TOP)
    members = [
        (path, f"{TOP}/{path.relative_to(bundle).as_posix()}", None) for path in _walk(bundle)
    ]
    members += [(source, f"{TOP}/{name}", mode) for name, (source, mode) in EXTRAS.items()]
    for path, name, mode in sorted(members, key=lambda member: member[1]):
        add(path, name, mode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the onedir folder, e.g. dist/refit-studio")
    parser.add_argument("--edition", required=True, choices=EDITIONS)
    parser.add_argument("--version", required=True, help="e.g. 0.1.0")
    parser.add_argument("--out", type=Path, default=Path("dist"), help="folder for the outputs")
    parser.add_argument("--level", type=int, default=10, help="zstd level, 1-19 (default 10)")
    parser.add_argument("--appdir", action="store_true", help="also write RefitStudio.AppDir")
    parser.add_argument("--appimage", action="store_true", help="also run appimagetool on it")
    args = parser.parse_args(argv)
    print(package(args.bundle, args.out, args.edition, args.version, level=args.level))
    if args.appdir or args.appimage:
        made = appdir(args.bundle, args.out)
        print(made)
        if args.appimage:
            print(appimage(made, args.out, args.edition, args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
