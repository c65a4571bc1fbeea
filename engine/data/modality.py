"""Whether a dataset source holds images or texts, decided from file names alone (fast)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.data.images import IMAGE_EXTENSIONS
from engine.data.text_read import TABLE_EXTENSIONS

TEXT_FILE_EXTENSIONS = (".txt",)
_LOOK_AT = 2000  # files looked at before deciding; a folder is one kind throughout


def detect_modality(source: str | Path) -> str:
    """ "text" for a .csv / .tsv / .jsonl file or a folder whose files are mostly .txt, else
    "image" (also for a missing path: the image scan then says what is wrong)."""
    path = Path(source).expanduser()
    if path.is_file():
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
