"""Feeding a frozen pass: decoding threads give the loader's batches, in order, untouched RNG."""

from __future__ import annotations

import torch
from synthetic import make_shapes_folder
from torch.utils.data import ConcatDataset

from engine.data import ImageDataset, build_transform
from engine.data.scan import scan_folder
from engine.preprocess import Preprocess
from engine.training.loaders import decode_threads, deterministic, make_loader, threaded_batches

PRE = Preprocess(input_size=32)
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def shapes(tmp_path):
    return scan_folder(make_shapes_folder(tmp_path / "shapes", per_class=7)).samples


def test_threads_give_the_loaders_batches_in_order(tmp_path):
    data = shapes(tmp_path)
    clean = ImageDataset(data, build_transform(PRE, train=False))
    both = ConcatDataset([clean, ImageDataset(data[:5], build_transform(PRE, train=False))])
    loader, _ = make_loader(both, batch_size=4, seed=0, shuffle=False, workers=0, pin=False)
    expected = list(loader)
    got = list(threaded_batches(both, batch_size=4, threads=3))
    assert len(got) == len(expected) == 5  # 19 items
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)


def test_only_deterministic_cpu_passes_use_threads(tmp_path):
    data = shapes(tmp_path)
    clean = ImageDataset(data, build_transform(PRE, train=False))
    augmented = ImageDataset(data, build_transform(PRE, train=True), views=2)
    assert deterministic(clean) and deterministic(ConcatDataset([clean, clean]))
    assert not deterministic(augmented) and not deterministic(ConcatDataset([clean, augmented]))
    assert not deterministic(object())  # unknown datasets: processes, as before
    assert decode_threads(CPU, clean) > 0
    assert decode_threads(CPU, ConcatDataset([clean, augmented])) == 0
    assert decode_threads(CUDA, clean) == 0


def test_evaluation_items_leave_the_random_state_alone(tmp_path):
    data = shapes(tmp_path)
    clean = ImageDataset(data, build_transform(PRE, train=False))
    torch.manual_seed(11)
    before = torch.get_rng_state()
    list(threaded_batches(clean, batch_size=3, threads=4))
    assert torch.equal(torch.get_rng_state(), before)


def test_augmented_items_stay_reproducible(tmp_path):
    data = shapes(tmp_path)
    augmented = ImageDataset(data, build_transform(PRE, train=True), seed=5, views=2)
    first = augmented[9][0]
    torch.manual_seed(123)
    assert torch.equal(augmented[9][0], first)
