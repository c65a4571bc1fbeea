"""Whether a dataset source holds images or texts, decided from file names alone (fast), and
the sentence for a source that is neither."""

from __future__ import annotations

import os
from pathlib import Path

from engine.data.images import IMAGE_EXTENSIONS
from engine.data.manifest import is_image_manifest
from engine.data.text_read import TABLE_EXTENSIONS

TEXT_FILE_EXTENSIONS = (".txt",)
USABLE_SOURCES = (
    "a folder with one subfolder per class (of images or .txt files, optionally inside "
    "train/ val/ test/ folders), or a .csv, .tsv or .jsonl file with a text column and a "
    "label column"
)
_SPREADSHEETS = frozenset({".xlsx", ".xlsm", ".xls", ".ods", ".numbers"})
_ARCHIVES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"})
_LOOK_AT = 2000  # files looked at before deciding; a folder is one kind throughout


def detect_modality(source: str | Path) -> str:
    """ "text" for a .csv / .tsv / .jsonl file or a folder whose files are mostly .txt, else
    "image" (also for a missing path: the image scan then says what is wrong)."""
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():  # a named pipe called data.csv is still a table
        if is_image_manifest(path):  # file,label[,group][,split]: a manifest of images
            return "image"
        return "text" if path.suffix.lower() in TABLE_EXTENSIONS + TEXT_FILE_EXTENSIONS else "image"
    images = texts = seen = 0
    for _, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            images += suffix in IMAGE_EXTENSIONS
            texts += suffix in TEXT_FILE_EXTENSIONS
            seen += 1
        if seen >= _LOOK_AT:
            break
    return "text" if texts > images else "image"


def unusable_source(source: str | Path) -> str:
    """The sentence for a dataset path that Refit Studio cannot read as a dataset: a missing
    path, a spreadsheet, an archive, a single image or any other file. Names what works."""
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if not path.exists():
        return f"{path} does not exist; choose {USABLE_SOURCES}."
    if path.is_dir():
        return f"{path} is a folder that cannot be read as a dataset; choose {USABLE_SOURCES}."
    if suffix in _SPREADSHEETS:
        return (
            f"{path.name} is a spreadsheet, which is not read directly; save the sheet as CSV "
            "(a text column and a label column) and choose that file, or choose a folder with "
            "one subfolder per class."
        )
    if suffix in _ARCHIVES:
        return (
            f"{path.name} is an archive; unpack it and choose the folder inside: {USABLE_SOURCES}."
        )
    if suffix in IMAGE_EXTENSIONS or suffix in TEXT_FILE_EXTENSIONS:
        return (
            f"{path.name} is a single file, not a dataset; choose the folder that holds one "
            "subfolder per class, or a .csv, .tsv or .jsonl file of labeled texts."
        )
    return f"{path.name} is not a folder or a .csv, .tsv or .jsonl file; choose {USABLE_SOURCES}."
