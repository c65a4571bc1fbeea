"""Generated labeled image folders for tests: PIL-drawn shapes, a few per class."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {"circle": (220, 40, 40), "square": (40, 60, 220), "triangle": (40, 180, 60)}


def draw_shape(kind: str, rng: random.Random, size: int = 48) -> Image.Image:
    """One image of ``kind`` with jittered position, size, colour and background."""
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(r + 1, size - r - 2), rng.randint(r + 1, size - r - 2)
    base = COLORS.get(kind, (120, 120, 120))
    color = tuple(max(0, min(255, c + rng.randint(-30, 30))) for c in base)
    box = [cx - r, cy - r, cx + r, cy + r]
    if kind == "circle":
        d.ellipse(box, fill=color)
    elif kind == "square":
        d.rectangle(box, fill=color)
    else:
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    return img


def make_shapes_folder(
    root: Path,
    classes: tuple[str, ...] = ("circle", "square"),
    per_class: int = 12,
    *,
    seed: int = 0,
    size: int = 48,
    splits: dict[str, int] | None = None,
) -> Path:
    """A folder with one subfolder per class (or split/class when ``splits`` gives counts)."""
    rng = random.Random(seed)
    layout = splits or {"": per_class}
    for split, count in layout.items():
        for cls in classes:
            folder = root / split / cls if split else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_shape(cls, rng, size).save(folder / f"{cls}_{split or 'all'}_{i:03d}.png")
    return root


def draw_scan(lesion: bool, rng: random.Random, size: int = 64) -> Image.Image:
    """A grayscale "scan" exported with three grey levels (0-2 of 255: black in a viewer).

    Black background, an elliptic body at level 1 with speckle at level 2; ``lesion`` adds a
    small round patch at level 2 somewhere inside the body: a faint local structure.
    """
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    cx, cy = size // 2 + rng.randint(-3, 3), size // 2 + rng.randint(-3, 3)
    rx, ry = (
        rng.randint(size * 5 // 16, size * 7 // 16),
        rng.randint(size * 5 // 16, size * 7 // 16),
    )
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=1)
    for _ in range(size * size // 40):
        x, y = rng.randint(cx - rx, cx + rx), rng.randint(cy - ry, cy + ry)
        if ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1:
            img.putpixel((x, y), 2)
    if lesion:
        r = rng.randint(size // 10, size // 7)
        lx = cx + rng.randint(-rx // 2, rx // 2)
        ly = cy + rng.randint(-ry // 2, ry // 2)
        d.ellipse([lx - r, ly - r, lx + r, ly + r], fill=2)
    return img


def make_scans_folder(root: Path, per_class: int = 30, *, seed: int = 0, size: int = 64) -> Path:
    """Out-of-domain images: ``root/yes`` (with a lesion) and ``root/no``, three grey levels."""
    rng = random.Random(seed)
    for cls in ("no", "yes"):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_scan(cls == "yes", rng, size).save(folder / f"{cls}_{i:03d}.png")
    return root


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """(size, mtime_ns, bytes) of every file and folder under ``root``: proves it is untouched."""
    snap = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        snap[str(p.relative_to(root))] = (
            st.st_size if p.is_file() else 0,
            st.st_mtime_ns,
            p.read_bytes() if p.is_file() else b"",
        )
    return snap


_TOPICS = {
    "billing": ["invoice", "refund", "charge", "payment", "price", "card"],
    "delivery": ["parcel", "courier", "shipping", "tracking", "package", "arrived"],
    "tech": ["crash", "login", "password", "screen", "update", "error"],
}
_FILLER = ["the", "my", "it", "was", "please", "today", "again", "still", "and", "help", "now"]


def make_texts(per_class: int, *, classes: int = 2, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs: short support messages whose topic words give the class away, with
    filler words and lengths from 3 to about 40 words."""
    rng = random.Random(seed)
    rows = []
    for label, words in list(_TOPICS.items())[:classes]:
        for i in range(per_class):
            n = rng.choice([3, 5, 8, 12, 20, 40])
            body = [rng.choice(_FILLER) for _ in range(n)]
            for _ in range(2):
                body.insert(rng.randrange(len(body) + 1), rng.choice(words))
            rows.append((" ".join(body) + f" #{i}", label))
    rng.shuffle(rows)
    return rows


def make_text_table(path: Path, per_class: int = 20, *, classes: int = 2, seed: int = 0) -> Path:
    """A .csv / .tsv (by suffix) with header ``message,category`` and generated texts."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["id", "message", "category"])
        for i, (text, label) in enumerate(make_texts(per_class, classes=classes, seed=seed)):
            writer.writerow([i, text, label])
    return path


def make_tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT (hidden size 32) with the starter's tokenizer, as a local Hugging
    Face folder: fast enough to train in tests."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from engine.models.weights import text_starter_folder

    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(text_starter_folder())).save_pretrained(str(folder))
    return folder
