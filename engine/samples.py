"""Sample datasets a first-time user can open with one click."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.files import make_temp_dir

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write_digits_dataset(dest: str | Path, *, per_class: int = 60, size: int = 64) -> Path:
    """Write scikit-learn's bundled handwritten digits as an image folder (one folder per digit).

    Returns ``dest``. An existing complete copy is reused; the folder appears atomically.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    dest = Path(dest)
    marker = dest / ".complete"
    if marker.is_file():
        return dest
    digits = load_digits()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(dest.parent, ".digits-")
    try:
        counts = dict.fromkeys(range(10), 0)
        for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
            label = int(label)
            if counts[label] >= per_class:
                continue
            counts[label] += 1
            # 0..16 ink on white paper, as a scanner would give it.
            pixels = (255 - image * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            img = Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)
            folder = tmp / f"{label}-{DIGIT_NAMES[label]}"
            folder.mkdir(exist_ok=True)
            img.save(folder / f"digit_{i:04d}.png")
        (tmp / ".complete").write_text("scikit-learn load_digits\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
