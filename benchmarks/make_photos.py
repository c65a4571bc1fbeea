"""Generate a two-class, photo-like JPEG folder for benchmarks (no internet needed).

Class ``organic`` holds scenes of ellipses and soft, irregular blobs; class ``geometric`` holds
rectangles, tiles and straight lines. Both draw from the same random colour palettes, gradients,
lighting and sensor noise, and each has a few shapes of the other kind, so colour alone does not
separate them but a pretrained ImageNet backbone does. Images come in the sizes cameras and the
web produce (640x480 up to 12 MP, some portrait; ``--sizes web``: up to 1024x768 only), JPEG
quality 90, a few stored sideways with the EXIF orientation tag that phones write. The output
is deterministic for a given ``--seed``.

    python benchmarks/make_photos.py /tmp/photos --per-class 200
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

CLASSES = ("organic", "geometric")

# (width, height) and how often each appears. "mixed": web images, older cameras and 12 MP phones;
# "web": the sizes of images saved for the web, where decoding is cheap.
SIZE_MIXES: dict[str, tuple[tuple[tuple[int, int], float], ...]] = {
    "mixed": (
        ((640, 480), 0.20),
        ((1024, 768), 0.20),
        ((1600, 1200), 0.20),
        ((2048, 1536), 0.15),
        ((3024, 4032), 0.10),
        ((4032, 3024), 0.15),
    ),
    "web": (
        ((640, 480), 0.35),
        ((800, 600), 0.25),
        ((1024, 768), 0.25),
        ((768, 1024), 0.15),
    ),
    # "small": the size of photos in public pet, bird and food datasets (about 500x375).
    "small": (
        ((500, 375), 0.5),
        ((500, 333), 0.2),
        ((375, 500), 0.2),
        ((400, 300), 0.1),
    ),
}
WORK_SIDE = 1024  # shapes are drawn at most this large, then scaled up like a soft lens would
EXIF_SHARE = 0.1  # share of images stored sideways with an EXIF orientation tag
ORIENTATION = 0x0112
# Pixels as stored for an upright scene, per EXIF orientation (exif_transpose undoes them).
STORED_AS = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
NOISE_TILE = 512


@dataclass(frozen=True)
class PhotoSpec:
    """Everything that determines one image: where it goes and the seed it is drawn from."""

    path: Path
    kind: str
    seed: tuple[int, int, int]
    sizes: str = "mixed"


def pick_size(rng: np.random.Generator, mix: str) -> tuple[int, int]:
    sizes = SIZE_MIXES[mix]
    weights = np.array([w for _, w in sizes])
    i = rng.choice(len(sizes), p=weights / weights.sum())
    return sizes[i][0]


def palette(rng: np.random.Generator, n: int = 6) -> list[tuple[int, int, int]]:
    """Random colours around one or two hues, as real scenes tend to have."""
    base = rng.uniform(0, 360, size=2)
    colours = []
    for _ in range(n):
        hue = (rng.choice(base) + rng.normal(0, 40)) % 360
        sat, val = rng.uniform(0.15, 0.9), rng.uniform(0.2, 0.95)
        colours.append(_hsv_to_rgb(hue, sat, val))
    return colours


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    c = v * s
    x = c * (1 - abs((h / 60) % 2 - 1))
    m = v - c
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h // 60) % 6]
    return (round((r + m) * 255), round((g + m) * 255), round((b + m) * 255))


def background(rng: np.random.Generator, w: int, h: int, colours: list) -> Image.Image:
    """A two-colour gradient at a random angle, lit from one side."""
    a, b = (np.array(colours[i], dtype=np.float32) for i in rng.choice(len(colours), 2))
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    img = a * (1 - t) + b * t
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    light = 1.15 - 0.35 * np.hypot((xx - cx) / w, (yy - cy) / h)[..., None]
    return Image.fromarray(np.clip(img * light, 0, 255).astype(np.uint8))


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, ...]:
    rgb = (int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in colour)
    return (*rgb, int(rng.uniform(150, 255)))


def draw_organic(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, colours: list, count: int
) -> None:
    """Ellipses, rings and irregular blobs with wobbly outlines."""
    side = min(w, h)
    for _ in range(count):
        colour = _jitter(colours[rng.integers(len(colours))], rng)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.02, 0.18) * side, rng.uniform(0.02, 0.18) * side
        roll = rng.random()
        if roll < 0.45:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        elif roll < 0.6:
            width = max(1, int(rng.uniform(0.004, 0.02) * side))
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=colour, width=width)
        else:
            draw.polygon(_blob(rng, cx, cy, (rx + ry) / 2), fill=colour)


def _blob(rng: np.random.Generator, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """A closed outline whose radius wobbles smoothly: a few low-frequency harmonics."""
    theta = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 6):
        radius += rng.normal(0, 0.25 / k) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    radius = r * np.clip(radius, 0.3, 2.0)
    return list(
        zip(
            (cx + radius * np.cos(theta)).tolist(),
            (cy + radius * np.sin(theta)).tolist(),
            strict=True,
        )
    )


def draw_geometric(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, colours: list, count: int
) -> None:
    """Rectangles (some tilted), tiled grids and long straight lines."""
    side = min(w, h)
    for _ in range(count):
        colour = _jitter(colours[rng.integers(len(colours))], rng)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        hw, hh = rng.uniform(0.02, 0.2) * side, rng.uniform(0.02, 0.2) * side
        roll = rng.random()
        if roll < 0.5:
            angle = 0.0 if rng.random() < 0.6 else rng.uniform(-0.6, 0.6)
            draw.polygon(_rectangle(cx, cy, hw, hh, angle), fill=colour)
        elif roll < 0.7:
            _grid(draw, rng, cx, cy, hw, hh, colour, side)
        else:
            width = max(1, int(rng.uniform(0.003, 0.015) * side))
            x2, y2 = rng.uniform(0, w), rng.uniform(0, h)
            draw.line([(cx, cy), (x2, y2)], fill=colour, width=width)


def _rectangle(cx: float, cy: float, hw: float, hh: float, angle: float) -> list:
    c, s = math.cos(angle), math.sin(angle)
    corners = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in corners]


def _grid(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    hw: float,
    hh: float,
    colour: tuple,
    side: int,
) -> None:
    cells = int(rng.integers(2, 7))
    width = max(1, int(rng.uniform(0.002, 0.008) * side))
    for i in range(cells + 1):
        x = cx - hw + 2 * hw * i / cells
        y = cy - hh + 2 * hh * i / cells
        draw.line([(x, cy - hh), (x, cy + hh)], fill=colour, width=width)
        draw.line([(cx - hw, y), (cx + hw, y)], fill=colour, width=width)


def scene(kind: str, rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """The clean scene at working resolution (at most WORK_SIDE on the long side)."""
    colours = palette(rng)
    img = background(rng, w, h, colours).convert("RGBA")
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    main, other = (
        (draw_organic, draw_geometric) if kind == "organic" else (draw_geometric, draw_organic)
    )
    main(draw, rng, w, h, colours, int(rng.integers(18, 50)))
    other(draw, rng, w, h, colours, int(rng.integers(2, 11)))  # distractors: not trivial
    if rng.random() < 0.5:  # depth of field: part of the scene slightly out of focus
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    return Image.alpha_composite(img, layer).convert("RGB")


def noise_bank(seed: int) -> np.ndarray:
    """A tile of unit Gaussian sensor noise, reused at random offsets (fast at 12 MP)."""
    rng = np.random.default_rng([seed, 0xB0B])
    return rng.standard_normal((NOISE_TILE, NOISE_TILE, 3), dtype=np.float32)


def add_sensor_noise(img: Image.Image, rng: np.random.Generator, bank: np.ndarray) -> Image.Image:
    """Add zero-mean Gaussian noise of a random strength (PIL does the full-size arithmetic)."""
    sigma = rng.uniform(2.0, 6.0)
    shifted = np.roll(bank, (int(rng.integers(NOISE_TILE)), int(rng.integers(NOISE_TILE))), (0, 1))
    tile = Image.fromarray(np.clip(128 + shifted * sigma, 0, 255).astype(np.uint8))
    noise = Image.new("RGB", img.size)
    for y in range(0, img.height, NOISE_TILE):
        for x in range(0, img.width, NOISE_TILE):
            noise.paste(tile, (x, y))
    # (img + noise) - 128, clipped to 0..255: signed noise around the mid-grey offset.
    return ImageChops.add(img, noise, scale=1.0, offset=-128)


def render(spec: PhotoSpec, bank: np.ndarray) -> Image.Image:
    """One upright photo at its full size."""
    rng = np.random.default_rng(list(spec.seed))
    width, height = pick_size(rng, spec.sizes)
    scale = min(1.0, WORK_SIDE / max(width, height))
    small = scene(spec.kind, rng, round(width * scale), round(height * scale))
    full = small.resize((width, height), Image.Resampling.BILINEAR) if scale < 1 else small
    return add_sensor_noise(full, rng, bank)


def save_photo(img: Image.Image, path: Path, rng: np.random.Generator) -> None:
    """JPEG quality 90; some stored sideways with the EXIF tag that turns them upright."""
    exif = Image.Exif()
    if rng.random() < EXIF_SHARE:
        orientation = int(rng.choice(list(STORED_AS)))
        img = img.transpose(STORED_AS[orientation])
        exif[ORIENTATION] = orientation
    img.save(path, "JPEG", quality=90, exif=exif.tobytes())


_BANK: np.ndarray | None = None


def _init_worker(seed: int) -> None:
    global _BANK
    _BANK = noise_bank(seed)


def _make_one(spec: PhotoSpec) -> int:
    assert _BANK is not None
    img = render(spec, _BANK)
    save_photo(img, spec.path, np.random.default_rng([*spec.seed, 1]))
    return img.width * img.height


def plan(dest: Path, per_class: int, seed: int, sizes: str) -> list[PhotoSpec]:
    specs = []
    for c, kind in enumerate(CLASSES):
        folder = dest / kind
        folder.mkdir(parents=True, exist_ok=True)
        specs += [
            PhotoSpec(folder / f"IMG_{i:04d}.jpg", kind, (seed, c, i), sizes)
            for i in range(per_class)
        ]
    return specs


def make_photos(
    dest: str | Path,
    *,
    per_class: int = 200,
    seed: int = 0,
    sizes: str = "mixed",
    workers: int | None = None,
) -> Path:
    """Write ``per_class`` photos of each class into ``dest``/<class>/ and return ``dest``.

    ``sizes`` names one of SIZE_MIXES.
    """
    dest = Path(dest)
    specs = plan(dest, per_class, seed, sizes)
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(seed,)) as pool:
        list(pool.map(_make_one, specs, chunksize=4))
    return dest


def generate(dest: Path, *, per_class: int, seed: int, sizes: str = "mixed") -> Path:
    """make_photos, then print what was written and how long it took."""
    t0 = time.perf_counter()
    make_photos(dest, per_class=per_class, seed=seed, sizes=sizes)
    files = sorted(dest.rglob("*.jpg"))
    mib = sum(f.stat().st_size for f in files) / 2**20
    print(
        f"generated {len(files)} photos ({sizes} sizes, {mib:.0f} MiB) in {dest} "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return dest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="folder to write <class>/IMG_*.jpg into")
    parser.add_argument("--per-class", type=int, default=200, help="images per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sizes",
        choices=sorted(SIZE_MIXES),
        default="mixed",
        help="mixed: 640x480 to 12 MP camera photos; web: 640x480 to 1024x768; "
        "small: about 500x375, as in public pet and bird datasets",
    )
    args = parser.parse_args(argv)
    generate(args.dest, per_class=args.per_class, seed=args.seed, sizes=args.sizes)


if __name__ == "__main__":
    main()
