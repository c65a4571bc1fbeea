"""Near-duplicate images across splits: resized or re-encoded copies are reported, distinct
pictures are not."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import scan_folder, split_samples
from engine.data.groups import check_groups
from engine.data.leakage import close_pairs, dhash, near_duplicate_problems
from engine.data.problems import ProblemKind


def photo(seed: int, size: int = 96) -> Image.Image:
    """A smooth random colour field: textured like a photo, unlike any other seed's."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    return small.resize((size, size), Image.Resampling.BICUBIC)


def _folder(root, layout):
    """``{split: {class: [seeds]}}`` -> PNGs, one per seed."""
    for split, classes in layout.items():
        for cls, seeds in classes.items():
            for s in seeds:
                path = root / split / cls / f"img_{s}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                photo(s).save(path)
    return root


def test_a_resized_jpeg_copy_in_another_split_is_reported(tmp_path):
    root = _folder(
        tmp_path / "ds",
        {"train": {"a": [1, 2, 3], "b": [4, 5, 6]}, "val": {"a": [7, 8], "b": [9, 10]}},
    )
    photo(2).resize((150, 150)).save(root / "val" / "a" / "copy_of_2.jpg", quality=75)
    index = check_groups(scan_folder(root, workers=1))
    found = [p for p in index.problems if p.kind is ProblemKind.NEAR_DUPLICATE]
    assert len(found) == 1, [p.message for p in index.problems]
    message = found[0].message
    assert "train/a/img_2.png (train)" in message and "val/a/copy_of_2.jpg (val)" in message
    assert found[0].path.endswith("copy_of_2.jpg")
    # the run keeps what was found, as counts (its report says so; no name)
    assert index.leakage == {
        "split_folders": 1,
        "patients_across": 0,
        "near_duplicates_across": 1,
        "near_duplicates_kept_together": 0,
        "copies_left_out": 0,
    }


def test_copies_inside_one_split_and_distinct_pictures_are_not_reported(tmp_path):
    root = _folder(
        tmp_path / "ds",
        {"train": {"a": list(range(20)), "b": list(range(20, 40))}, "val": {"a": [40], "b": [41]}},
    )
    photo(3).resize((150, 150)).save(root / "train" / "a" / "copy_of_3.jpg", quality=75)
    index = check_groups(scan_folder(root, workers=1))
    assert not [p for p in index.problems if p.kind is ProblemKind.NEAR_DUPLICATE]


def test_a_split_the_app_makes_keeps_near_duplicates_on_one_side_without_groups(tmp_path):
    """No split folders and no patients: a re-encoded copy still never lands on the other side
    of the split from its original (it would be a copy of a training image in validation)."""
    root = _folder(tmp_path / "ds", {"": {"a": [1, 2, 5, 6], "b": [3, 4, 7, 8]}})
    photo(1).save(root / "b" / "same_as_1.jpg", quality=80)
    index = check_groups(scan_folder(root, workers=1))
    (notice,) = [p for p in index.problems if p.kind is ProblemKind.NEAR_DUPLICATE]
    assert "the split keeps each pair on one side" in notice.message
    assert len(index.twins) == 1 and {Path(p).name for p in index.twins[0]} == {
        "img_1.png",
        "same_as_1.jpg",
    }
    assert index.leakage is not None and index.leakage["split_folders"] == 0
    assert index.leakage["near_duplicates_kept_together"] == 1
    assert index.leakage["near_duplicates_across"] == 0
    for seed in range(6):
        split = split_samples(index, val_fraction=0.4, seed=seed)
        sides = {Path(s.path).name: side for side in ("train", "val") for s in getattr(split, side)}
        assert sides["img_1.png"] == sides["same_as_1.jpg"]


def test_dhash_survives_resizing_and_jpeg(tmp_path):
    original = photo(11)
    path = tmp_path / "x.jpg"
    original.resize((200, 200)).save(path, quality=60)
    assert bin(dhash(original) ^ dhash(Image.open(path))).count("1") <= 3
    assert bin(dhash(original) ^ dhash(photo(12))).count("1") > 10


@pytest.mark.parametrize("cells", [4_000_000, 1000])  # one block, and blocks of 5 rows
def test_close_pairs_matches_brute_force(monkeypatch, cells):
    import engine.data.leakage as leakage

    monkeypatch.setattr(leakage, "_BLOCK_CELLS", cells)
    rng = random.Random(0)
    a = np.array([rng.getrandbits(64) for _ in range(300)], dtype=np.uint64)
    b = np.array([rng.getrandbits(64) for _ in range(200)], dtype=np.uint64)
    b[5] = a[7] ^ np.uint64(0b1011)  # 3 bits apart
    b[9] = a[7]
    expected = sorted(
        (i, j, bin(int(x) ^ int(y)).count("1"))
        for i, x in enumerate(a)
        for j, y in enumerate(b)
        if bin(int(x) ^ int(y)).count("1") <= 12
    )
    assert sorted(close_pairs(a, b, 12)) == expected
    assert (7, 5, 3) in expected and (7, 9, 0) in expected


def test_many_pairs_are_summed_up(tmp_path, monkeypatch):
    import engine.data.leakage as leakage
    from engine.data.index import Sample

    monkeypatch.setattr(leakage, "MAX_REPORTED", 1)
    n_pairs = 3
    train, val = [], []
    for i in range(n_pairs):
        a, b = tmp_path / f"t{i}.png", tmp_path / f"v{i}.jpg"
        photo(i).save(a)
        photo(i).resize((120, 120)).save(b, quality=80)
        train.append(Sample(path=str(a), label=0, split="train", digest=f"a{i}"))
        val.append(Sample(path=str(b), label=0, split="val", digest=f"b{i}"))
    problems = near_duplicate_problems({"train": train, "val": val}, tmp_path)
    assert len(problems) == 2
    assert problems[1].message.startswith(f"{n_pairs - 1} more pairs of near-duplicate images")
    assert sum(p.count for p in problems) == n_pairs  # what a run's record counts


def test_near_duplicates_of_two_patients_stay_on_one_side_of_a_made_split(tmp_path):
    import dataclasses

    from engine.data import split_samples

    root = tmp_path / "ds"
    for p in range(12):
        for k in range(2):
            path = root / ("a" if p % 2 else "b") / f"P{p}_{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            photo(100 + 2 * p + k).save(path)
    copy = root / "a" / "P11_copy.jpg"
    photo(100).resize((140, 140)).save(copy, quality=80)  # P0's first image, filed under P11
    index = check_groups(scan_folder(root, workers=1), r"pattern:(P\d+)_")
    (notice,) = [p for p in index.problems if p.kind is ProblemKind.NEAR_DUPLICATE]
    assert notice.message.startswith("1 pair of images shows nearly the same picture (")
    assert "b/P0_0.png" in notice.message and "a/P11_copy.jpg" in notice.message
    original = str(root / "b" / "P0_0.png")
    apart = 0
    for seed in range(12):
        splits = split_samples(index, val_fraction=0.3, seed=seed)
        val = {s.path for s in splits.val}
        assert (original in val) == (str(copy) in val), seed
        plain = split_samples(dataclasses.replace(index, twins=()), val_fraction=0.3, seed=seed)
        plain_val = {s.path for s in plain.val}
        apart += (original in plain_val) != (str(copy) in plain_val)
    assert apart  # without the twins the two patients are split apart for some seeds
