"""split_samples: stratified, group-aware, deterministic; split folders are respected."""

from __future__ import annotations

from collections import Counter

import pytest
from data_fixtures import make_folder, make_split_folder

from engine.data import DatasetIndex, Sample, scan_folder, split_samples


def synthetic_index(counts: list[int], *, dup_every: int = 0) -> DatasetIndex:
    """An index built by hand; with ``dup_every`` k, every k-th sample repeats the digest of
    the sample before it (as copies or near-duplicates grouped by a future intake would)."""
    samples = []
    n = 0
    for label, count in enumerate(counts):
        for _ in range(count):
            digest = f"{n:032x}"
            if dup_every and n % dup_every == 1:
                digest = samples[-1].digest
            samples.append(
                Sample(path=f"/d/{label}/{n}.png", label=label, split=None, digest=digest)
            )
            n += 1
    return DatasetIndex(
        root="/d",
        classes=tuple(f"c{i}" for i in range(len(counts))),
        samples=tuple(samples),
        problems=(),
        has_splits=False,
    )


def labels(samples) -> Counter:
    return Counter(s.label for s in samples)


def test_stratified_split_is_exact_per_class_and_covers_everything():
    index = synthetic_index([50, 20, 10, 2])
    s = split_samples(index, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert labels(s.val) == {0: 10, 1: 4, 2: 2, 3: 1}
    assert labels(s.test) == {0: 5, 1: 2, 2: 1}
    assert sorted(s.train + s.val + s.test, key=lambda x: x.path) == sorted(
        index.samples, key=lambda x: x.path
    )
    assert not {x.path for x in s.train} & {x.path for x in s.val + s.test}


def test_every_class_with_two_images_gets_one_val_image_and_keeps_one_for_training():
    index = synthetic_index([2, 3, 40])
    s = split_samples(index, val_fraction=0.05)
    assert labels(s.val) == {0: 1, 1: 1, 2: 2}
    assert labels(s.train) == {0: 1, 1: 2, 2: 38}
    single = synthetic_index([1, 5])
    s = split_samples(single, val_fraction=0.4, test_fraction=0.4)
    assert labels(s.train)[0] == 1 and labels(s.train)[1] >= 1


def test_split_is_deterministic_for_a_seed_and_changes_with_it():
    index = synthetic_index([30, 30])
    a = split_samples(index, val_fraction=0.3, seed=7)
    assert a == split_samples(index, val_fraction=0.3, seed=7)
    assert a.val != split_samples(index, val_fraction=0.3, seed=8).val


def test_adding_images_to_one_class_does_not_reshuffle_the_others():
    small = synthetic_index([20, 20])
    grown = DatasetIndex(
        root="/d",
        classes=small.classes,
        problems=(),
        has_splits=False,
        samples=small.samples
        + tuple(
            Sample(path=f"/d/1/new{i}.png", label=1, split=None, digest=f"ff{i:030x}")
            for i in range(5)
        ),
    )
    before = split_samples(small, val_fraction=0.25)
    after = split_samples(grown, val_fraction=0.25)
    assert [x for x in before.val if x.label == 0] == [x for x in after.val if x.label == 0]


def test_copies_of_an_image_stay_in_one_split():
    index = synthetic_index([40, 40], dup_every=3)
    s = split_samples(index, val_fraction=0.3, test_fraction=0.2, seed=1)
    where = {}
    for split, part in (("train", s.train), ("val", s.val), ("test", s.test)):
        for x in part:
            assert where.setdefault(x.digest, split) == split
    assert s.val and s.test


def test_a_scanned_flat_folder_splits(tmp_path):
    index = scan_folder(make_folder(tmp_path / "d", {"a": 10, "b": 5}))
    s = split_samples(index, val_fraction=0.2)
    assert labels(s.val) == {0: 2, 1: 1} and not s.test


def test_split_folders_are_used_as_they_are(tmp_path):
    root = make_split_folder(
        tmp_path / "d",
        {
            "train": {"a": 6, "b": 6},
            "val": {"a": 2, "b": 1},
            "test": {"a": 1, "b": 1},
        },
    )
    index = scan_folder(root)
    s = split_samples(index, val_fraction=0.5, test_fraction=0.3)
    assert len(s.train) == 12 and len(s.val) == 3 and len(s.test) == 2
    assert {x.split for x in s.train} == {"train"} and {x.split for x in s.val} == {"val"}


def test_missing_val_folder_is_carved_from_train_and_test_only_on_request(tmp_path):
    root = make_split_folder(tmp_path / "d", {"train": {"a": 10, "b": 10}, "test": {"a": 2}})
    index = scan_folder(root)
    assert index.has_splits
    s = split_samples(index, val_fraction=0.2, test_fraction=0.3)
    assert labels(s.val) == {0: 2, 1: 2} and len(s.train) == 16
    assert len(s.test) == 2 and {x.split for x in s.test} == {"test"}
    root2 = make_split_folder(tmp_path / "e", {"train": {"a": 10, "b": 10}, "val": {"a": 2}})
    assert split_samples(scan_folder(root2), val_fraction=0.2).test == ()
    carved = split_samples(scan_folder(root2), val_fraction=0.2, test_fraction=0.1)
    assert labels(carved.test) == {0: 1, 1: 1} and len(carved.val) == 2


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.5)])
def test_bad_fractions_are_refused(val, test):
    with pytest.raises(ValueError, match="fraction"):
        split_samples(synthetic_index([4, 4]), val_fraction=val, test_fraction=test)
