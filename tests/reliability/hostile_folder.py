"""A hostile labeled image folder: everything a dataset folder can hold that should not hang,
crash or fool a scan, beside enough good images in three classes to train on.

``make_hostile_folder(base)`` builds ``base/data`` (the dataset) and ``base/outside`` (a folder
beside it, with images the dataset's links point to) and returns a :class:`HostileFolder` that
says what each crafted entry is and whether a scan should accept it.
"""

from __future__ import annotations

import io
import os
import struct
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from synthetic import draw_shape, make_shapes_folder

CLASSES = ("circle", "square", "triangle")
GOOD_PER_CLASS = 8


@dataclass
class HostileFolder:
    """The dataset ``root``, the ``outside`` folder, and every crafted entry by path."""

    root: Path
    outside: Path
    accepted: dict[str, str] = field(default_factory=dict)  # path -> what it is
    skipped: dict[str, str] = field(default_factory=dict)  # path -> what it is

    def add(self, path: Path, what: str, *, accept: bool) -> None:
        (self.accepted if accept else self.skipped)[str(path)] = what


def make_hostile_folder(base: Path) -> HostileFolder:
    """Build the hostile folder under ``base`` (see the module docstring)."""
    root, outside = base / "data", base / "outside"
    make_shapes_folder(root, classes=CLASSES, per_class=GOOD_PER_CLASS, size=32, seed=5)
    make_shapes_folder(outside, classes=("circle",), per_class=3, size=32, seed=6)
    h = HostileFolder(root=root, outside=outside)
    _damaged_files(h, root / "circle")
    _awkward_but_valid_images(h, root / "square")
    _pixel_bombs(h, root / "triangle")
    _names(h, root / "triangle")
    _special_files(h, root / "circle")
    _links(h, root)
    return h


def _noise(size: int = 64) -> Image.Image:
    return Image.effect_noise((size, size), 60).convert("RGB")


def _encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def _damaged_files(h: HostileFolder, folder: Path) -> None:
    jpeg = _encoded(_noise(), "JPEG", quality=95)
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    h.add(folder / "truncated.jpg", "truncated JPEG", accept=False)
    png = _encoded(_noise(), "PNG")
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    h.add(folder / "truncated.png", "truncated PNG", accept=False)
    (folder / "empty.png").write_bytes(b"")
    h.add(folder / "empty.png", "0-byte file", accept=False)
    (folder / "notes.jpg").write_text("Not a picture: meeting notes saved with the wrong name.\n")
    h.add(folder / "notes.jpg", "text file named .jpg", accept=False)
    # Sparse: 2 GiB on paper, nothing on disk. Reading it whole would show in the peak memory.
    with open(folder / "huge.png", "wb") as fh:
        fh.truncate(2 * 1024**3)
    h.add(folder / "huge.png", "2 GiB file", accept=False)


def _awkward_but_valid_images(h: HostileFolder, folder: Path) -> None:
    cmyk = draw_shape("square", _rng(1), 32).convert("CMYK")
    cmyk.save(folder / "cmyk.jpg", "JPEG")
    h.add(folder / "cmyk.jpg", "CMYK JPEG", accept=True)
    gray = Image.fromarray(
        (_gradient(32) * 65535).astype("uint16"),
    )
    gray.save(folder / "gray16.png")
    h.add(folder / "gray16.png", "16-bit grayscale PNG", accept=True)
    palette = draw_shape("square", _rng(2), 32).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    palette.save(folder / "palette_alpha.png", transparency=0)
    h.add(folder / "palette_alpha.png", "palette PNG with transparency", accept=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    draw_shape("square", _rng(3), 32).resize((32, 24)).save(
        folder / "rotated.jpg", "JPEG", exif=exif.tobytes()
    )
    h.add(folder / "rotated.jpg", "EXIF-rotated JPEG", accept=True)


def _pixel_bombs(h: HostileFolder, folder: Path) -> None:
    # A few dozen bytes declaring 100000 x 100000 pixels (Pillow refuses past twice its limit),
    # and 10000 x 10000 (Pillow only warns there; the scan refuses it with a sentence).
    (folder / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    h.add(folder / "bomb.png", "pixel bomb (100000x100000)", accept=False)
    (folder / "bomb_warn.png").write_bytes(_png_header(10_000, 10_000))
    h.add(folder / "bomb_warn.png", "pixel bomb (10000x10000)", accept=False)


def _names(h: HostileFolder, folder: Path) -> None:
    for form in ("NFC", "NFD"):
        name = unicodedata.normalize(form, "café") + ".png"
        try:
            draw_shape("triangle", _rng(10 + len(form) + len(name)), 32).save(folder / name)
        except OSError:
            continue  # a file system that normalizes names keeps one of them
        h.add(folder / name, f"unicode {form} name", accept=True)
    long_dir = _long_path(folder)
    if long_dir is not None:
        deep = long_dir / "deep.png"
        draw_shape("triangle", _rng(20), 32).save(deep)
        h.add(deep, f"path of {len(str(deep))} characters", accept=True)


def _long_path(folder: Path) -> Path | None:
    """A folder whose path is close to PATH_MAX (4096 on Linux), made of 200-char names."""
    try:
        limit = os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return None
    current = folder
    while len(str(current)) + 201 + len("/deep.png") < min(limit, 4096) - 16:
        current = current / ("d" * 200)
    if current == folder:
        return None
    try:
        current.mkdir(parents=True)
    except OSError:
        return None
    return current


def _special_files(h: HostileFolder, folder: Path) -> None:
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "pipe.jpg")
        h.add(folder / "pipe.jpg", "named pipe named .jpg", accept=False)
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", folder / "zero.jpg")
        h.add(folder / "zero.jpg", "link to /dev/zero named .jpg", accept=False)


def _links(h: HostileFolder, root: Path) -> None:
    escaped = h.outside / "circle" / "circle_all_000.png"
    links = [
        (root / "circle" / "everything", Path("/"), "link to /"),
        (root / "square" / "up", root, "link to the dataset folder"),
        (root / "triangle" / "parent", root / "triangle", "link to its own class folder"),
        (root / "escape", h.outside / "circle", "class folder linked from outside"),
        (root / "circle" / "escape.png", escaped, "image linked from outside"),
    ]
    for link, target, what in links:
        os.symlink(target, link)
        h.add(link, what, accept=False)
    os.symlink(root / "triangle" / "loop_b", root / "triangle" / "loop_a")
    os.symlink(root / "triangle" / "loop_a", root / "triangle" / "loop_b")
    h.add(root / "triangle" / "loop_a", "link loop", accept=False)
    h.add(root / "triangle" / "loop_b", "link loop", accept=False)
    good = root / "square" / "square_all_000.png"
    os.symlink(good, root / "square" / "zz_alias.png")  # inside the dataset: followed
    h.add(root / "square" / "zz_alias.png", "link to an image inside (a copy)", accept=False)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` 1-bit gray pixels and holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gradient(size: int):
    import numpy as np

    return np.linspace(0.0, 1.0, size * size).reshape(size, size)


def _rng(seed: int):
    import random

    return random.Random(seed)
