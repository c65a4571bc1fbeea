"""A torch Dataset over scanned samples with augmentation that is reproducible per item."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from engine.data import prefetch
from engine.data.images import load_image, window_of
from engine.data.index import Sample


class ImageDataset(Dataset):
    """Images of ``samples`` through ``transform``, ``views`` times over.

    Item ``i`` is sample ``i % len(samples)``, view ``i // len(samples)``. The random draws of
    the transform depend only on (seed, epoch, sample index, view), so batches are the same
    whatever the number of DataLoader workers or the order items are fetched in. A file that
    fails to load raises ImageError naming it.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Callable[[Any], torch.Tensor],
        *,
        seed: int = 0,
        views: int = 1,
    ) -> None:
        if views < 1:
            raise ValueError(f"views is {views}; it must be at least 1.")
        self.samples = tuple(samples)
        self.transform = transform
        self.seed = int(seed)
        self.views = int(views)
        self.epoch = 0
        self.min_size: int | None = getattr(transform, "min_size", None)
        #: The DICOM window of the run (its transform's), passed to every decode: nothing
        #: process-wide, so spawned DataLoader workers and other runs' threads agree.
        self.dicom_window: str = window_of(transform)
        #: Whether the transform draws random numbers (an evaluation transform does not; items
        #: can then be made in several threads at once).
        self.random = bool(getattr(transform, "train", True))
        #: The Pillow part of an evaluation transform (engine/data/view.py), if it has one.
        self.view = getattr(transform, "view", None)

    def set_epoch(self, epoch: int) -> None:
        """Draw the augmentation of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples) * self.views

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} is out of range for {len(self)} items")
        index, view = i % n, i // n
        sample = self.samples[index]
        if not self.random and self.view is not None:
            # Made by `refit train`'s prefetching child while this process started.
            seen = prefetch.take_view(sample.path, self.view, self.dicom_window)
            if seen is not None:
                finish = cast(Any, self.transform).finish  # an evaluation transform has one
                return finish(seen), sample.label
        image = prefetch.take_image(sample.path, self.min_size, self.dicom_window) or load_image(
            sample.path, min_size=self.min_size, window=self.dicom_window
        )
        if not self.random:
            return self.transform(image), sample.label
        # Only the CPU generator is reseeded (torch.manual_seed would also queue a reseed of
        # every CUDA generator) and it is restored, so the caller's random stream is untouched
        # when there are no worker processes.
        generator = torch.default_generator
        state = generator.get_state()
        try:
            generator.manual_seed(item_seed(self.seed, self.epoch, index, view))
            x = self.transform(image)
        finally:
            generator.set_state(state)
        return x, sample.label


def item_seed(seed: int, epoch: int, index: int, view: int) -> int:
    """A well-mixed 63-bit seed for one (seed, epoch, sample index, view)."""
    key = struct.pack("<4q", seed, epoch, index, view)
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
