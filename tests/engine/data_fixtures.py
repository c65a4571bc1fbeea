"""Tiny generated image folders for the engine/data tests."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

COLORS = [(200, 30, 30), (30, 160, 40), (40, 60, 210), (220, 200, 20), (120, 40, 160)]


def image(i: int, size: tuple[int, int] = (16, 16)) -> Image.Image:
    """A small RGB image whose content differs for each ``i`` (so digests differ)."""
    img = Image.new("RGB", size, COLORS[i % len(COLORS)])
    img.putpixel((i % size[0], (i // size[0]) % size[1]), (i % 256, (i * 7) % 256, 255))
    img.putpixel((0, 0), ((i // 256) % 256, 0, 0))
    return img


def save(img: Image.Image, path: Path, fmt: str | None = None, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **params)
    return path


def jpeg_bytes(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **params)
    return buf.getvalue()


def make_folder(root: Path, counts: dict[str, int], *, start: int = 0, ext: str = ".png") -> Path:
    """``root/<class>/img_<n><ext>`` with ``counts[class]`` distinct images each."""
    n = start
    for cls, count in counts.items():
        for k in range(count):
            save(image(n), root / cls / f"img_{k:03d}{ext}")
            n += 1
    return root


def make_split_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """``root/<split>/<class>/...`` from ``{split: {class: count}}``, all images distinct."""
    n = 0
    for split, counts in layout.items():
        make_folder(root / split, counts, start=n)
        n += sum(counts.values())
    return root
