"""Multi-frame DICOM files and the DICOM window of `refit scan` (generated files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dicom_synth import dicom_class_folder, dicom_dataset, disc_slice, write_dicom
from pydicom.uid import RLELossless

from engine.cli import main
from engine.config import RunConfig
from engine.data import ImageError, load_image, split_samples
from engine.data.dicom import MAX_FRAMES_PER_FILE, frame_count, frame_path, split_frame
from engine.data.frames import chosen_frames, expand_frames
from engine.data.manifest_scan import scan_image_source


def test_refit_scan_decodes_dicom_with_the_window_asked_for(tmp_path, capsys, monkeypatch):
    root = dicom_class_folder(tmp_path / "ct", per_class=3)
    stats = {}
    for window in ("file", "bone"):
        assert main(["scan", str(root), "--json", "--dicom-window", window]) == 0
        stats[window] = json.loads(capsys.readouterr().out)["intensity"]
    assert stats["file"]["dark"] == 0 < stats["bone"]["dark"]  # of the windowed pixels
    seen = {}

    def fake_review(index, **kw):
        seen.update(kw)
        raise ValueError("stop here")

    monkeypatch.setattr("engine.evaluation.label_review.review_labels", fake_review)
    main(["scan", str(root), "--json", "--review", "--dicom-window", "bone"])
    assert seen["dicom_window"] == "bone"  # and the review's features are decoded the same way


def test_refit_scan_refuses_a_dicom_window_for_texts(tmp_path, capsys):
    table = tmp_path / "t.csv"
    table.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(6)))
    assert main(["scan", str(table), "--dicom-window", "lung"]) != 0
    assert "--dicom-window applies to images" in capsys.readouterr().err


# -- multi-frame files ----------------------------------------------------------------------------


def cine(path, frames: int = 5, *, size: int = 8, **tags):
    """A multi-frame file whose frame i is flat grey 40 * i (window 128/256: linear)."""
    pixels = np.stack([np.full((size, size), 40 * i % 256, dtype=np.uint8) for i in range(frames)])
    return write_dicom(path, pixels, window=(128.0, 256.0), **tags)


def cine_folder(root: Path, *, per_class: int = 3, frames: int = 4) -> Path:
    for label in ("a", "b"):
        for i in range(per_class):
            tags = {"PatientID": f"P{i}"}
            cine(root / label / f"{label}{i}.dcm", frames, size=8 + i + (4 if label == "b" else 0),
                 **tags)  # fmt: skip
    return root


def test_a_frame_path_decodes_that_frame_only(tmp_path):
    path = cine(tmp_path / "c.dcm", 5)
    middle = np.asarray(load_image(path))[..., 0]
    third = np.asarray(load_image(frame_path(str(path), 3)))[..., 0]
    assert int(middle.mean()) == int(
        np.asarray(load_image(frame_path(str(path), 2)))[..., 0].mean()
    )
    assert int(third.mean()) > int(middle.mean())  # frame 3 (120) is brighter than frame 2 (80)
    with pytest.raises(ImageError, match="has 5 frames, so no frame 7"):
        load_image(frame_path(str(path), 7))
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="not a DICOM file"):
        load_image(frame_path(str(png), 0))


def test_split_frame_round_trips_and_leaves_other_paths_alone():
    assert split_frame(frame_path("/d/a b.dcm", 12)) == ("/d/a b.dcm", 12)
    assert split_frame("/d/a.dcm") == ("/d/a.dcm", None)
    assert split_frame("/d/a.dcm#frame=x") == ("/d/a.dcm#frame=x", None)
    assert split_frame("#frame=3") == ("#frame=3", None)


def test_frame_count_reads_the_header(tmp_path):
    assert frame_count(cine(tmp_path / "c.dcm", 7).read_bytes()) == 7
    assert frame_count(b"garbage") == 1


def test_all_frames_are_samples_grouped_by_file_and_middle_is_unchanged(tmp_path):
    root = cine_folder(tmp_path / "cines", per_class=3, frames=4)
    middle = scan_image_source(root)
    assert middle == scan_image_source(root, frames="middle")
    assert len(middle.samples) == 6 and all("#frame=" not in s.path for s in middle.samples)
    every = scan_image_source(root, frames="all")
    assert len(every.samples) == 24
    by_file: dict[str, set] = {}
    for s in every.samples:
        file, frame = split_frame(s.path)
        assert frame is not None and s.group is not None
        by_file.setdefault(file, set()).add(s.group)
    assert all(len(groups) == 1 for groups in by_file.values())
    assert len({next(iter(g)) for g in by_file.values()}) == 6  # one group a file
    assert len({s.digest for s in every.samples}) == 24
    for seed in range(4):
        splits = split_samples(every, val_fraction=0.34, seed=seed)
        assert splits.val
        train = {split_frame(s.path)[0] for s in splits.train}
        val = {split_frame(s.path)[0] for s in splits.val}
        assert not train & val  # no file's frames on both sides


def test_all_frames_keep_the_patient_group_when_grouping_by_patient(tmp_path):
    # (flat frames: the near-duplicate check fingerprints none of them, which once crashed it)
    root = cine_folder(tmp_path / "cines", per_class=3, frames=3)
    every = scan_image_source(root, frames="all", group_by="dicom")
    groups = {}
    for s in every.samples:
        groups.setdefault(Path(split_frame(s.path)[0]).stem[1:], set()).add(s.group)
    # a0 and b0 are patient P0: all six of their frames share P0's hash
    assert all(len(g) == 1 for g in groups.values()) and len(groups) == 3
    assert "P0" not in repr(every)  # only salted hashes


def test_caps_on_frames_and_samples(tmp_path):
    assert chosen_frames(5) == [0, 1, 2, 3, 4]
    picked = chosen_frames(1000)
    assert len(picked) == MAX_FRAMES_PER_FILE and picked[0] == 0 and picked[-1] == 999
    root = cine_folder(tmp_path / "cines", per_class=3, frames=4)
    index = scan_image_source(root)
    capped = expand_frames(index, "all", max_samples=12)
    assert len(capped.samples) <= 12
    assert any(s.path.endswith(".dcm") for s in capped.samples)  # later files: middle frame
    assert any("middle frame only" in p.message for p in capped.problems)
    with pytest.raises(ValueError, match="not one of middle, all"):
        expand_frames(index, "some")


def test_refit_scan_dicom_frames_all_counts_frames(tmp_path, capsys):
    root = cine_folder(tmp_path / "cines", per_class=2, frames=3)
    assert main(["scan", str(root), "--json", "--dicom-frames", "all"]) == 0
    counts = json.loads(capsys.readouterr().out)["counts"]
    assert counts == {"all": {"a": 6, "b": 6}}


def test_dicom_frames_is_a_config_field_and_a_train_flag(tmp_path):
    import argparse

    from engine.cli.config_flags import add_train_flags, config_from_args

    assert str(RunConfig().data.dicom_frames) == "middle"
    parser = argparse.ArgumentParser()
    add_train_flags(parser)
    root = cine_folder(tmp_path / "cines", per_class=2, frames=2)
    args = parser.parse_args([str(root), "--dicom-frames", "all"])
    assert str(config_from_args(args).data.dicom_frames) == "all"
    with pytest.raises(SystemExit):
        parser.parse_args(["some/folder", "--dicom-frames", "some"])
    config = RunConfig.from_dict({"data": {"dicom_frames": "all"}})
    assert str(config.data.dicom_frames) == "all"


class _Brightness:
    """A stand-in transform: an image becomes its mean grey in [0, 1]."""

    dicom_window = "file"
    min_size = None

    def __init__(self, frames: str) -> None:
        self.dicom_frames = frames

    def __call__(self, image):
        import torch

        return torch.tensor([float(np.asarray(image, dtype=np.float64).mean()) / 255.0])


def _probs(batch) -> np.ndarray:
    b = batch.numpy().astype(np.float64)[:, 0]
    return np.stack([b, 1.0 - b], axis=1)


@pytest.mark.slow  # imports torch (seconds on a cold start)
@pytest.mark.parametrize("frames", ["middle", "all"])
def test_prediction_of_a_multi_frame_file(tmp_path, frames):
    from engine.evaluation.predict import classify_images

    path = cine(tmp_path / "c.dcm", 4)  # frames 0, 40, 80, 120 (window 128/256: linear)
    single = write_dicom(tmp_path / "s.dcm", np.full((8, 8), 200, np.uint8), window=(128.0, 256.0))
    grey = [float(np.asarray(load_image(frame_path(str(path), f))).mean()) / 255 for f in range(4)]
    out = classify_images([path, single], _Brightness(frames), _probs, ["bright", "dark"], top_k=2)
    bright = dict(out[0].top)["bright"]
    expected = float(np.mean(grey)) if frames == "all" else grey[2]
    assert bright == pytest.approx(expected, abs=1e-6)
    if frames == "all":
        assert bright != pytest.approx(grey[2], abs=1e-3)  # not the middle frame's
    single_grey = float(np.asarray(load_image(single)).mean()) / 255
    assert dict(out[1].top)["bright"] == pytest.approx(single_grey, abs=1e-6)


@pytest.mark.slow  # imports torch and torchvision (seconds on a cold start)
def test_exports_record_the_frame_choice():
    from engine.export.exported import preprocess_of

    pre = {"input_size": 8, "mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": "bilinear"}
    pre["crop_pct"] = 1.0
    assert preprocess_of({"preprocess": pre}).dicom_frames == "middle"  # older exports
    assert preprocess_of({"preprocess": {**pre, "dicom_frames": "all"}}).dicom_frames == "all"
    from engine.data.transforms import build_transform
    from engine.preprocess import Preprocess

    transform = build_transform(Preprocess(dicom_frames="all"), train=False)
    assert transform.dicom_frames == "all"


# -- JPEG-LS (pyjpegls: MIT, CharLS inside: BSD-3-Clause) -----------------------------------------


@pytest.mark.parametrize("frames", [1, 3])
def test_jpeg_ls_decodes_like_uncompressed(tmp_path, frames):
    pytest.importorskip("jpeg_ls")
    from pydicom.uid import JPEGLSLossless

    stack = np.stack([disc_slice(i, disc=bool(i % 2), size=32) for i in range(frames)])
    pixels = stack[0] if frames == 1 else stack
    plain = write_dicom(tmp_path / "plain.dcm", pixels, bits_stored=12, intercept=-1024.0)
    ds = dicom_dataset(pixels, bits_stored=12, intercept=-1024.0)
    ds.compress(JPEGLSLossless)  # pydicom's encoder, through pyjpegls
    packed = tmp_path / "jls.dcm"
    ds.save_as(packed, enforce_file_format=True)
    assert packed.stat().st_size < plain.stat().st_size
    for f in range(frames):
        a, b = (str(p) if frames == 1 else frame_path(str(p), f) for p in (plain, packed))
        assert np.array_equal(np.asarray(load_image(a)), np.asarray(load_image(b)))


@pytest.mark.slow
def test_train_split_predict_and_export_with_every_frame(tmp_path, capsys):
    from engine.runs import Workspace

    root = tmp_path / "data"
    for label, disc in (("disc", True), ("none", False)):
        for i in range(4):
            stack = np.stack([disc_slice(10 * i + f + (100 * disc), disc=disc) for f in range(3)])
            write_dicom(root / label / f"{label}{i}.dcm", stack, bits_stored=12, intercept=-1024.0)
    ws = str(tmp_path / "ws")
    argv = ["--workspace", ws, "train", str(root), "--backbone", "timm:test_efficientnet"]
    argv += ["--no-pretrained", "--workers", "0", "--method", "linear-probe"]
    argv += ["--dicom-frames", "all", "--val-fraction", "0.25", "--quiet"]
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 0, err
    (run,) = Workspace(ws).list_runs()
    assert str(RunConfig.load(run.path / "config.json").data.dicom_frames) == "all"
    splits = json.loads((run.path / "splits.json").read_text())
    sides = {side: {split_frame(row[0])[0] for row in splits[side]} for side in ("train", "val")}
    assert sum(len(splits[s]) for s in ("train", "val")) == 24  # 8 files x 3 frames
    assert sides["val"] and not sides["train"] & sides["val"]  # no file on both sides
    new = write_dicom(
        tmp_path / "new.dcm",
        np.stack([disc_slice(900 + f, disc=True) for f in range(3)]),
        bits_stored=12,
        intercept=-1024.0,
    )
    assert main(["--workspace", ws, "predict", run.run_id, str(new), "--json"]) == 0
    (from_run,) = json.loads(capsys.readouterr().out)
    assert main(["--workspace", ws, "export", run.run_id, "--format", "safetensors"]) == 0
    capsys.readouterr()
    manifest = json.loads((run.path / "export" / "refit_model.json").read_text())
    assert manifest["preprocess"]["dicom_frames"] == "all"
    assert main(["predict", str(run.path / "export"), str(new), "--json"]) == 0
    (from_export,) = json.loads(capsys.readouterr().out)
    assert dict(from_export["top"]) == pytest.approx(dict(from_run["top"]), abs=1e-4)


def test_a_file_cut_short_keeps_its_middle_frame(tmp_path):
    root = cine_folder(tmp_path / "cines", per_class=2, frames=4)
    cut = root / "a" / "a1.dcm"
    frames = np.stack([np.full((9, 9), 30 * f, np.uint8) for f in range(3)])
    cine_of_3 = dicom_dataset(frames, window=(128.0, 256.0))
    cine_of_3.compress(RLELossless)  # one fragment a frame: the middle one (2) still decodes
    cine_of_3.NumberOfFrames = 4  # the header promises a fourth frame that is not there
    cine_of_3.save_as(cut, enforce_file_format=True)
    every = scan_image_source(root, frames="all")
    paths = [s.path for s in every.samples]
    assert str(cut) in paths and not any(p.startswith(f"{cut}#") for p in paths)
    assert len(paths) == 1 + 3 * 4
    (problem,) = [p for p in every.problems if "fewer frames" in p.message]
    assert "a/a1.dcm" in problem.message and problem.severity == "warning"
