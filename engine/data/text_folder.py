"""Reading a folder of labeled ``.txt`` files: ``root/<class>/*.txt`` or split folders."""

from __future__ import annotations

import os
from pathlib import Path

from engine.data.problems import DatasetError, Problem, ProblemKind, file_problem
from engine.data.safe_read import TEXT_FILE_LIMIT, FileReadError, read_capped
from engine.data.text_items import (
    TextItem,
    TextProblemKind,
    Where,
    aggregate,
    encoding_problem,
)
from engine.data.text_read import BinaryFileError, decode_text
from engine.data.walk import SPLIT_NAMES, DatasetWalk, is_hidden
from engine.task import Task

TEXT_EXTENSIONS = (".txt",)


def walk_text_folder(
    root: Path, task: Task | None = None
) -> tuple[list[TextItem], list[Problem], dict[str, str], bool]:
    """(texts, problems, {class: folder}, has_splits) of a folder of class folders; a cancelled
    ``task`` raises Cancelled (checked once a folder)."""
    entries = _entries(root)
    problems: list[Problem] = []
    safe = DatasetWalk(root, problems, task)
    kinds = {entry.name: safe.kind(entry) for entry in entries}  # skipped ones are told here
    splits = _split_dirs(root, entries, kinds)
    folders: dict[str, str] = {}
    items: list[TextItem] = []
    state = _State(safe, items)
    for entry in entries:
        kind = kinds[entry.name]
        split = SPLIT_NAMES.get(entry.name.lower()) if splits else None
        if kind is None:
            continue
        if kind != "dir":
            state.stray(entry.path, "is not inside a class folder")
        elif not splits:
            folders.setdefault(entry.name, entry.path)
            state.read_class(entry.path, entry.name, None)
        elif split is None or splits[split] != entry.name:
            what = (
                "is not a train, val or test folder"
                if split is None
                else f"is a second {split} folder"
            )
            state.stray(entry.path, what)
        else:
            for sub in safe.entries(entry.path):
                sub_kind = safe.kind(sub)
                if sub_kind is None:
                    continue
                if sub_kind != "dir":
                    state.stray(sub.path, "is not inside a class folder")
                    continue
                if split == "train" or sub.name not in folders:
                    folders[sub.name] = sub.path
                state.read_class(sub.path, sub.name, split)
    state.report()
    return items, problems, folders, bool(splits)


class _State:
    def __init__(self, safe: DatasetWalk, items: list[TextItem]) -> None:
        self.safe, self.items, self.problems = safe, items, safe.problems
        self.no_text: list[str] = []
        self.encodings: dict[str, list[str]] = {}

    def rel(self, path: str) -> str:
        return self.safe.rel(path)

    def stray(self, path: str, what: str) -> None:
        self.problems.append(
            Problem(
                kind=ProblemKind.STRAY_FILE,
                path=path,
                message=f"{self.rel(path)} {what}; it is ignored.",
            )
        )

    def read_class(self, folder: str, cls: str, split: str | None) -> None:
        for path in self.safe.files(folder):
            self.read_file(path, cls, split)

    def read_file(self, path: str, cls: str, split: str | None) -> None:
        rel = self.rel(path)
        ext = Path(path).suffix.lower()
        if ext not in TEXT_EXTENSIONS:
            why = f"{ext} files are not read" if ext else "it has no file extension"
            self.problems.append(
                Problem(
                    kind=ProblemKind.STRAY_FILE,
                    path=path,
                    message=f"{rel} is not a .txt file ({why}); it is ignored.",
                )
            )
            return
        try:
            data = read_capped(path, TEXT_FILE_LIMIT, what="text file")
        except FileReadError as exc:
            self.problems.append(file_problem(rel, path, exc.kind, exc.reason))
            return
        if not data:
            self.problems.append(file_problem(rel, path, ProblemKind.EMPTY_FILE, "is empty"))
            return
        try:
            text, encoding = decode_text(data)
        except BinaryFileError as exc:
            self.problems.append(
                Problem(
                    kind=TextProblemKind.NOT_TEXT,  # type: ignore[arg-type]
                    path=path,
                    message=f"{rel} is not a text file ({exc}); it will be skipped.",
                )
            )
            return
        if encoding:
            self.encodings.setdefault(encoding, []).append(rel)
        if not text.strip():
            self.no_text.append(rel)
            return
        self.items.append(TextItem(text=text.strip(), cls=cls, split=split, ref=rel, origin=path))

    def report(self) -> None:
        where = Where("file", path=None)
        for encoding, refs in self.encodings.items():
            self.problems.append(encoding_problem(TextProblemKind.ENCODING, where, refs, encoding))
        if self.no_text:
            self.problems.append(
                aggregate(
                    TextProblemKind.EMPTY_TEXT,
                    where,
                    self.no_text,
                    ("has no text (only white space)", "have no text (only white space)"),
                    ("it is skipped.", "they are skipped."),
                )
            )


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not is_hidden(e.name)), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(
            f"The folder {folder} cannot be read ({exc.strerror or exc}); check its permissions."
        ) from exc


def _split_dirs(
    root: Path, entries: list[os.DirEntry], kinds: dict[str, str | None]
) -> dict[str, str]:
    """{"train": folder name, ...} when the root uses split folders (a train folder holding
    sub-folders), else {}."""
    found: dict[str, str] = {}
    for entry in entries:
        split = SPLIT_NAMES.get(entry.name.lower())
        if split and kinds[entry.name] == "dir" and split not in found:
            found[split] = entry.name
    if "train" not in found:
        return {}
    has_sub = any(e.is_dir() for e in _entries(root / found["train"]))
    return found if has_sub else {}
