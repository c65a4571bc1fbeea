"""The evaluation view in Pillow alone (engine/data/view.py) makes the pixels torchvision's
Resize + CenterCrop make, so the prefetching child (no torch) and the run see the same image."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from engine.data import build_transform
from engine.data.intensity import PERCENTILE, IntensityStretch
from engine.data.view import EvalView
from engine.preprocess import Preprocess

_MODES = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
SIZES = [
    (500, 375), (375, 500), (256, 256), (257, 300), (100, 80), (80, 300), (224, 224),
    (225, 1000), (1000, 225), (300, 301), (1, 1), (3, 500), (223, 500), (4000, 3000),
]  # fmt: skip
# (resize, crop): the usual crop_pct 0.875, none, and resizes below the crop (padding).
GEOMETRIES = [(256, 224), (224, 224), (200, 224), (255, 224), (293, 256), (37, 32)]


def _torchvision(image: Image.Image, resize: int, crop: int, interpolation: str) -> Image.Image:
    steps = [v2.Resize(resize, interpolation=_MODES[interpolation], antialias=True)]
    return v2.Compose([*steps, v2.CenterCrop(crop)])(image)


@pytest.mark.slow
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_the_view_is_torchvisions_resize_and_centre_crop_pixel_for_pixel(interpolation) -> None:
    rng = np.random.default_rng(0)
    for width, height in SIZES:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for resize, crop in GEOMETRIES:
            want = _torchvision(image, resize, crop, interpolation)
            got = EvalView(resize, crop, interpolation)(image)
            assert got.size == want.size == (crop, crop), (width, height, resize, crop)
            assert np.array_equal(np.asarray(got), np.asarray(want)), (width, height, resize, crop)


def test_the_stretch_comes_first_as_in_the_run_transform() -> None:
    dark = np.random.default_rng(1).integers(10, 40, (90, 120, 3), dtype=np.uint8)
    image = Image.fromarray(dark)
    got = EvalView(37, 32, "bilinear", stretch=True)(image)
    want = _torchvision(IntensityStretch()(image), 37, 32, "bilinear")
    assert np.array_equal(np.asarray(got), np.asarray(want))
    assert np.asarray(got).max() > 200  # stretched: not the dark pixels it was given


@pytest.mark.parametrize("intensity", ["off", PERCENTILE])
def test_the_eval_transform_is_its_view_then_its_finish(intensity) -> None:
    pre = Preprocess(input_size=32, interpolation="bicubic", intensity=intensity)
    transform = pickle.loads(pickle.dumps(build_transform(pre, train=False)))
    assert transform.view == EvalView(37, 32, "bicubic", stretch=intensity == PERCENTILE)
    image = Image.fromarray(np.random.default_rng(2).integers(0, 90, (70, 50, 3), np.uint8))
    assert torch.equal(transform(image), transform.finish(transform.view(image)))
    old = v2.Compose(
        [
            *([IntensityStretch()] if intensity == PERCENTILE else []),
            v2.Resize(37, interpolation=InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(32),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(pre.mean), std=list(pre.std)),
        ]
    )
    assert torch.equal(transform(image), old(image))  # the transform of earlier releases
    assert build_transform(pre, train=True).view is None  # augmentation has no fixed view
