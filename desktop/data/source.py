"""What the Data page opens: an image folder, a text folder or a table file, scanned in a worker.

Everything here that reads the disk runs in a worker thread (``scan_source_job``); the GUI
thread only looks at file name suffixes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop.modalities import views_of

if TYPE_CHECKING:
    from engine import Table, Task

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
TABLE_FILTER = "Text tables or image manifests (*.csv *.tsv *.jsonl);;All files (*)"


def is_table_file(path: str | Path) -> bool:
    """A .csv / .tsv / .jsonl name (by suffix only: no disk access, safe in the GUI thread)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def detect_modality(path: str | Path) -> str:
    """ "text" or "image" for a dataset source (reads the folder: call it in a worker). A .csv
    whose header names ``file`` and ``label`` is a manifest of images."""
    from engine import detect_modality as engine_detect

    if is_table_file(path) and not Path(path).is_file():
        return "text"  # a missing table: the text scan's sentence says so

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
    #: some of its images are DICOM files (the page then offers the DICOM window)
    dicom: bool = False


DICOM_SUFFIXES = (".dcm", ".dicom")
#: at most this many file heads are read to tell whether a scan holds DICOM files
DICOM_SNIFF = 200
_DICOM_HEAD = 132  # the 128-byte preamble and "DICM"


def has_dicom(paths: Sequence[str]) -> bool:
    """Whether any of ``paths`` is a DICOM file: by name, else by the first bytes of up to
    DICOM_SNIFF of them (call in a worker; unreadable files count as not DICOM)."""
    if any(p.lower().endswith(DICOM_SUFFIXES) for p in paths):
        return True
    from engine import FileReadError, is_dicom, read_head

    for path in paths[:DICOM_SNIFF]:
        try:
            if is_dicom(read_head(path, _DICOM_HEAD)):
                return True
        except (OSError, FileReadError):
            continue
    return False


def scan_source_job(
    path: str,
    *,
    min_per_class: int,
    text_column: str = "",
    label_column: str = "",
    read_table: bool = True,
    group_by: str = "",
    frames: str = "middle",
) -> Callable[[Task], SourceScan]:
    """The background job of one scan (engine.data is imported in the worker, not the GUI);
    image scans report their counts on the task and stop when it is cancelled. ``group_by``
    (data.group_by) gives images their patients and the leakage checks, as ``refit scan
    --group-by`` does; ``frames`` (data.dicom_frames) as ``--dicom-frames``."""

    def job(task: Task) -> SourceScan:
        from engine import scan_folder, scan_image_source

        views = views_of(detect_modality(path))
        if not views.text_views:
            # A folder is scanned as before; the patients and leakage checks come on top. A
            # manifest .csv is the image scan's own business.
            found = (
                None
                if is_table_file(path)
                else scan_folder(path, min_per_class=min_per_class, task=task)
            )
            index = scan_image_source(
                path,
                min_per_class=min_per_class,
                group_by=group_by,
                task=task,
                index=found,
                frames=frames,
            )
            from engine import split_frame  # a frame's path names its file

            dicom = has_dicom(
                [split_frame(s.path)[0] for s in index.samples]
                + [p.path for p in index.problems if p.path]
            )
            return SourceScan(path=path, modality=views.name, index=index, dicom=dicom)
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
