"""Patients, not files: group keys, the stratified group split, leakage across split folders,
identifier-like names."""

from __future__ import annotations

import random
from collections import Counter

import pydicom
import pytest
from data_fixtures import image, save
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from engine.config import ConfigError, DataConfig, RunConfig
from engine.data import Sample, scan_folder, split_samples
from engine.data.groups import (
    GroupSpecError,
    attach_groups,
    check_groups,
    group_key_from_dicom,
    hash_group,
    parse_group_by,
)
from engine.data.index import DatasetIndex, split_group_counts
from engine.data.problems import ProblemKind
from engine.data.split import _carve


def _index(samples: list[Sample], classes=("a", "b", "c"), has_splits=False) -> DatasetIndex:
    return DatasetIndex(
        root="/data", classes=classes, samples=tuple(samples), problems=(), has_splits=has_splits
    )


def _patients(seed: int, n_patients: int = 40) -> list[Sample]:
    """Patients with 1-6 images each; most have one class, some span two."""
    rng = random.Random(seed)
    out = []
    for p in range(n_patients):
        labels = [rng.randrange(3)] if rng.random() < 0.8 else rng.sample(range(3), 2)
        for k in range(rng.randint(1, 6)):
            out.append(
                Sample(
                    path=f"/data/p{p}_{k}.png",
                    label=labels[k % len(labels)],
                    split=None,
                    digest=f"{seed}-{p}-{k}",
                    group=hash_group("s", f"P{p}"),
                )
            )
    return out


def _sides(splits) -> dict[str, set[str]]:
    return {name: {s.group for s in getattr(splits, name)} for name in ("train", "val", "test")}


@pytest.mark.parametrize("seed", range(12))
def test_a_group_never_lands_on_two_sides(seed):
    samples = _patients(seed)
    splits = split_samples(_index(samples), val_fraction=0.2, test_fraction=0.15, seed=seed)
    sides = _sides(splits)
    assert not sides["train"] & sides["val"]
    assert not sides["train"] & sides["test"]
    assert not sides["val"] & sides["test"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(samples)
    assert splits.val and splits.test


def test_per_class_shares_stay_close_to_the_fractions():
    for seed in range(5):
        samples = _patients(seed, n_patients=120)
        splits = split_samples(_index(samples), val_fraction=0.2, test_fraction=0.1, seed=seed)
        total = Counter(s.label for s in samples)
        for name, fraction in (("val", 0.2), ("test", 0.1)):
            got = Counter(s.label for s in getattr(splits, name))
            for label, n in total.items():
                # Whole patients of up to six images move at once: within about one patient.
                assert abs(got[label] - n * fraction) <= 5, (seed, name, label, got, n)


def test_group_split_is_deterministic_and_seeded():
    samples = _patients(3)
    first = split_samples(_index(samples), val_fraction=0.25, seed=7)
    again = split_samples(_index(list(samples)), val_fraction=0.25, seed=7)
    other = split_samples(_index(samples), val_fraction=0.25, seed=8)
    assert first == again
    assert {s.path for s in first.val} != {s.path for s in other.val}


def test_copies_of_one_image_under_two_groups_go_together():
    samples = _patients(1)
    twin = Sample(path="/data/twin.png", label=0, split=None, digest=samples[0].digest, group="x")
    splits = split_samples(_index([*samples, twin]), val_fraction=0.3, seed=0)
    where = {s.path: name for name in ("train", "val", "test") for s in getattr(splits, name)}
    assert where["/data/twin.png"] == where[samples[0].path]


def test_without_groups_the_split_is_the_old_one():
    rng = random.Random(0)
    samples = [
        Sample(path=f"/d/{i}.png", label=rng.randrange(3), split=None, digest=f"h{i % 50}")
        for i in range(80)
    ]
    new = split_samples(_index(samples), val_fraction=0.2, test_fraction=0.1, seed=4)
    assert new == _carve(samples, 0.2, 0.1, 4)


def test_group_counts_give_images_and_patients_per_split():
    samples = [
        Sample(path="/d/1", label=0, split=None, digest="1", group="g1"),
        Sample(path="/d/2", label=0, split=None, digest="2", group="g1"),
        Sample(path="/d/3", label=1, split=None, digest="3", group="g1"),
        Sample(path="/d/4", label=1, split=None, digest="4", group=None),
    ]
    counts = split_group_counts({"train": samples}, ("a", "b"))
    assert counts == {"train": {"a": {"images": 2, "groups": 1}, "b": {"images": 2, "groups": 2}}}


def test_parse_group_by_says_what_is_wrong():
    assert parse_group_by("") == ("", None)
    assert parse_group_by("dicom")[0] == "dicom"
    source, pattern = parse_group_by(r"pattern:(P\d+)_")
    assert source == "pattern" and pattern is not None
    with pytest.raises(GroupSpecError, match="capture group"):
        parse_group_by(r"pattern:P\d+_")
    with pytest.raises(GroupSpecError, match="not a valid regular expression"):
        parse_group_by("pattern:(P")
    with pytest.raises(GroupSpecError, match="use ''"):
        parse_group_by("patient")


def test_config_validates_group_by():
    RunConfig(data=DataConfig(path="x", group_by=r"pattern:(P\d+)")).validate()
    with pytest.raises(ConfigError, match="group_by"):
        RunConfig(data=DataConfig(path="x", group_by="nonsense")).validate()
    with pytest.raises(ConfigError, match="capture group"):
        RunConfig(data=DataConfig(path="x", group_by="pattern:P1")).validate()
    again = RunConfig.from_dict(RunConfig(data=DataConfig(group_by="dicom")).to_dict())
    assert again.data.group_by == "dicom"


def _patient_folder(root, layout):
    """``{split: {class: [patient ids]}}`` -> root/split/class/<patient>_<n>.png."""
    n = 0
    for split, classes in layout.items():
        for cls, patients in classes.items():
            for patient in patients:
                save(image(n), root / split / cls / f"{patient}_{n}.png")
                n += 1
    return root


def test_pattern_groups_are_salted_hashes_and_leakage_is_told(tmp_path):
    root = _patient_folder(
        tmp_path / "ds",
        {
            "train": {"a": ["P1", "P1", "P2"], "b": ["P3", "P4"]},
            "val": {"a": ["P1", "P5"], "b": ["P6"]},
        },
    )
    index = check_groups(scan_folder(root, workers=1), r"pattern:(P\d+)_")
    groups = {s.group for s in index.samples}
    assert None not in groups and len(groups) == 6
    assert all(len(g) == 12 and not g.startswith("P") for g in groups)
    leaks = [p for p in index.problems if p.kind is ProblemKind.GROUP_LEAKAGE]
    (leak,) = leaks
    assert "train and val" in leak.message
    assert "val/a/P1_" in leak.message and "train/a/P1_" in leak.message
    assert hash_group(f"refit-group:{root.name}", "P1") in leak.message
    # The same dataset folder under another parent hashes the same: the split does not move.
    moved = tmp_path / "elsewhere" / root.name
    moved.parent.mkdir()
    root.rename(moved)
    assert {
        s.group for s in check_groups(scan_folder(moved, workers=1), r"pattern:(P\d+)_").samples
    } == groups


def test_images_the_pattern_misses_get_one_warning(tmp_path):
    root = _patient_folder(tmp_path / "ds", {"": {"a": ["P1", "P2"], "b": ["x", "y"]}})
    index = attach_groups(scan_folder(root, workers=1), r"pattern:(P\d+)_")
    (missing,) = [p for p in index.problems if p.kind is ProblemKind.NO_GROUP]
    assert missing.message.startswith("2 images (")
    assert sum(s.group is None for s in index.samples) == 2


def _dicom(path, patient: str | None, study: str | None = None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    if patient is not None:
        ds.PatientID = patient
    if study is not None:
        ds.StudyInstanceUID = study
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(4)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_group_key_from_dicom_reads_the_header(tmp_path):
    assert group_key_from_dicom(_dicom(tmp_path / "a.dcm", "MRN123")) == "MRN123"
    assert group_key_from_dicom(_dicom(tmp_path / "b.dcm", None, "1.2.3.4")) == "1.2.3.4"
    assert group_key_from_dicom(_dicom(tmp_path / "c.dcm", None)) is None
    save(image(1), tmp_path / "d.png")
    assert group_key_from_dicom(tmp_path / "d.png") is None
    broken = tmp_path / "e.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    assert group_key_from_dicom(broken) is None
    assert group_key_from_dicom(tmp_path / "missing.dcm") is None


def test_identifier_like_names_give_one_warning(tmp_path):
    root = tmp_path / "ds"
    names = ["P123456_1980-03-14.png", "scan_19800314.png", "DOB_x.png", "plain_1.png"]
    for i, name in enumerate(names):
        save(image(i), root / "a" / name)
        save(image(10 + i), root / "b" / f"img_{i}.png")
    index = check_groups(scan_folder(root, workers=1))
    (named,) = [p for p in index.problems if p.kind is ProblemKind.IDENTIFIER_NAME]
    assert named.message.startswith("3 images have file or folder names")
    assert "P123456_1980-03-14.png" in named.message
    assert "plain_1" not in named.message and "img_" not in named.message


def test_plain_names_give_no_identifier_warning(tmp_path):
    root = _patient_folder(tmp_path / "ds", {"": {"a": ["P1", "P2"], "b": ["P3", "P4"]}})
    index = check_groups(scan_folder(root, workers=1))
    assert not [p for p in index.problems if p.kind is ProblemKind.IDENTIFIER_NAME]


def test_adding_a_class_leaves_the_other_classes_split_alone():
    samples = [s for s in _patients(5, n_patients=60) if s.label < 2]
    before = split_samples(_index(samples), val_fraction=0.2, seed=1)
    extra = [
        Sample(path=f"/data/new{i}.png", label=2, split=None, digest=f"n{i}", group=f"new{i // 2}")
        for i in range(20)
    ]
    after = split_samples(_index(samples + extra), val_fraction=0.2, seed=1)
    assert [s for s in after.val if s.label < 2] == list(before.val)
    assert any(s.label == 2 for s in after.val)


def _two_split_patients(tmp_path):
    return _patient_folder(
        tmp_path / "ds",
        {"train": {"a": ["P1", "P1", "P2"], "b": ["P3", "P4"]}, "val": {"a": ["P5"], "b": ["P6"]}},
    )


def test_refit_scan_group_by_counts_patients(tmp_path, capsys):
    from engine.cli import main

    root = _two_split_patients(tmp_path)
    assert main(["scan", str(root), "--group-by", r"pattern:(P\d+)_"]) == 0
    out = capsys.readouterr().out
    assert "train: 4 patients (groups), 5 images" in out
    assert "val: 2 patients (groups), 2 images" in out


@pytest.mark.slow  # the error path imports torch (the error sentence knows CUDA errors)
def test_refit_scan_refuses_a_bad_pattern_in_one_line(tmp_path, capsys):
    from engine.cli import main

    root = _two_split_patients(tmp_path)
    assert main(["scan", str(root), "--group-by", "pattern:P1"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("refit:")]
    assert len(lines) == 1 and "capture group" in lines[0]


def test_dicom_groups_of_a_scanned_index_and_a_fifo_is_not_opened(tmp_path):
    import os

    paths = [_dicom(tmp_path / f"{i}.dcm", f"PAT{i % 2}") for i in range(4)]
    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    assert group_key_from_dicom(fifo) is None  # returns at once: pipes are never read
    samples = [
        Sample(path=str(p), label=i % 2, split=None, digest=str(i)) for i, p in enumerate(paths)
    ]
    index = attach_groups(
        DatasetIndex(
            root=str(tmp_path),
            classes=("a", "b"),
            samples=tuple(samples),
            problems=(),
            has_splits=False,
        ),
        "dicom",
    )
    groups = [s.group for s in index.samples]
    assert groups[0] == groups[2] != groups[1] == groups[3]
    assert groups[0] == hash_group(f"refit-group:{tmp_path.name}", "PAT0")
    assert not index.problems
