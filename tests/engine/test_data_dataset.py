"""ImageDataset and transforms: reproducible augmentation, workers, and a read-only dataset."""

from __future__ import annotations

import pickle

import pytest
import torch
from data_fixtures import make_folder, save
from PIL import Image
from synthetic import make_shapes_folder, tree_snapshot
from torch.utils.data import DataLoader

from engine.config import AugmentPreset
from engine.data import (
    ImageDataset,
    ImageError,
    build_transform,
    load_image,
    scan_folder,
    split_samples,
)
from engine.preprocess import Preprocess

PRE = Preprocess(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = make_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=6, size=48)
    return scan_folder(root)


@pytest.mark.parametrize("preset", list(AugmentPreset))
def test_every_preset_gives_normalised_tensors_and_pickles(preset):
    image = Image.effect_noise((60, 40), 50).convert("RGB")
    for train in (False, True):
        t = build_transform(PRE, train=train, preset=preset, vflip=True)
        x = pickle.loads(pickle.dumps(t))(image)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert t.min_size >= PRE.resize_size - 1


def test_eval_transform_is_resize_and_centre_crop():
    t = build_transform(PRE, train=False)
    assert t.min_size == PRE.resize_size == 37
    white = Image.new("RGB", (80, 50), (255, 255, 255))
    assert torch.allclose(t(white), torch.full((3, 32, 32), 2.0))
    # Stronger crops need more pixels so that a small crop is not upsampled.
    sizes = [
        build_transform(PRE, train=True, preset=p).min_size
        for p in (AugmentPreset.LIGHT, AugmentPreset.STANDARD, AugmentPreset.STRONG)
    ]
    assert sizes == sorted(sizes) and sizes[-1] == 72  # ceil(32 / sqrt(0.2))


def test_same_item_twice_is_identical_and_the_global_rng_is_untouched(shapes):
    t = build_transform(PRE, train=True, preset=AugmentPreset.STRONG)
    ds = ImageDataset(shapes.samples, t, seed=5)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    x1, y1 = ds[3]
    x2, y2 = ds[3]
    assert torch.equal(x1, x2) and y1 == y2 == shapes.samples[3].label
    assert torch.equal(torch.rand(3), expected_next)


def test_epochs_views_and_seeds_change_the_augmentation(shapes):
    t = build_transform(PRE, train=True, preset=AugmentPreset.STANDARD)
    ds = ImageDataset(shapes.samples, t, seed=0, views=3)
    n = len(shapes.samples)
    assert len(ds) == 3 * n
    first = ds[1][0]
    assert not torch.equal(first, ds[1 + n][0])  # another view of the same sample
    assert ds[1 + n][1] == ds[1][1]
    ds.set_epoch(1)
    assert not torch.equal(first, ds[1][0])
    ds.set_epoch(0)
    assert torch.equal(first, ds[1][0])
    assert not torch.equal(first, ImageDataset(shapes.samples, t, seed=1)[1][0])
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_batches_are_the_same_with_and_without_worker_processes(shapes):
    t = build_transform(PRE, train=True, preset=AugmentPreset.STRONG)

    def batches(workers: int) -> torch.Tensor:
        ds = ImageDataset(shapes.samples, t, seed=9)
        ds.set_epoch(2)
        loader = DataLoader(ds, batch_size=4, num_workers=workers, shuffle=False)
        return torch.cat([x for x, _ in loader])

    assert torch.equal(batches(0), batches(2))


def test_a_file_that_changed_after_the_scan_raises_image_error(tmp_path):
    index = scan_folder(make_folder(tmp_path / "d", {"a": 2, "b": 2}))
    (tmp_path / "d" / "a" / "img_000.png").write_bytes(b"")
    ds = ImageDataset(index.samples, build_transform(PRE, train=False))
    with pytest.raises(ImageError, match=r"img_000\.png is empty"):
        ds[0]
    assert ds[1][0].shape == (3, 32, 32)


def test_the_dataset_folder_is_never_written(tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=6, size=40, splits={"train": 4, "val": 2})
    save(Image.new("RGB", (900, 700), (10, 20, 30)), root / "train" / "circle" / "photo.jpg")
    (root / "train" / "square" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("hello")
    before = tree_snapshot(root)
    index = scan_folder(root, workers=2)
    splits = split_samples(index, val_fraction=0.2, test_fraction=0.1)
    for train, part in ((True, splits.train), (False, splits.val)):
        ds = ImageDataset(part, build_transform(PRE, train=train), seed=1)
        list(DataLoader(ds, batch_size=4, num_workers=0))
    load_image(root / "train" / "circle" / "photo.jpg", min_size=64)
    assert tree_snapshot(root) == before
