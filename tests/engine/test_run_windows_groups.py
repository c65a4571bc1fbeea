"""Each run decodes DICOM files with its own window (nothing process-wide), and a run split by
patient says so: patients per split in its log and summary, bootstrap intervals over patients."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dicom_synth import dicom_class_folder, disc_slice, write_dicom

import engine.data.images as images_module
from engine.data import Sample, load_image, scan_folder
from engine.data.dicom import DEFAULT_WINDOW

REPO = Path(__file__).resolve().parents[2]
BACKBONE = "timm:test_efficientnet"


@pytest.fixture
def decoded_windows(monkeypatch):
    """The window of every DICOM decode from now on, in order."""
    seen: list[str | None] = []
    real = images_module.decode_dicom

    def spy(data, name, *, window=None):
        seen.append(window)
        return real(data, name, window=window)

    monkeypatch.setattr(images_module, "decode_dicom", spy)
    return seen


# -- the window travels explicitly ----------------------------------------------------------------


def test_nothing_sets_a_process_wide_window():
    import engine.data.dicom as dicom

    assert DEFAULT_WINDOW == "file"
    for name in ("set_default_window", "default_window_set", "default_window", "_window"):
        assert not hasattr(dicom, name), name
    setter = re.compile(r"\b(set_default_window|default_window_set|default_window)\s*\(")
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("engine", "desktop")
        for path in (REPO / folder).rglob("*.py")
        if setter.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_scan_decodes_with_the_window_it_is_given(tmp_path, decoded_windows):
    root = dicom_class_folder(tmp_path / "data", per_class=3)
    scan_folder(root, workers=1, window="bone")
    assert decoded_windows == ["bone"] * 6
    decoded_windows.clear()
    scan_folder(root, workers=2)  # none given: the file's own, whatever ran before
    assert decoded_windows == ["file"] * 6


def test_a_runs_scan_uses_its_configs_window(tmp_path, decoded_windows):
    from engine.config import RunConfig
    from engine.modalities.image import IMAGE

    root = dicom_class_folder(tmp_path / "data", per_class=3)
    for window in ("lung", "bone", "lung"):
        decoded_windows.clear()
        cfg = RunConfig.from_dict({"data": {"path": str(root), "dicom_window": window}})
        index = IMAGE.scan_for_run(cfg, task=None)
        assert len(index.samples) == 6
        # Every decode of the run's scan (the scan's own, and the near-duplicate fingerprints
        # of a split still to be made) uses the run's window.
        assert len(decoded_windows) >= 6 and set(decoded_windows) == {window}


# -- groups in splits.json, patients per split --------------------------------------------------


def test_split_rows_keep_the_group_hash_and_read_old_rows():
    from engine.modalities.image import IMAGE

    grouped = Sample(path="/d/a/1.png", label=1, split="val", digest="ab", group="0123456789ab")
    plain = Sample(path="/d/a/2.png", label=0, split="val", digest="cd")
    rows = IMAGE.rows([grouped, plain])
    assert rows == [["/d/a/1.png", 1, "ab", "0123456789ab"], ["/d/a/2.png", 0, "cd"]]
    assert IMAGE.samples(json.loads(json.dumps(rows)), "val") == (grouped, plain)
    with pytest.raises(ValueError, match="2 items"):
        IMAGE.samples([["/d/a/3.png", 0]], "val")


def test_patients_per_split_count_groups_and_lone_images():
    from engine.training.patients import patients_sentence, split_patients

    def s(group, i):
        return Sample(path=f"/d/{i}.png", label=0, split=None, digest=str(i), group=group)

    data = SimpleNamespace(
        train=[s("g1", 0), s("g1", 1), s("g2", 2), s(None, 3)],
        val=[s("g3", 4)],
        test=[],
    )
    counts = split_patients(data)
    assert counts == {"train": {"patients": 3, "images": 4}, "val": {"patients": 1, "images": 1}}
    assert patients_sentence(counts) == (
        "Split by patient: 3 patients (4 images) train, 1 patient (1 image) validation."
    )
    assert split_patients(SimpleNamespace(train=[s(None, 0)], val=[s(None, 1)], test=[])) is None


def test_the_scan_counts_dicom_files_that_declare_themselves_deidentified(tmp_path):
    from PIL import Image
    from synthetic import make_shapes_folder

    from engine.training.patients import deidentified_sentence, dicom_record

    root = dicom_class_folder(tmp_path / "data", per_class=3)
    for i in range(2):  # two more, marked; and a PNG that is not DICOM at all
        write_dicom(
            root / "none" / f"marked{i}.dcm",
            disc_slice(50 + i, disc=False),
            bits_stored=12,
            intercept=-1024.0,
            PatientIdentityRemoved="YES",
        )
    Image.new("RGB", (8, 8), (9, 9, 9)).save(root / "disc" / "photo.png")
    index = scan_folder(root, workers=2)
    assert len(index.samples) == 9
    assert (index.dicom_files, index.dicom_deidentified) == (8, 2)
    record = dicom_record(index)
    assert record == {"files": 8, "declare_deidentified": 2}
    assert deidentified_sentence(record) == "2 of 8 DICOM files declare PatientIdentityRemoved=YES."
    photos = scan_folder(make_shapes_folder(tmp_path / "shapes", per_class=2), workers=1)
    assert photos.dicom_files == 0 and dicom_record(photos) is None


# -- whole runs -----------------------------------------------------------------------------------


def _train_cli(capsys, ws: str, root: Path, *extra: str) -> tuple[object, str]:
    """Train a linear probe with ``refit train``: (its RunDir, what it printed)."""
    from engine.cli import main
    from engine.runs import Workspace

    before = {r.run_id for r in Workspace(ws).list_runs()} if Path(ws).exists() else set()
    argv = ["--workspace", ws, "train", str(root), "--backbone", BACKBONE, "--no-pretrained"]
    argv += ["--workers", "0", "--method", "linear-probe", "--quiet", *extra]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    (info,) = [r for r in Workspace(ws).list_runs() if r.run_id not in before]
    return Workspace(ws).open_run(info.run_id), out


@pytest.mark.slow
def test_two_runs_with_different_windows_each_decode_their_own_pixels(
    tmp_path, capsys, decoded_windows
):
    from engine.evaluation.predict import Predictor
    from engine.evaluation.report import evaluate_run

    root = dicom_class_folder(tmp_path / "data", per_class=6)
    ws = str(tmp_path / "ws")
    lung_run, printed = _train_cli(capsys, ws, root, "--dicom-window", "lung")
    summary = json.loads((lung_run.path / "summary.json").read_text())
    assert summary["dicom"] == {"files": 12, "declare_deidentified": 0}
    # The training log's line and the end-of-run summary's.
    assert printed.count("0 of 12 DICOM files declare PatientIdentityRemoved=YES.") == 2
    bone_run, _ = _train_cli(capsys, ws, root, "--dicom-window", "bone")
    new = write_dicom(
        tmp_path / "new.dcm", disc_slice(999, disc=True), bits_stored=12, intercept=-1024.0
    )
    lung, bone = Predictor(lung_run), Predictor(bone_run)  # both open at once, as in the app

    decoded_windows.clear()
    (first,) = lung.predict([new])
    assert decoded_windows == ["lung"]
    decoded_windows.clear()
    evaluate_run(bone_run, reuse=False)  # the other run, in between
    assert decoded_windows and set(decoded_windows) == {"bone"}
    decoded_windows.clear()
    (again,) = lung.predict([new])
    assert decoded_windows == ["lung"] and again.top == first.top
    decoded_windows.clear()
    bone.predict([new])
    assert decoded_windows == ["bone"]

    # What the lung run predicted is its model on lung-windowed pixels, not on bone-windowed ones.
    import torch

    def probs_on(window: str) -> np.ndarray:
        image = load_image(new, min_size=lung.transform.min_size, window=window)
        return lung._probs(torch.stack([lung.transform(image)]))[0]

    top = dict(first.top)
    on_lung, on_bone = probs_on("lung"), probs_on("bone")
    assert [on_lung[lung.classes.index(c)] for c in top] == pytest.approx(list(top.values()))
    assert not np.allclose(on_lung, on_bone, atol=1e-6)
    decoded_windows.clear()
    evaluate_run(lung_run, reuse=False)
    assert decoded_windows and set(decoded_windows) == {"lung"}


def _patient_shapes(root: Path, patients_per_class: int = 8, images_each: int = 2) -> Path:
    """Drawn shapes, ``images_each`` per patient, named P<n>_<i>.png under their class."""
    from synthetic import make_shapes_folder

    per_class = patients_per_class * images_each
    make_shapes_folder(root, per_class=per_class)
    n = 0
    for cls in ("circle", "square"):
        for k, path in enumerate(sorted((root / cls).glob("*.png"))):
            patient = n + k // images_each
            path.rename(path.with_name(f"P{patient}_{k % images_each}.png"))
        n += patients_per_class
    return root


@pytest.mark.slow
def test_a_run_split_by_patient_counts_and_resamples_patients(tmp_path, capsys):
    from engine.cli import main

    root = _patient_shapes(tmp_path / "shapes")
    ws = str(tmp_path / "ws")
    run, printed = _train_cli(
        capsys, ws, root, "--group-by", r"pattern:(P\d+)_", "--val-fraction", "0.5"
    )
    summary = json.loads((run.path / "summary.json").read_text())
    patients = summary["patients"]
    assert patients["train"]["images"] + patients["val"]["images"] == 32
    assert patients["train"]["patients"] + patients["val"]["patients"] == 16
    assert patients["val"]["images"] == 2 * patients["val"]["patients"]
    line = (
        f"Split by patient: {patients['train']['patients']} patients "
        f"({patients['train']['images']} images) train, {patients['val']['patients']} patients "
        f"({patients['val']['images']} images) validation."
    )
    assert printed.count(line) == 2  # the training log's line, and the end-of-run summary
    splits = json.loads((run.path / "splits.json").read_text())
    hashes = {row[3] for row in splits["train"] + splits["val"]}
    assert len(hashes) == 16 and all(len(h) == 12 for h in hashes)
    for text in (json.dumps(summary), printed):  # no raw key anywhere
        assert not re.search(r"\bP\d+\b", text)

    # The evaluation saved at the end of training resamples patients ...
    saved = json.loads((run.path / "evaluation" / "val.json").read_text())
    n_val = patients["val"]["patients"]
    assert saved["intervals"]["groups"] == n_val < patients["val"]["images"]
    # ... and so does `refit evaluate`, predicting again.
    assert main(["--workspace", ws, "evaluate", run.run_id, "--runtime", "torch"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the method sentence is wrapped
    assert f"resamples of the {n_val} patients (groups)" in out
    again = json.loads((run.path / "evaluation" / "val.json").read_text())
    assert again["intervals"]["groups"] == n_val
