"""Generate a two-class, out-of-domain "scan-like" PNG folder for benchmarks (no internet needed).

Each image is a grayscale axial slice on a black background: an elliptical "head" (a bright
skull ring around soft tissue), a few darker internal structures (ventricle-like ellipses, soft
texture), blur and noise. Class ``lesion`` also holds one faint, small blob at a random place
inside the head; class ``normal`` does not. Both classes share every other random factor, so only
that local structure separates them, the way a tumour does on an MRI slice.

By default the slices are exported with the full grey range (0..255). ``--levels N`` thresholds
them to N grey levels, stored as the values 0..N-1 (the image looks black in a viewer), as some
clinical exports do. The output is deterministic for a given ``--seed``.

    python benchmarks/make_scans.py /tmp/scans --per-class 100 [--levels 3] [--size 256]
        [--lesion faint|mass]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("normal", "lesion")


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy, cx, ry, rx, angle=0.0) -> np.ndarray:
    """Normalised radius (1 on the outline) of an ellipse at every pixel."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u, v = dx * c + dy * s, -dx * s + dy * c
    return np.sqrt((u / rx) ** 2 + (v / ry) ** 2)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency texture: coarse noise upsampled bicubically."""
    coarse = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img)


#: Lesion kinds: ``faint`` is one small, faint blob (hard: after thresholding to a few grey
#: levels it barely shows); ``medium`` varies from faint to clear; ``mass`` is a larger,
#: brighter, irregular mass, like the tumours of public brain-MRI sets (visible to a reader,
#: still nothing like ImageNet).
LESIONS = {
    "faint": ((0.12, 0.2), (0.05, 0.09), 1),
    "medium": ((0.12, 0.3), (0.04, 0.1), 2),
    "mass": ((0.25, 0.45), (0.06, 0.12), 3),
}


def draw_slice(
    rng: np.random.Generator, size: int, lesion: bool, kind: str = "faint"
) -> np.ndarray:
    """One slice as floats in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy = size / 2 + rng.uniform(-0.05, 0.05) * size
    cx = size / 2 + rng.uniform(-0.05, 0.05) * size
    ry, rx = rng.uniform(0.36, 0.44) * size, rng.uniform(0.28, 0.36) * size
    angle = rng.uniform(-0.2, 0.2)
    r = _ellipse(yy, xx, cy, cx, ry, rx, angle)
    inside = r < 0.92
    img = np.zeros((size, size), np.float32)
    img[(r >= 0.92) & (r < 1.0)] = rng.uniform(0.8, 1.0)  # skull ring
    tissue = rng.uniform(0.45, 0.6) + 0.06 * _smooth_noise(rng, size, 8)
    img = np.where(inside, tissue, img)
    for _ in range(rng.integers(2, 5)):  # ventricle-like dark structures
        vy = cy + rng.uniform(-0.3, 0.3) * ry
        vx = cx + rng.uniform(-0.3, 0.3) * rx
        v = _ellipse(
            yy,
            xx,
            vy,
            vx,
            rng.uniform(0.05, 0.15) * ry,
            rng.uniform(0.03, 0.08) * rx,
            rng.uniform(0, np.pi),
        )
        img = np.where(v < 1, img * rng.uniform(0.3, 0.6), img)
    if lesion:
        (c_lo, c_hi), (r_lo, r_hi), lobes = LESIONS[kind]
        ly = cy + rng.uniform(-0.5, 0.5) * ry
        lx = cx + rng.uniform(-0.5, 0.5) * rx
        blob = np.zeros_like(img)
        for _ in range(lobes):  # a mass is a few overlapping lobes, not a perfect disc
            radius = rng.uniform(r_lo, r_hi) * size
            oy, ox = (rng.uniform(-0.6, 0.6, 2) * radius) if lobes > 1 else (0.0, 0.0)
            lobe = np.exp(-(((yy - ly - oy) ** 2 + (xx - lx - ox) ** 2) / (2 * radius**2)))
            blob = np.maximum(blob, lobe)
        img = (img + rng.uniform(c_lo, c_hi) * blob * inside).astype(np.float32)
    img = np.asarray(
        Image.fromarray(img, mode="F")
        .resize((size // 2, size // 2), Image.Resampling.BILINEAR)
        .resize((size, size), Image.Resampling.BILINEAR)
    )
    img = img + rng.normal(0, 0.03, img.shape) * (img > 0.02)
    return np.clip(img, 0, 1)


def export(img: np.ndarray, levels: int) -> np.ndarray:
    """Full range (``levels`` 0) or ``levels`` grey levels stored as 0..levels-1."""
    if levels <= 0:
        return (img * 255).round().astype(np.uint8)
    return np.minimum((img * levels).astype(np.int64), levels - 1).astype(np.uint8)


def make_scans(
    root: Path,
    per_class: int,
    *,
    levels: int = 0,
    size: int = 256,
    seed: int = 0,
    lesion: str = "faint",
) -> Path:
    """Write ``root/<class>/scan_<n>.png`` for both classes; returns ``root``."""
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            pixels = export(draw_slice(rng, size, bool(label), lesion), levels)
            Image.fromarray(pixels, mode="L").save(folder / f"scan_{i:04d}.png")
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--levels", type=int, default=0, help="0: full grey range (default)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lesion", choices=sorted(LESIONS), default="faint")
    args = parser.parse_args(argv)
    make_scans(
        args.out,
        args.per_class,
        levels=args.levels,
        size=args.size,
        seed=args.seed,
        lesion=args.lesion,
    )
    print(f"{2 * args.per_class} scans in {args.out}")


if __name__ == "__main__":
    main()
