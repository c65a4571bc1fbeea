"""What the Data page opens: an image folder, a text folder or a table file, scanned in a worker.

Everything here that reads the disk runs in a worker thread (``scan_source_job``); the GUI
thread only looks at file name suffixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.modalities import views_of

if TYPE_CHECKING:
    from engine import Table, Task

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
TABLE_FILTER = "Text tables (*.csv *.tsv *.jsonl);;All files (*)"


def is_table_file(path: str | Path) -> bool:
    """A .csv / .tsv / .jsonl name (by suffix only: no disk access, safe in the GUI thread)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def detect_modality(path: str | Path) -> str:
    """ "text" or "image" for a dataset source (reads the folder: call it in a worker)."""
    if is_table_file(path):
        return "text"  # also when it is missing: the text scan's sentence says so
    from engine import detect_modality as engine_detect

    return str(engine_detect(path))


def index_modality(index: Any) -> str:
    """ "text" for an ``engine.data.text.TextIndex``, else "image"."""
    from desktop.modalities import index_views

    return index_views(index).name


@dataclass(frozen=True)
class SourceScan:
    """What one scan found. ``index`` is a DatasetIndex or TextIndex, or None when a table file
    was read but its columns cannot be used (``error`` says why, ``table`` lets the user
    choose others). ``table`` is only read on the first scan of a file."""

    path: str
    modality: str
    index: Any | None
    table: Table | None = None
    error: str = ""


def scan_source_job(
    path: str,
    *,
    min_per_class: int,
    text_column: str = "",
    label_column: str = "",
    read_table: bool = True,
) -> Callable[[Task], SourceScan]:
    """The background job of one scan (engine.data is imported in the worker, not the GUI);
    image scans report their counts on the task and stop when it is cancelled."""

    def job(task: Task) -> SourceScan:
        from engine import scan_folder

        views = views_of(detect_modality(path))
        if not views.text_views:
            index = scan_folder(path, min_per_class=min_per_class, task=task)
            return SourceScan(path=path, modality=views.name, index=index)
        return _scan_text(path, min_per_class, text_column, label_column, read_table, task)

    return job


def _scan_text(
    path: str,
    min_per_class: int,
    text_column: str,
    label_column: str,
    want_table: bool,
    task: Task,
) -> SourceScan:
    from engine import DatasetError, read_table, scan_text_source

    # A missing file is left to scan_text_source, whose sentence says so.
    readable = want_table and is_table_file(path) and Path(path).is_file()
    table = read_table(Path(path)) if readable else None
    try:
        index = scan_text_source(
            path,
            text_column=text_column or None,
            label_column=label_column or None,
            min_per_class=min_per_class,
            task=task,
        )
    except DatasetError as exc:  # not Cancelled: a stopped scan has no result
        if table is None and not is_table_file(path):
            raise  # a folder that cannot be read: nothing to choose from
        return SourceScan(path=path, modality="text", index=None, table=table, error=str(exc))
    return SourceScan(path=path, modality="text", index=index, table=table)
