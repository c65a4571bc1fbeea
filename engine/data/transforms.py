"""Image transforms for training (augmentation presets) and evaluation (resize, centre-crop)."""

from __future__ import annotations

import math

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from engine.config import AugmentPreset
from engine.data.intensity import PERCENTILE, IntensityStretch
from engine.data.view import EvalView
from engine.preprocess import Preprocess

_INTERPOLATION = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}

# Smallest share of the image area a random crop may take, per preset.
_CROP_SCALE = {
    AugmentPreset.LIGHT: (0.7, 1.0),
    AugmentPreset.STANDARD: (0.35, 1.0),
    AugmentPreset.STRONG: (0.2, 1.0),
}


class ImageTransform:
    """A picklable PIL image -> normalised float tensor transform.

    ``min_size`` is the short side an image needs so that no crop is upsampled; loaders pass it
    to ``load_image`` so that JPEGs can be decoded at a reduced scale. An evaluation transform is
    ``view`` (Pillow only: what the network sees) then ``finish`` (to a normalised tensor); a
    process without torch can make the view (engine/data/prefetch.py). ``dicom_window``: the
    window loaders decode DICOM files with (the backbone's Preprocess; None: the process's);
    ``dicom_frames``: how a prediction reads a multi-frame file (its middle frame, or "all").
    """

    def __init__(
        self,
        pipeline: v2.Compose,
        min_size: int,
        *,
        train: bool,
        view: EvalView | None = None,
        finish: v2.Compose | None = None,
        dicom_window: str | None = None,
        dicom_frames: str = "middle",
    ) -> None:
        self.pipeline = pipeline
        self.dicom_window = dicom_window
        self.dicom_frames = dicom_frames
        self.min_size = min_size
        self.train = train
        self.view = view
        self.finish = finish

    @classmethod
    def evaluation(
        cls,
        view: EvalView,
        finish: v2.Compose,
        *,
        train: bool,
        dicom_window: str | None = None,
        dicom_frames: str = "middle",
    ) -> ImageTransform:
        """``view`` then ``finish``: the whole pipeline is made of the two parts."""
        pipeline = v2.Compose([view, *finish.transforms])
        return cls(
            pipeline,
            view.resize,
            train=train,
            view=view,
            finish=finish,
            dicom_window=dicom_window,
            dicom_frames=dicom_frames,
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.pipeline(image)

    def __repr__(self) -> str:
        return f"ImageTransform(min_size={self.min_size}, train={self.train}, {self.pipeline!r})"


def build_transform(
    preprocess: Preprocess,
    *,
    train: bool,
    preset: AugmentPreset = AugmentPreset.LIGHT,
    hflip: bool = True,
    vflip: bool = False,
) -> ImageTransform:
    """The transform a backbone with ``preprocess`` needs; ``train`` adds the preset's
    augmentation (``none`` trains on the evaluation transform).

    An intensity stretch runs first, on the whole decoded image, so that its window does not
    depend on the random crop and training, evaluation and prediction see the same pixels."""
    preset = AugmentPreset(preset)
    interpolation = _INTERPOLATION.get(preprocess.interpolation, InterpolationMode.BILINEAR)
    size = preprocess.input_size
    head = [IntensityStretch()] if preprocess.intensity == PERCENTILE else []
    tail = [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(preprocess.mean), std=list(preprocess.std)),
    ]
    if not train or preset is AugmentPreset.NONE:
        view = EvalView(
            preprocess.resize_size,
            size,
            interpolation=preprocess.interpolation,
            stretch=preprocess.intensity == PERCENTILE,
        )
        return ImageTransform.evaluation(
            view,
            v2.Compose(tail),
            train=train,
            dicom_window=preprocess.dicom_window,
            dicom_frames=preprocess.dicom_frames,
        )

    scale = _CROP_SCALE[preset]
    steps = [
        *head,
        v2.RandomResizedCrop(size, scale=scale, interpolation=interpolation, antialias=True),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if vflip:
        steps.append(v2.RandomVerticalFlip())
    if preset is AugmentPreset.STANDARD:
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))
    if preset is AugmentPreset.STRONG:
        steps.append(v2.TrivialAugmentWide(interpolation=interpolation))
    steps.extend(tail)
    if preset is AugmentPreset.STRONG:
        steps.append(v2.RandomErasing(p=0.25))
    # A crop of the smallest area share spans about sqrt(scale) of the short side.
    min_size = math.ceil(size / math.sqrt(scale[0]))
    return ImageTransform(
        v2.Compose(steps), min_size, train=True, dicom_window=preprocess.dicom_window
    )
