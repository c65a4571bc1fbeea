"""Manifest CSV intake (file,label[,group][,split]): rows, groups, splits and each bad row's
sentence; a run trained from one keeps no raw group key."""

from __future__ import annotations

import json
import re

import pytest
from data_fixtures import image, save

import engine.data.manifest as manifest_module
from engine.cli import main
from engine.data import DatasetError, detect_modality, split_samples
from engine.data.manifest import read_manifest
from engine.data.manifest_scan import scan_image_source, scan_manifest
from engine.data.problems import ProblemKind

TINY = ["--backbone", "timm:test_efficientnet", "--no-pretrained", "--workers", "0"]


def _images(root, n: int, start: int = 0) -> list[str]:
    names = []
    for i in range(n):
        save(image(start + i, (24, 24)), root / "imgs" / f"img_{start + i:03d}.png")
        names.append(f"imgs/img_{start + i:03d}.png")
    return names


def _write(root, text: str):
    path = root / "manifest.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_manifest_lists_images_with_groups_and_is_detected_as_images(tmp_path):
    names = _images(tmp_path, 12)
    rows = [f"{n},{'cat' if i % 2 else 'dog'},MRN88{i // 3:04d}" for i, n in enumerate(names)]
    csv = _write(tmp_path, "file,label,group\n" + "\n".join(rows) + "\n")
    assert detect_modality(csv) == "image"
    index = scan_image_source(csv, min_per_class=2)
    assert index.classes == ("cat", "dog") and len(index.samples) == 12
    assert index.root == str(tmp_path)
    assert len({s.group for s in index.samples}) == 4
    assert not any("MRN" in (s.group or "") for s in index.samples)
    assert not any("MRN" in p.message for p in index.problems)
    splits = split_samples(index, val_fraction=0.25, seed=0)
    train, val = {s.group for s in splits.train}, {s.group for s in splits.val}
    assert train and val and not train & val


def test_a_text_table_is_still_text(tmp_path):
    csv = _write(tmp_path, "text,label\nhello,a\nworld,b\n")
    assert detect_modality(csv) == "text"


def test_split_column_gives_split_folders(tmp_path):
    names = _images(tmp_path, 8)
    splits = ["train", "train", "val", "test"] * 2
    rows = [
        f"{n},{'a' if i < 4 else 'b'},,{s}"
        for i, (n, s) in enumerate(zip(names, splits, strict=True))
    ]
    csv = _write(tmp_path, "file,label,group,split\n" + "\n".join(rows) + "\n")
    index = scan_manifest(csv)
    assert index.has_splits
    assert index.class_counts() == {
        "train": {"a": 2, "b": 2},
        "val": {"a": 1, "b": 1},
        "test": {"a": 1, "b": 1},
    }


def test_a_patient_in_two_split_values_is_leakage(tmp_path):
    names = _images(tmp_path, 8)
    sides = ["train", "train", "train", "val"] * 2
    rows = [
        f"{n},{'a' if i < 4 else 'b'},MRN4{i // 3},{s}"
        for i, (n, s) in enumerate(zip(names, sides, strict=True))
    ]
    csv = _write(tmp_path, "file,label,group,split\n" + "\n".join(rows) + "\n")
    index = scan_image_source(csv)
    leaks = [p for p in index.problems if p.kind is ProblemKind.GROUP_LEAKAGE]
    # MRN40: rows 0-2 (train); MRN41: rows 3 (val), 4-5 (train); MRN42: rows 6 (train), 7 (val).
    assert len(leaks) == 2
    assert all("train and val" in p.message and "MRN" not in p.message for p in leaks)


def test_each_bad_row_is_one_sentence_with_its_number(tmp_path):
    names = _images(tmp_path, 6)
    outside = tmp_path.parent / "outside.png"
    save(image(99), outside)
    (tmp_path / "notes.txt").write_text("x")
    csv = _write(
        tmp_path,
        "file,label,split\n"
        + "\n".join(f"{n},{'a' if i < 3 else 'b'}," for i, n in enumerate(names))
        + f"\n../outside.png,a,\n{outside},b,\n{names[0]},a,\n{names[1]},a,holdout\n"
        "missing.png,a,\n,a,\nnotes.txt,b,\n" + f"{names[2]},,\n",
    )
    index = scan_manifest(csv)
    messages = [p.message for p in index.problems if p.kind is ProblemKind.MANIFEST]
    expected = {
        8: "points outside the CSV's folder (../outside.png)",
        9: "points outside the CSV's folder",
        10: f"lists {names[0]} again (first in row 2)",
        11: "has the split 'holdout', which is not train, val or test",
        12: "names missing.png, which does not exist",
        13: "has no file",
        14: "names notes.txt, which is not an image file",
        15: f"has no label for {names[2]}",
    }
    assert len(messages) == len(expected)
    for row, text in expected.items():
        assert any(m.startswith(f"Row {row} of manifest.csv ") and text in m for m in messages), (
            row,
            messages,
        )
    assert len(index.samples) == 6


def test_a_link_pointing_out_of_the_folder_is_refused(tmp_path):
    _images(tmp_path, 4)
    outside = tmp_path.parent / "secret.png"
    save(image(50), outside)
    (tmp_path / "imgs" / "link.png").symlink_to(outside)
    csv = _write(tmp_path, "file,label\nimgs/link.png,a\n")
    (problem,) = read_manifest(csv).problems
    assert "points outside the CSV's folder" in problem.message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("path,label\nx.png,a\n", "has no 'file' column (its first row reads: path, label)"),
        ("file,class\nx.png,a\n", "has no 'label' column"),
        ("", "has no 'file' column"),
    ],
)
def test_a_manifest_without_its_columns_is_one_sentence(tmp_path, text, needle):
    csv = _write(tmp_path, text)
    with pytest.raises(DatasetError, match="file,label") as info:
        read_manifest(csv)
    assert needle in str(info.value)


def test_huge_and_binary_manifests_are_refused(tmp_path, monkeypatch):
    csv = _write(tmp_path, "file,label\n" + "imgs/x.png,a\n" * 100)
    monkeypatch.setattr(manifest_module, "MANIFEST_LIMIT", 256)
    with pytest.raises(DatasetError, match="is larger than"):
        read_manifest(csv)
    monkeypatch.undo()
    monkeypatch.setattr(manifest_module, "MAX_ROWS", 10)
    with pytest.raises(DatasetError, match="more than 10 rows"):
        read_manifest(csv)
    csv.write_bytes(b"file,label\n\xff\xfe\x00garbage\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_manifest(csv)


def test_a_manifest_of_one_label_says_so(tmp_path):
    names = _images(tmp_path, 4)
    csv = _write(tmp_path, "file,label\n" + "\n".join(f"{n},a" for n in names) + "\n")
    fatal = scan_manifest(csv).fatal_problem()
    assert fatal is not None and "only one class" in fatal.message
    assert "manifest" in fatal.message and "folder" not in fatal.message.split(";")[0]


def test_refit_scan_counts_patients_per_split(tmp_path, capsys):
    names = _images(tmp_path, 12)
    rows = [
        f"{n},{'cat' if i % 2 else 'dog'},MRN77{i // 2:04d},{'val' if i >= 8 else 'train'}"
        for i, n in enumerate(names)
    ]
    csv = _write(tmp_path, "file,label,group,split\n" + "\n".join(rows) + "\n")
    assert main(["scan", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "train: 4 patients (groups), 8 images" in out
    assert "val: 2 patients (groups), 4 images" in out
    assert "MRN77" not in out
    assert main(["scan", str(csv), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["groups"]["val"]["cat"] == {"images": 2, "groups": 2}


def test_refit_scan_previews_the_default_group_split(tmp_path, capsys):
    names = _images(tmp_path, 20)
    rows = [f"{n},{'cat' if i % 2 else 'dog'},MRN66{i // 2:04d}" for i, n in enumerate(names)]
    csv = _write(tmp_path, "file,label,group\n" + "\n".join(rows) + "\n")
    assert main(["scan", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "all: 10 patients (groups), 20 images" in out
    assert "split a run makes by default (val 20%, seed 0; each patient on one side)" in out
    train = re.search(r"train: (\d+) patients \(groups\), (\d+) images", out)
    val = re.search(r"val: (\d+) patients \(groups\), (\d+) images", out)
    assert train and val
    assert int(train[1]) + int(val[1]) == 10 and int(train[2]) + int(val[2]) == 20
    assert int(val[2]) == 4  # 20% of each class: two cats, two dogs, from whole patients


@pytest.mark.slow
def test_a_run_trained_from_a_manifest_keeps_no_raw_group_key(tmp_path, capsys):
    data = tmp_path / "data"
    names = _images(data, 24)
    rows = [f"{n},{'cat' if i % 2 else 'dog'},MRN55{i // 3:04d}" for i, n in enumerate(names)]
    csv = _write(data, "file,label,group\n" + "\n".join(rows) + "\n")
    ws = tmp_path / "ws"
    code = main(
        [
            "--workspace",
            str(ws),
            "train",
            str(csv),
            *TINY,
            "--group-by",
            "manifest",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    written = [p for p in ws.rglob("*") if p.is_file()]
    assert any(p.name == "splits.json" for p in written)
    for path in written:
        assert b"MRN55" not in path.read_bytes(), path
    splits = json.loads(next(p for p in written if p.name == "splits.json").read_text())
    by_patient: dict[str, set[str]] = {}
    for side in ("train", "val"):
        for row in splits[side]:
            number = int(row[0].rsplit("_", 1)[1].split(".")[0])
            by_patient.setdefault(f"MRN55{number // 3:04d}", set()).add(side)
    assert by_patient and all(len(sides) == 1 for sides in by_patient.values())
    assert "MRN55" not in out + err
