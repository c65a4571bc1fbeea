"""The evaluation view of an image in Pillow alone: the pixels a network sees before they become a
tensor, made by a process that has not imported torch (engine/data/prefetch.py).

Pixel for pixel what torchvision's ``v2.Resize(resize)`` then ``v2.CenterCrop(crop)`` make of a
PIL image (both call Pillow; tested against them, padding included), after the optional
percentile intensity stretch (engine/data/intensity.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.data.intensity import IntensityStretch

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class EvalView:
    """PIL image -> its short side resized to ``resize``, then its centre ``crop`` pixels square.

    ``stretch``: the image's luma window is stretched first (a run's resolved intensity
    "percentile"). Picklable for DataLoader workers; equal views make equal pixels."""

    resize: int
    crop: int
    interpolation: str = "bilinear"
    stretch: bool = False

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.stretch:
            image = IntensityStretch()(image)
        return centre_crop(resize_short_side(image, self.resize, self.interpolation), self.crop)


def resize_short_side(image: Image.Image, size: int, interpolation: str) -> Image.Image:
    """The short side to ``size``, the long side in proportion and rounded down (torchvision's
    rule); the image itself when that is its size."""
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new = (size, new_long) if width <= height else (new_long, size)
    if new == (width, height):
        return image
    return image.resize(new, resample=_RESAMPLE.get(interpolation, Image.Resampling.BILINEAR))


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The centre ``size`` x ``size`` pixels; a side shorter than ``size`` is padded with black
    first, the extra pixel of an odd padding going right or down (torchvision's rule)."""
    width, height = image.size
    if size > width or size > height:
        left = (size - width) // 2 if size > width else 0
        top = (size - height) // 2 if size > height else 0
        padded = Image.new(image.mode, (max(width, size), max(height, size)), 0)
        padded.paste(image, (left, top))
        image = padded
        width, height = image.size
        if (width, height) == (size, size):
            return image
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def normalised_batch(
    images: list[Image.Image], mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """RGB views as the float32 NCHW batch a network takes: what torchvision's ``ToImage``,
    ``ToDtype(float32, scale=True)`` and ``Normalize(mean, std)`` make of them, the same
    float32 operations in the same order (equal bits, tested), without torch."""
    pixels = np.stack([np.asarray(image, dtype=np.uint8) for image in images])  # N, H, W, C
    x = pixels.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1.0 / 255)
    shape = (1, len(mean), 1, 1)
    x -= np.asarray(mean, dtype=np.float32).reshape(shape)
    x /= np.asarray(std, dtype=np.float32).reshape(shape)
    return np.ascontiguousarray(x)
