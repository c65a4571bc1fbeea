"""Dataset intake: scanning labeled images or texts, their problems, splits, loading, transforms.

Scanning and splitting need no torch: ``ImageDataset``, ``ImageTransform`` and
``build_transform`` are imported on first use, so ``from engine.data import scan_folder`` stays
fast (torch and torchvision take seconds to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.data.images import IMAGE_EXTENSIONS, load_image
from engine.data.index import DatasetIndex, Sample
from engine.data.modality import detect_modality
from engine.data.problems import (
    DatasetError,
    ImageError,
    Problem,
    ProblemKind,
)
from engine.data.scan import scan_folder
from engine.data.split import Splits, split_samples
from engine.data.text import TextIndex, TextSample, scan_text_source, split_text_samples
from engine.lazy import lazy_getattr

if TYPE_CHECKING:
    from engine.data.dataset import ImageDataset
    from engine.data.transforms import ImageTransform, build_transform

_LAZY = {
    "ImageDataset": "engine.data.dataset",
    "ImageTransform": "engine.data.transforms",
    "build_transform": "engine.data.transforms",
}

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "DatasetIndex",
    "ImageDataset",
    "ImageError",
    "ImageTransform",
    "Problem",
    "ProblemKind",
    "Sample",
    "Splits",
    "TextIndex",
    "TextSample",
    "build_transform",
    "detect_modality",
    "load_image",
    "scan_folder",
    "scan_text_source",
    "split_samples",
    "split_text_samples",
]


__getattr__ = lazy_getattr(__name__, _LAZY)
