"""Reading a manifest CSV of images: ``file,label[,group][,split]``, one image per row.

A manifest is a general intake for images that do not sit in one folder per class: the paths are
relative to the CSV's folder, and ``group`` (a patient, a study) and ``split`` (train, val, test)
are optional. Any other column (sex, age, site: at most :data:`MAX_ATTRIBUTES`) is kept per row
as an *attribute* the evaluation can break its metrics down by (:mod:`engine.evaluation.subgroups`);
its cells are cut to :data:`MAX_ATTRIBUTE` characters, and a cell with a control character is left
out (one sentence). It is chosen by pointing ``data.path`` at the CSV: a .csv whose header names a
``file`` and a ``label`` column (and no ``text`` column) is a manifest of images, any other .csv
a table of texts (:func:`is_image_manifest`).

Every file here may be hostile: the CSV is read up to a size cap and a row cap, and a row whose
path leaves the CSV's folder (``../``, an absolute path elsewhere, a link pointing out) is
refused. Each bad row is one sentence with its row number; the rows that are fine are kept.
This module only reads the CSV; :mod:`engine.data.manifest_scan` checks the images.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.data.images import IMAGE_EXTENSIONS
from engine.data.problems import DatasetError, Problem, ProblemKind
from engine.data.safe_read import MIB, FileReadError, read_capped, read_head
from engine.task import Task

MANIFEST_LIMIT = 64 * MIB  # a path, a label and a key per row: millions of rows fit
MAX_ROWS = 1_000_000
MAX_LABEL = 200  # characters of a class name
MAX_ROW_PROBLEMS = 100  # told one by one; the rest are counted in one more sentence
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_REQUIRED = ("file", "label")
_KNOWN = ("file", "label", "group", "split")
MAX_ATTRIBUTES = 32  # extra columns kept for subgroups; the rest are ignored (one sentence)
MAX_ATTRIBUTE = 64  # characters of an attribute cell (a sex, an age, a site name)
_SNIFF = 64 * 1024


@dataclass(frozen=True)
class ManifestRow:
    """One usable row: the image's absolute path, its path as written, label, raw group key (or
    None) and split (or None)."""

    number: int  # 1 is the header, so the first image is row 2, as a spreadsheet shows it
    path: str
    rel: str
    label: str
    group: str | None
    split: str | None
    #: (column, value) of the extra columns with a usable value, in the header's order
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass
class Manifest:
    """The usable rows of a manifest and one problem per row that is not."""

    csv_path: str
    folder: str
    rows: list[ManifestRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    has_group: bool = False
    has_split: bool = False
    #: the extra columns kept as attributes (lower-case, header order, at most MAX_ATTRIBUTES)
    attribute_columns: tuple[str, ...] = ()


_DELIMITERS = (",", ";", "\t")  # spreadsheets in many European locales save CSV with ";"
_QUOTED = 120  # characters of a cell quoted in a sentence


def _header_columns(line: str, delimiter: str = ",") -> list[str]:
    return [c.strip().lower() for c in next(csv.reader([line], delimiter=delimiter), [])]


def _delimiter(line: str) -> str:
    """The delimiter the header row ``line`` is written with: the first of comma, semicolon and
    tab that splits it into columns naming ``file`` and ``label`` (a comma when none does)."""
    for delimiter in _DELIMITERS:
        columns = _header_columns(line, delimiter)
        if all(c in columns for c in _REQUIRED):
            return delimiter
    return ","


def _quoted(cell: str) -> str:
    """A cell as a sentence quotes it: cut to 120 characters (the terminal makes it safe)."""
    return cell if len(cell) <= _QUOTED else cell[:_QUOTED] + "…"


def is_image_manifest(path: str | Path) -> bool:
    """Whether the .csv at ``path`` is a manifest of images (its header names ``file`` and
    ``label`` and no ``text``). Reads the first 64 KiB only; False for anything unreadable."""
    if Path(path).suffix.lower() != ".csv":
        return False
    try:
        head = read_head(path, _SNIFF).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    line = head.splitlines()[0] if head else ""
    columns = _header_columns(line, _delimiter(line))
    return all(c in columns for c in _REQUIRED) and "text" not in columns


def read_manifest(csv_path: str | Path, task: Task | None = None) -> Manifest:
    """The rows of the manifest at ``csv_path``; DatasetError (one sentence) when the file as a
    whole cannot be used: unreadable, too large, not UTF-8, not CSV, or missing a column.
    ``task``: checked for cancel every 10,000 rows (a million rows take seconds)."""
    path = Path(os.path.abspath(Path(csv_path).expanduser()))
    name = path.name
    try:
        data = read_capped(path, MANIFEST_LIMIT, what="manifest")
    except FileReadError as exc:
        raise DatasetError(f"The manifest {path} {exc.reason}; {_FIX}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(
            f"The manifest {name} is not UTF-8 text; save it as CSV (UTF-8) and choose it again."
        ) from None
    first_line = text[: text.find("\n")] if "\n" in text else text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first_line))
    rows = _bounded(reader)
    try:
        header = [c.strip().lower() for c in next(rows, [])]
        missing = [c for c in _REQUIRED if c not in header]
        if missing:
            if any(os.path.splitext(c)[1] in IMAGE_EXTENSIONS for c in header):
                # A data row, not a header: its other cells may be a patient's; not quoted.
                raise DatasetError(
                    f"The manifest {name} has no header row (its first row lists an image); {_FIX}"
                )
            shown = _quoted(", ".join(header[:8])) or "nothing"
            raise DatasetError(
                f"The manifest {name} has no '{missing[0]}' column (its first row reads: {shown}); "
                f"{_FIX}"
            )
        manifest = Manifest(
            csv_path=str(path),
            folder=str(path.parent),
            has_group="group" in header,
            has_split="split" in header,
        )
        col: dict[str, int] = {c: header.index(c) for c in _KNOWN if c in header}
        extra = _attribute_columns(manifest, header)
        _read_rows(manifest, rows, col, task, extra)
    except csv.Error as exc:
        raise DatasetError(
            f"The manifest {name} is not valid CSV at line {reader.line_num} ({exc}); {_FIX}"
        ) from None
    return manifest


# csv's default field limit. The text-table reader raises the process-wide limit for long
# documents, so the manifest checks its cells itself: the same answer whatever was read before.
MAX_CELL = 131072


def _bounded(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The rows of ``reader``; csv.Error for a cell longer than MAX_CELL characters."""
    for row in reader:
        if any(len(cell) > MAX_CELL for cell in row):
            raise csv.Error(f"a cell is longer than {MAX_CELL:,} characters")
        yield row


def _attribute_columns(manifest: Manifest, header: list[str]) -> dict[str, int]:
    """The extra columns of ``header`` kept as attributes (column -> index): named, not one of
    file/label/group/split, not a repeat, at most MAX_ATTRIBUTES (one sentence about the rest)."""
    extra: dict[str, int] = {}
    dropped = 0
    for i, name in enumerate(header):
        if not name or name in _KNOWN or name in extra or _control(name):
            continue
        if len(extra) >= MAX_ATTRIBUTES or len(name) > MAX_ATTRIBUTE:
            dropped += 1
            continue
        extra[name] = i
    manifest.attribute_columns = tuple(extra)
    if dropped:
        manifest.problems.append(
            Problem(
                kind=ProblemKind.MANIFEST,
                path=manifest.csv_path,
                message=f"The manifest {Path(manifest.csv_path).name} has {dropped:,} more extra "
                f"columns than the {MAX_ATTRIBUTES} kept for subgroups (or names longer than "
                f"{MAX_ATTRIBUTE} characters); those columns are ignored.",
            )
        )
    return extra


def _control(text: str) -> bool:
    """Whether ``text`` holds a NUL or another control character (a newline in a cell too)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _attributes(
    row: list[str], extra: dict[str, int], number: int, name: str, told: set[str]
) -> tuple[tuple[tuple[str, str], ...], tuple[Problem, ...]]:
    """The usable (column, value) cells of ``row`` (cut to MAX_ATTRIBUTE characters) and one
    sentence for the first cell of each column that holds a control character."""
    out: list[tuple[str, str]] = []
    said: list[Problem] = []
    for column, i in extra.items():
        value = row[i].strip() if i < len(row) else ""
        if not value:
            continue
        if _control(value):
            if column not in told:
                told.add(column)
                said.append(
                    Problem(
                        kind=ProblemKind.MANIFEST,
                        path=name,
                        message=f"Row {number} of {Path(name).name} has a control character in "
                        f"its '{column}' cell; such cells are left out of subgroups (fix the "
                        "cell to use it).",
                    )
                )
            continue
        out.append((column, value[:MAX_ATTRIBUTE]))
    return tuple(out), tuple(said)


_FIX = (
    "a manifest is a CSV whose first row names the columns file,label (and optionally group and "
    "split), with image paths relative to the CSV's folder."
)


def _read_rows(
    manifest: Manifest,
    reader: Iterator[list[str]],
    col: dict[str, int],
    task: Task | None,
    extra: dict[str, int] | None = None,
) -> None:
    folder = Path(manifest.folder)
    real_folder = os.path.realpath(folder)
    seen: dict[str, int] = {}  # absolute path -> row number
    bad: list[Problem] = []
    bad_rows = 0
    name = Path(manifest.csv_path).name
    told: set[str] = set()  # columns whose control characters were told
    for number, row in enumerate(reader, start=2):
        if number % 10_000 == 0 and task is not None:
            task.check_cancelled()
        if number - 1 > MAX_ROWS:
            raise DatasetError(
                f"The manifest {name} has more than {MAX_ROWS:,} rows, the most read; split it "
                "into several datasets."
            )
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        cells = {key: (row[i].strip() if i < len(row) else "") for key, i in col.items()}
        why, path = _check_row(cells, folder, real_folder)
        if why is None and path is not None and path in seen:
            why = (
                f"lists {_quoted(cells['file'])} again (first in row {seen[path]}); this row is "
                "ignored."
            )
        if why is not None or path is None:
            bad_rows += 1
            if len(bad) < MAX_ROW_PROBLEMS:  # the rest are only counted: a million is no list
                bad.append(
                    Problem(
                        kind=ProblemKind.MANIFEST,
                        path=manifest.csv_path,
                        message=f"Row {number} of {name} {why}",
                    )
                )
            continue
        seen[path] = number
        attributes: tuple[tuple[str, str], ...] = ()
        if extra:
            attributes, said = _attributes(row, extra, number, manifest.csv_path, told)
            manifest.problems.extend(said)
        split = cells.get("split", "").lower()
        manifest.rows.append(
            ManifestRow(
                number=number,
                path=path,
                rel=cells["file"].replace("\\", "/"),
                label=cells["label"],
                group=cells.get("group") or None,
                split=SPLITS.get(split) if split else None,
                attributes=attributes,
            )
        )
    manifest.problems.extend(bad)
    if bad_rows > MAX_ROW_PROBLEMS:
        manifest.problems.append(
            Problem(
                kind=ProblemKind.MANIFEST,
                path=manifest.csv_path,
                message=f"{bad_rows - MAX_ROW_PROBLEMS:,} more rows of {name} cannot be used "
                "either; fix the rows above and scan again to see them.",
            )
        )


def _check_row(
    cells: dict[str, str], folder: Path, real_folder: str
) -> tuple[str | None, str | None]:
    """(None, absolute path) for a usable row, else (the rest of its sentence, None)."""
    file, label = cells["file"], cells["label"]
    shown = _quoted(file)
    if not file:
        return "has no file; fill in the image's path relative to the CSV's folder.", None
    if not label:
        return f"has no label for {shown}; fill in its class.", None
    if len(label) > MAX_LABEL:
        # A label is a class name shown in every table and export; this is another column.
        return (
            f"has a label of {len(label):,} characters for {shown}; a label is a class name "
            f"(at most {MAX_LABEL}): check the columns.",
            None,
        )
    split = cells.get("split", "").lower()
    if split and split not in SPLITS:
        return (
            f"has the split '{_quoted(cells['split'])}', which is not train, val or test; fix "
            "it or leave it empty.",
            None,
        )
    if "\x00" in file:
        return "has a file name with a NUL character; fix the path.", None
    if "://" in file:
        return (
            f"names a URL ({shown}), not a file; nothing is downloaded. Write the image's path "
            "relative to the CSV's folder.",
            None,
        )
    outside = (
        f"points outside the CSV's folder ({shown}); it is refused. Put the images in the CSV's "
        "folder or below it and use paths relative to it.",
        None,
    )
    try:
        candidate = os.path.normpath(os.path.join(folder, file.replace("\\", "/")))
        if not _inside(candidate, str(folder)):
            return outside
        if os.path.splitext(candidate)[1].lower() not in IMAGE_EXTENSIONS:
            return f"names {shown}, which is not an image file; it is ignored.", None
        try:
            link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return f"names {shown}, which does not exist; fix the path or remove the row.", None
        # One stat per row; the folders' real paths are cached (a million rows share a few).
        parent, base = os.path.split(candidate)
        real = os.path.realpath(candidate) if link else os.path.join(_real_dir(parent), base)
        if not _inside(real, real_folder):
            return outside
        if os.path.isdir(real):
            return f"names {shown}, which is a folder, not an image file; list its images.", None
    except (OSError, ValueError):  # a name too long for the file system, odd characters
        return f"names {shown}, which cannot be a file here; fix the path.", None
    return None, candidate


@functools.lru_cache(maxsize=4096)
def _real_dir(path: str) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    """Whether the normalised ``path`` is ``folder`` or below it (a string test: no file system
    call, a million rows are checked)."""
    path, folder = os.path.normcase(path), _folder_key(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@functools.lru_cache(maxsize=64)
def _folder_key(folder: str) -> str:
    return os.path.normcase(os.path.normpath(folder))
