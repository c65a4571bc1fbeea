"""Walking a dataset folder without leaving it, looping, or touching special files.

Rules, the same for image and text folders:

- A symbolic link is followed only when what it points to lies inside the dataset folder
  (both resolved). A link to ``/``, to a sibling folder or to ``/dev/zero`` is not followed.
- A link to a folder that holds the link (the dataset folder itself, a class folder, a
  parent) is not followed: it would read everything again. Within one class folder every real
  folder is read once, however many links lead to it.
- A link to another class folder, or into one, is not followed: its images would count under
  two classes (or two splits). Links within the link's own class folder are fine.
- Named pipes, sockets and devices are never opened.
- Every entry left out gets one sentence naming it; hidden entries (dot files, OS litter) are
  left out silently, as everywhere else.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from engine.data.problems import Problem, ProblemKind
from engine.data.safe_read import special_file_name
from engine.task import Task

# Folder names that mean a split (any case), image and text folders alike.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}

_IGNORED_NAMES = frozenset(
    {
        "__macosx",
        "thumbs.db",
        "desktop.ini",
        "$recycle.bin",
        "system volume information",
        "__pycache__",
        "icon\r",
    }
)


def is_hidden(name: str) -> bool:
    """Names that are never classes or images: dot files, OS litter."""
    return name.startswith(".") or name.lower() in _IGNORED_NAMES


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _innermost(path: str, folders: list[str]) -> str | None:
    holding = [f for f in folders if _inside(path, f)]
    return max(holding, key=len) if holding else None


def _real_subfolders(folder: str) -> list[str]:
    """Resolved paths of the visible sub-folders of ``folder`` that are not links."""
    try:
        with os.scandir(folder) as it:
            return [
                os.path.join(folder, e.name)
                for e in it
                if not is_hidden(e.name) and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return []


class DatasetWalk:
    """The entries of one dataset folder, vetted; skipped ones are added to ``problems``."""

    def __init__(self, root: Path, problems: list[Problem], task: Task | None = None) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.problems = problems
        self.task = task
        self._classes: list[str] | None = None

    def rel(self, path: str) -> str:
        """``path`` relative to the dataset folder, with forward slashes."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return path

    def entries(self, folder: str | Path) -> list[os.DirEntry]:
        """The visible entries of ``folder``, sorted by name; [] (with a sentence) if unreadable."""
        try:
            with os.scandir(folder) as it:
                return sorted((e for e in it if not is_hidden(e.name)), key=lambda e: e.name)
        except OSError as exc:
            self.problems.append(
                Problem(
                    kind=ProblemKind.UNREADABLE,
                    path=str(folder),
                    message=f"The folder {self.rel(str(folder))} cannot be read "
                    f"({exc.strerror or exc}); it is skipped.",
                )
            )
            return []

    def kind(self, entry: os.DirEntry, holder: str | None = None) -> str | None:
        """ "dir", "file", or None when ``entry`` is skipped (its sentence is added).

        ``holder``: the real path of the folder being walked, for telling links that lead back
        up (default: the real path of the entry's own folder).
        """
        try:
            if not entry.is_symlink():
                # The directory listing already knows regular files and folders (no syscall).
                if entry.is_file(follow_symlinks=False):
                    return "file"
                if entry.is_dir(follow_symlinks=False):
                    return "dir"
                what = special_file_name(entry.stat(follow_symlinks=False).st_mode)
                return self._skip(
                    entry.path, ProblemKind.NOT_REGULAR, self._special(what or "not a file")
                )
            return self._link_kind(entry, holder)
        except OSError as exc:
            reason = f"cannot be read ({exc.strerror or exc}); it is skipped."
            return self._skip(entry.path, ProblemKind.UNREADABLE, reason)

    def _link_kind(self, entry: os.DirEntry, holder: str | None) -> str | None:
        target = os.path.realpath(entry.path)
        try:
            mode = os.stat(entry.path).st_mode
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                reason = (
                    "is a link in a loop of links that never reaches a file; it is skipped. "
                    "Remove the link."
                )
                return self._skip(entry.path, ProblemKind.LINK_LOOP, reason)
            reason = (
                f"cannot be read (the file is gone or a broken link to {target}); it will be "
                "skipped. Remove the link or restore what it points to."
            )
            return self._skip(entry.path, ProblemKind.UNREADABLE, reason)
        what = special_file_name(mode)
        other = self._other_class(entry.path, target) if _inside(target, self.real_root) else None
        if other is not None:
            into = "to" if other == target else "into"
            reason = (
                f"links {into} the class folder '{self.rel_real(other)}'; it is not followed, "
                "so its images are not counted twice."
            )
            return self._skip(entry.path, ProblemKind.LINK_LOOP, reason)
        if not _inside(target, self.real_root):
            special = f" ({what})" if what not in (None, "a folder") else ""
            advice = (
                "Remove the link."
                if special
                else "Copy what it points to into the dataset folder if it belongs there."
            )
            reason = (
                f"is a link to {target}{special}, outside the dataset folder; it is not "
                f"followed. {advice}"
            )
            return self._skip(entry.path, ProblemKind.LINK_OUTSIDE, reason)
        if what == "a folder":
            here = holder or os.path.realpath(os.path.dirname(entry.path))
            if _inside(here, target):
                name = "the dataset folder" if target == self.real_root else self.rel_real(target)
                reason = (
                    f"is a link to {name}, which holds the link; it is not followed, so nothing "
                    "is read twice."
                )
                return self._skip(entry.path, ProblemKind.LINK_LOOP, reason)
            return "dir"
        if what is not None:
            return self._skip(entry.path, ProblemKind.NOT_REGULAR, self._special(what))
        return "file"

    def _other_class(self, link: str, target: str) -> str | None:
        """The class folder (resolved) that ``target`` is or lies in, when it is not the class
        folder holding ``link``; else None."""
        hit = _innermost(target, self._class_folders())
        own = _innermost(os.path.realpath(os.path.dirname(link)), self._class_folders())
        return hit if hit is not None and hit != own else None

    def _class_folders(self) -> list[str]:
        """Resolved paths of the real folders that can be class folders: those in the dataset
        folder, and those in its train/val/test folders (and these split folders too)."""
        if self._classes is None:
            top = _real_subfolders(self.real_root)
            self._classes = top + [
                sub
                for folder in top
                if os.path.basename(folder).lower() in SPLIT_NAMES
                for sub in _real_subfolders(folder)
            ]
        return self._classes

    def rel_real(self, real: str) -> str:
        """A resolved path inside the dataset, relative to the resolved dataset folder."""
        return Path(real).relative_to(self.real_root).as_posix()

    def files(self, folder: str) -> Iterator[str]:
        """Every usable file under ``folder`` (a class folder), depth-first in name order.

        Raises Cancelled when the task is cancelled (checked once a folder).
        """
        seen: set[str] = set()
        stack = [folder]
        while stack:
            if self.task is not None:
                self.task.check_cancelled()
            current = stack.pop()
            real = os.path.realpath(current)
            if real in seen:
                reason = (
                    f"leads to {self.rel_real(real) or 'a folder'}, which was already read; it "
                    "is skipped, so nothing is read twice."
                )
                self._skip(current, ProblemKind.LINK_LOOP, reason)
                continue
            seen.add(real)
            subfolders: list[tuple[bool, str]] = []
            for entry in self.entries(current):
                kind = self.kind(entry, real)
                if kind == "dir":
                    subfolders.append((entry.is_symlink(), entry.path))
                elif kind == "file":
                    yield entry.path
            # Real folders before links to them: the link is the one told "already read".
            stack.extend(path for _, path in sorted(subfolders, reverse=True))

    def _skip(self, path: str, kind: ProblemKind, reason: str) -> str | None:
        """Tell why ``path`` is skipped; None, the kind of a skipped entry."""
        self.problems.append(Problem(kind=kind, path=path, message=f"{self.rel(path)} {reason}"))
        return None

    @staticmethod
    def _special(what: str) -> str:
        return (
            f"is {what}, not a regular file; it is skipped without being opened. Remove it "
            "from the dataset folder."
        )
