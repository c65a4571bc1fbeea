"""Where an export may write, and how its files appear there all at once or not at all.

An export goes into a new or empty folder, into a folder an earlier export wrote (then only
the files that export listed are replaced; anything else the user put there stays), or, when
the user allowed it (``overwrite``), into any other folder, replacing only the names the export
writes. The files are written into a staging folder first and moved into place at the end, so
a failed or cancelled export leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.export.manifest import (
    BACKBONE_DIR,
    HF_DIR,
    MANIFEST,
    MODEL_CARD,
    ONNX_FILE,
    SAFETENSORS_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    ExportFormat,
)
from engine.files import make_temp_dir
from engine.safe_read import kind_of

STAGING = ".refit-export-"  # prefix of the staging folder; a leftover of a killed export
_STAGING_NAME = re.compile(re.escape(STAGING) + r"[0-9a-f]{8}")  # what make_temp_dir makes
_STAGING_MARK = ".refit-staging"  # written first into a staging folder: it proves it is ours
_REPLACED = ".replaced"  # inside the staging folder: what the export replaced, until it is done
FORMAT_FILES = {
    ExportFormat.SAFETENSORS: SAFETENSORS_FILE,
    ExportFormat.TORCHSCRIPT: TORCHSCRIPT_FILE,
    ExportFormat.ONNX: ONNX_FILE,
    ExportFormat.HF: HF_DIR,
}


#: Every name an export ever writes directly in its folder.
EXPORT_NAMES = frozenset({MANIFEST, MODEL_CARD, BACKBONE_DIR, *FORMAT_FILES.values()})


class ExportConflict(ExportError):
    """The folder holds files that no earlier export wrote; exporting needs the user's yes."""

    def __init__(self, folder: Path, replaced: Iterable[str]) -> None:
        self.folder = folder
        self.replaced = tuple(sorted(replaced))
        if self.replaced:
            what = (
                f"already holds {_names(self.replaced)}, which Refit Studio did not write; "
                "nothing was exported. Choose an empty or new folder, or allow replacing "
                f"{'it' if len(self.replaced) == 1 else 'them'} (refit export --overwrite)."
            )
        else:
            what = (
                "holds other files and no earlier export; nothing was exported. Choose an empty "
                "or new folder, or export into it anyway (refit export --overwrite; the other "
                "files are kept)."
            )
        super().__init__(f"{folder} {what}")


@dataclass(frozen=True)
class ExportTarget:
    """The folder an export goes to, what it writes there and what it replaces."""

    folder: Path
    writes: frozenset[str]  # names directly in ``folder``
    replaces: tuple[str, ...]  # existing names in ``folder`` that the export removes or replaces


def export_names(formats: Iterable[ExportFormat], *, hf_backbone: bool) -> frozenset[str]:
    """The names an export of ``formats`` writes directly in its folder."""
    names = {MANIFEST, MODEL_CARD, *(FORMAT_FILES[ExportFormat(f)] for f in formats)}
    if hf_backbone:
        names.add(BACKBONE_DIR)
    return frozenset(names)


def earlier_export(folder: Path) -> frozenset[str]:
    """The names an earlier export into ``folder`` wrote, as its refit_model.json lists them;
    empty when the folder holds no readable refit_model.json."""
    from engine.export.manifest import MANIFEST_BYTES
    from engine.files import UnreadableFileError, read_json_object

    try:  # a pipe or a link to /dev/zero named refit_model.json is not waited on or read
        data = read_json_object(folder / MANIFEST, max_bytes=MANIFEST_BYTES)
    except (OSError, UnreadableFileError):
        return frozenset()
    if not isinstance(data, dict) or "run_id" not in data or "classes" not in data:
        return frozenset()
    files = data.get("files")
    if isinstance(files, list):
        # Only names an export can write: a refit_model.json copied or forged into a folder of
        # the user's cannot claim their other files (or reach outside) to have them replaced.
        names = {f for f in files if isinstance(f, str) and f in EXPORT_NAMES}
        return frozenset(names | {MANIFEST})
    formats = [f for f in data.get("formats") or [] if f in FORMAT_FILES]
    return export_names(formats, hf_backbone=bool(data.get("backbone_folder")))


def plan_target(
    out: Path, writes: frozenset[str], *, protected: Iterable[Path], overwrite: bool = False
) -> ExportTarget:
    """Decide what an export into ``out`` replaces; raises ExportConflict when the folder holds
    files no earlier export wrote (unless ``overwrite``) and ExportError when a name it writes
    would replace a ``protected`` folder (the dataset, the run)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is {kind_of(out)}, not a folder; choose a folder to export into.")
    existing = _entries(out)
    earlier = earlier_export(out) & existing
    replaces = earlier | (writes & existing)
    for name in sorted(replaces | writes):
        for kept in protected:
            if kept.is_relative_to(out / name):
                raise ExportError(
                    f"Exporting into {out} would replace {out / name}, which holds {kept}; "
                    "choose another export folder."
                )
    foreign = existing - earlier
    if foreign and not overwrite and (not earlier or foreign & writes):
        raise ExportConflict(out, foreign & writes)
    return ExportTarget(out, writes, tuple(sorted(replaces)))


def open_staging(target: ExportTarget) -> Path:
    """A new, empty folder on the target's file system to write the export into: inside the
    target when it exists (its parent may be read-only, e.g. a drive's top folder), else
    beside it. Leftovers of a killed export are removed first."""
    folder = target.folder
    if folder.is_dir():
        for leftover in folder.iterdir():
            _remove_leftover(leftover)
        staging = make_temp_dir(folder, STAGING)
        (staging / _STAGING_MARK).touch()
        return staging
    folder.parent.mkdir(parents=True, exist_ok=True)
    return make_temp_dir(folder.parent, f".{folder.name}{STAGING}")


def commit(staging: Path, target: ExportTarget) -> None:
    """Move the staged files into the target, replacing ``target.replaces``; on an error the
    target is put back as it was. The staging folder is removed either way."""
    folder = target.folder
    try:
        _umask_modes(staging)
        if not folder.exists():
            staging.rename(folder)
            return
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, target: ExportTarget) -> None:
    folder = target.folder
    new = [p for p in staging.iterdir() if not p.name.startswith(".")]
    aside = staging / _REPLACED
    aside.mkdir()
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in target.replaces:
            (folder / name).rename(aside / name)
            moved.append(name)
        for path in new:
            path.rename(folder / path.name)
            placed.append(path.name)
    except OSError:
        for name in placed:
            _remove(folder / name)
        for name in moved:
            (aside / name).rename(folder / name)
        raise


def _umask_modes(staging: Path) -> None:
    """Give every staged file the mode the umask gives a new file: some libraries (safetensors,
    so save_pretrained too) always make theirs 0o600."""
    probe = staging / ".mode-probe"
    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    for path in staging.rglob("*"):
        if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _is_staging(path: Path) -> bool:
    """Whether ``path`` is a staging folder an export made: the exact name make_temp_dir gives
    it, a real folder, and the mark written into it first. A user's ".refit-export-notes" is
    none of these."""
    return (
        _STAGING_NAME.fullmatch(path.name) is not None
        and path.is_dir()
        and not path.is_symlink()
        and (path / _STAGING_MARK).is_file()
        and not (path / _STAGING_MARK).is_symlink()
    )


def _remove_leftover(path: Path) -> None:
    """Remove a staging folder a killed export left; anything else is the user's and stays."""
    if _is_staging(path):
        shutil.rmtree(path, ignore_errors=True)
    elif _STAGING_NAME.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
        # Killed between making the folder and marking it: only an empty one is removed.
        with contextlib.suppress(OSError):  # not empty: not provably ours, so it stays
            path.rmdir()


def _entries(folder: Path) -> frozenset[str]:
    if not folder.is_dir():
        return frozenset()
    return frozenset(p.name for p in folder.iterdir() if not _is_staging(p))


def _names(names: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def staged_path(path: Any, staging: Path, folder: Path) -> Path:
    """Where a file written into ``staging`` is once the export is committed to ``folder``."""
    path = Path(path)
    try:
        return folder / path.relative_to(staging)
    except ValueError:
        return path
