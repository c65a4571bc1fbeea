"""DICOM intake: the pixel pipeline on generated files, its failures, the scan and the window a
run records."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_synth import dicom_class_folder, dicom_dataset, disc_slice, write_dicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut, convert_color_space
from pydicom.uid import JPEGLSLossless

from engine.data import ImageError, load_image, scan_folder
from engine.data.dicom import (
    DEFAULT_WINDOW,
    PRESETS,
    declares_deidentified,
    decode_dicom,
    is_dicom,
)
from engine.data.problems import ProblemKind

PHI = ("Doe", "Jane", "MRN-00417", "19700101")


def grey(path, window: str | None = None) -> np.ndarray:
    image = load_image(path, window=window)
    assert image.mode == "RGB"
    arr = np.asarray(image)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all()
    return arr[..., 0].astype(int)


def linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) to 0..255, written out independently of the engine."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(x <= lo, 0.0, np.where(x > hi, 255.0, y))


def ct_slice() -> tuple[np.ndarray, np.ndarray]:
    """Stored values (uint16, HU + 1024) of four bands: air, lung, soft tissue, bone; and HU."""
    hu = np.repeat(np.array([-1000, -700, 40, 1000], dtype=np.int32), 8)[None, :].repeat(6, 0)
    return (hu + 1024).astype(np.uint16), hu


# -- the pixel pipeline ---------------------------------------------------------------------------


def test_lung_and_bone_windows_give_the_predicted_pixels(tmp_path):
    stored, hu = ct_slice()
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, slope=1.0, intercept=-1024.0)
    for window in ("lung", "bone", "brain", "soft-tissue", "subdural"):
        center, width = PRESETS[window]
        expected = linear_window(hu, center, width)
        assert np.abs(grey(path, window) - expected).max() <= 1, window
    lung, bone = grey(path, "lung"), grey(path, "bone")
    # Lung window: air and lung differ, soft tissue and bone nearly white. Bone: the reverse.
    assert lung[0, 0] < lung[0, 8] < lung[0, 16] <= lung[0, 24] == 255
    assert bone[0, 0] == bone[0, 8] == 0 and 0 < bone[0, 16] < bone[0, 24] < 255


def test_file_window_matches_pydicom_apply_voi_lut(tmp_path):
    stored = np.arange(0, 4096, 4, dtype=np.uint16).reshape(32, 32)
    path = write_dicom(tmp_path / "w.dcm", stored, bits_stored=12, window=(1500.0, 1000.0))
    ds = dicom_dataset(stored, bits_stored=12, window=(1500.0, 1000.0))
    theirs = apply_voi_lut(apply_modality_lut(stored, ds), ds).astype(np.float64)
    # pydicom's output spans the stored range (12 bits, unsigned): scale it to 8 bits.
    theirs = theirs / 4095 * 255
    ours = grey(path)  # "file": the file's own window
    assert np.abs(ours - theirs).max() <= 1
    assert np.abs(ours - linear_window(stored, 1500.0, 1000.0)).max() <= 1
    assert not np.array_equal(ours, grey(path, "percentile"))


def test_monochrome1_is_inverted(tmp_path):
    stored = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    two = grey(write_dicom(tmp_path / "m2.dcm", stored, window=(128.0, 256.0)))
    one = grey(
        write_dicom(tmp_path / "m1.dcm", stored, window=(128.0, 256.0), photometric="MONOCHROME1")
    )
    assert (one == 255 - two).all()
    assert two[0, 0] < two[-1, -1]


@pytest.mark.parametrize(
    ("dtype", "bits", "top"), [(np.uint8, 8, 255), (np.uint16, 12, 4095), (np.uint16, 16, 65535)]
)
def test_8_12_16_bit_use_their_bit_depth(tmp_path, dtype, bits, top):
    stored = np.linspace(0, top, 64).astype(dtype).reshape(8, 8)
    # A window spanning the whole stored range: the ramp becomes 0..255 whatever the depth.
    center, width = (top + 1) / 2, top + 1
    path = write_dicom(tmp_path / f"b{bits}.dcm", stored, bits_stored=bits, window=(center, width))
    out = grey(path)
    assert np.abs(out - linear_window(stored, center, width)).max() <= 1
    assert out[0, 0] == 0 and out[-1, -1] == 255 and (np.diff(out.ravel()) >= 0).all()


def test_signed_pixels(tmp_path):
    stored = np.linspace(-1000, 1000, 100).astype(np.int16).reshape(10, 10)
    path = write_dicom(tmp_path / "s.dcm", stored, window=(0.0, 2000.0))
    out = grey(path)
    assert np.abs(out - linear_window(stored, 0.0, 2000.0)).max() <= 1
    assert out[0, 0] == 0 and out[-1, -1] == 255 and 120 <= out.ravel()[50] <= 135


def test_voi_lut_sequence_wins_over_window_tags(tmp_path):
    stored = np.array([[0, 1], [2, 3]], dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    lut = (0, 16, [0, 1000, 3000, 4000])
    path = write_dicom(tmp_path / "lut.dcm", stored, voi_lut=lut, window=(1.0, 1.0))
    out = grey(path)
    # Scaled by the LUT's own range (0..4000), not its nominal 16 bits.
    assert {int(v) for v in np.unique(out)} == {0, 64, 191, 255}
    ds = dicom_dataset(stored, voi_lut=lut)
    assert np.abs(out - apply_voi_lut(stored, ds) / 4000 * 255).max() <= 1


def test_no_window_in_the_file_falls_back_to_percentile(tmp_path):
    stored = disc_slice(3, disc=True)
    path = write_dicom(tmp_path / "p.dcm", stored, bits_stored=12)
    assert np.array_equal(grey(path), grey(path, "percentile"))
    hu = stored.astype(float)
    lo, hi = np.percentile(hu, (0.5, 99.5))
    expected = np.clip((hu - lo) / (hi - lo), 0, 1) * 255
    assert np.abs(grey(path) - expected).max() <= 1


def test_multi_frame_gives_the_middle_frame(tmp_path):
    frames = np.stack([np.full((6, 7), 40 * i, dtype=np.uint8) for i in range(5)])
    path = write_dicom(tmp_path / "mf.dcm", frames, window=(128.0, 256.0))
    out = grey(path)
    assert out.shape == (6, 7)
    assert np.abs(out - linear_window(np.full((6, 7), 80), 128.0, 256.0)).max() <= 1


def test_rgb_and_ybr_full_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out = np.asarray(load_image(write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")))
    assert np.array_equal(out, rgb)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    out = np.asarray(load_image(write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL")))
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_rle_lossless_decodes_like_uncompressed(tmp_path):
    stored = disc_slice(7, disc=True)
    kw = {"bits_stored": 12, "slope": 1.0, "intercept": -1024.0}
    plain = write_dicom(tmp_path / "plain.dcm", stored, **kw)
    rle = write_dicom(tmp_path / "rle.dcm", stored, rle=True, **kw)
    assert b"1.2.840.10008.1.2.5" in rle.read_bytes()[:400]
    assert np.array_equal(grey(plain, "lung"), grey(rle, "lung"))


@pytest.mark.parametrize(
    ("photometric", "syntax", "fmt", "tolerance"),
    [
        ("MONOCHROME2", "1.2.840.10008.1.2.4.50", "JPEG", 2),  # JPEG Baseline 8-bit, grey
        ("YBR_FULL_422", "1.2.840.10008.1.2.4.50", "JPEG", 12),  # colour, chroma subsampled
        ("MONOCHROME2", "1.2.840.10008.1.2.4.90", "JPEG2000", 0),  # JPEG 2000 Lossless
    ],
)
def test_jpeg_and_jpeg_2000_decode_through_pillow(tmp_path, photometric, syntax, fmt, tolerance):
    import io

    from PIL import Image, features
    from pydicom.encaps import encapsulate

    if fmt == "JPEG2000" and not features.check("jpg_2000"):
        pytest.skip("this Pillow has no OpenJPEG")
    yy, xx = np.mgrid[:32, :40]
    rgb = np.stack([xx * 6, yy * 7, np.full_like(xx, 128)], -1).astype(np.uint8)
    pixels = rgb if photometric.startswith("YBR") else rgb[..., 0]
    buffer = io.BytesIO()
    options = {"quality": 95} if fmt == "JPEG" else {"irreversible": False}
    Image.fromarray(pixels).save(buffer, fmt, **options)  # Pillow writes YCbCr JPEGs
    window = None if pixels.ndim == 3 else (128.0, 256.0)
    ds = dicom_dataset(pixels, photometric=photometric, window=window)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "compressed.dcm"
    ds.save_as(path, enforce_file_format=True)
    out = np.asarray(load_image(path)).astype(int)
    expected = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    # A window of 128/256 on 8-bit values is within a grey level of the identity.
    assert np.abs(out - expected).max() <= max(tolerance, 1)


# -- files that are not usable --------------------------------------------------------------------


def _error(path, **kw) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(path, **kw)
    message = str(info.value)
    assert message.count(".") >= 1 and path.name in message
    assert not any(word in message for word in PHI)
    return info.value


def test_pydicom_says_nothing_in_logs_or_warnings(tmp_path, caplog, recwarn):
    import logging

    ds = dicom_dataset(np.zeros((4, 4), np.uint8))
    ds.PatientBirthDate = "Doe-1970"  # invalid for its VR (DA): pydicom would quote it
    path = tmp_path / "odd.dcm"
    ds.save_as(path, enforce_file_format=True)
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(path.read_bytes()[:-10])
    with caplog.at_level(logging.DEBUG):
        load_image(path)
        with pytest.raises(ImageError):
            load_image(damaged)
    said = " ".join(r.getMessage() for r in caplog.records)
    said += " ".join(str(w.message) for w in recwarn)
    assert not any(word in said for word in PHI)


def test_missing_pixel_data(tmp_path):
    ds = dicom_dataset(np.zeros((4, 4), np.uint8))
    del ds.PixelData
    path = tmp_path / "report.dcm"
    ds.save_as(path, enforce_file_format=True)
    error = _error(path)
    assert error.kind is ProblemKind.NOT_IMAGE and "without pixel data" in str(error)


def test_garbage_with_a_dcm_name(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\x00" * 128 + b"JUNK" + b"not dicom at all" * 10)
    error = _error(path)
    assert error.kind is ProblemKind.NOT_IMAGE and "not a DICOM file" in str(error)
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 64)  # the marker, then damage
    assert _error(path).kind is ProblemKind.UNREADABLE


def test_huge_declared_size_is_refused_before_decoding(tmp_path):
    ds = dicom_dataset(np.zeros((4, 4), np.uint8))
    ds.Rows = ds.Columns = 60000
    path = tmp_path / "huge.dcm"
    ds.save_as(path, enforce_file_format=True)
    error = _error(path)
    assert error.kind is ProblemKind.TOO_LARGE and "60000x60000" in str(error)
    ds.Rows = ds.Columns = 100  # plausible, but 16 bytes of pixels for 10,000
    ds.save_as(path, enforce_file_format=True)
    error = _error(path)
    assert error.kind is ProblemKind.UNREADABLE and "cannot be decoded" in str(error)


def test_undecodable_transfer_syntax_is_named(tmp_path):
    ds = dicom_dataset(np.zeros((4, 4), np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x02\x00\x00\x00ab"
    ds["PixelData"].VR = "OB"
    path = tmp_path / "jls.dcm"
    ds.save_as(path, enforce_file_format=True)
    message = str(_error(path))
    assert "1.2.840.10008.1.2.4.80" in message and "JPEG-LS Lossless" in message


def test_volumes_are_not_supported_yet(tmp_path):
    path = tmp_path / "brain.nii.gz"
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 400)
    error = _error(path)
    assert "3-D volume" in str(error) and "not read yet" in str(error)


def test_deidentified_flag(tmp_path):
    plain = write_dicom(tmp_path / "a.dcm", np.zeros((2, 2), np.uint8))
    marked = write_dicom(
        tmp_path / "b.dcm", np.zeros((2, 2), np.uint8), PatientIdentityRemoved="YES"
    )
    assert declares_deidentified(plain.read_bytes()) is False
    assert declares_deidentified(marked.read_bytes()) is True
    assert declares_deidentified(b"not dicom") is None


# -- the scan and the run's window ----------------------------------------------------------------


def test_scan_takes_dcm_and_extensionless_dicom_and_names_the_rest(tmp_path):
    root = dicom_class_folder(tmp_path / "data", per_class=3)
    dicom_class_folder(tmp_path / "data", per_class=2, suffix="")  # img00, img01: no extension
    (root / "disc" / "junk.dcm").write_bytes(b"\x00" * 300)
    (root / "none" / "vol.nii").write_bytes(b"\x00" * 400)
    (root / "none" / "README").write_text("notes")
    index = scan_folder(root, workers=1)
    assert index.classes == ("disc", "none")
    assert len(index.samples) == 10
    assert sum(not s.path.endswith(".dcm") for s in index.samples) == 4
    by_name = {p.path.rsplit("/", 1)[-1]: p.message for p in index.problems if p.path}
    assert "not a DICOM file" in by_name["junk.dcm"]
    assert "3-D volume" in by_name["vol.nii"]
    assert "README" in by_name
    assert not any(w in p.message for p in index.problems for w in PHI)
    assert is_dicom((root / "disc" / "img00").read_bytes())


def test_default_window_and_explicit_window(tmp_path):
    stored, _ = ct_slice()
    path = write_dicom(tmp_path / "ct.dcm", stored, bits_stored=12, slope=1.0, intercept=-1024.0)
    assert DEFAULT_WINDOW == "file"
    assert np.array_equal(grey(path), grey(path, "file"))
    assert not np.array_equal(grey(path), grey(path, "bone"))
    assert np.array_equal(grey(path, "lung"), decode_as(path, "lung"))
    with pytest.raises(ValueError, match="not one of"):
        load_image(path, window="sideways")


def decode_as(path, window: str) -> np.ndarray:
    return np.asarray(decode_dicom(path.read_bytes(), path.name, window=window))[..., 0]


@pytest.mark.slow  # engine.export imports torch
def test_the_window_is_a_config_field_and_is_written_in_exports():
    from engine.config import ConfigError, DicomWindow, RunConfig
    from engine.export.exported import preprocess_of
    from engine.modalities.image import IMAGE
    from engine.preprocess import Preprocess

    cfg = RunConfig.from_dict({"data": {"dicom_window": "lung"}})
    assert cfg.data.dicom_window is DicomWindow.LUNG
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"data": {"dicom_window": "sideways"}})

    pre = Preprocess(input_size=32, dicom_window="lung")

    class Model:
        preprocess = pre

    manifest = IMAGE.input_facts(Model(), None)
    assert manifest["preprocess"]["dicom_window"] == "lung"
    assert preprocess_of(manifest).dicom_window == "lung"
    del manifest["preprocess"]["dicom_window"]  # an export from before DICOM intake
    assert preprocess_of(manifest).dicom_window == "file"
    manifest["preprocess"]["dicom_window"] = "sideways"  # a newer app's window
    with pytest.raises(Exception, match="sideways"):
        preprocess_of(manifest)


@pytest.mark.slow  # imports torch and torchvision
def test_transforms_and_datasets_carry_the_window():
    from engine.data import build_transform
    from engine.data.dataset import ImageDataset
    from engine.preprocess import Preprocess

    pre = Preprocess(input_size=32, dicom_window="lung")
    for train in (True, False):
        transform = build_transform(pre, train=train)
        assert transform.dicom_window == "lung"
        assert ImageDataset([], transform).dicom_window == "lung"
    transform.dicom_window = None  # no window in the transform: the file's own
    assert ImageDataset([], transform).dicom_window == "file"


@pytest.mark.slow
def test_train_and_predict_on_dicom_from_the_cli(tmp_path, capsys):
    import json

    from engine.cli import main
    from engine.config import RunConfig
    from engine.runs import Workspace

    root = dicom_class_folder(tmp_path / "data", per_class=8)
    ws = str(tmp_path / "ws")
    argv = ["--workspace", ws, "train", str(root), "--backbone", "timm:test_efficientnet"]
    argv += ["--no-pretrained", "--workers", "0", "--method", "linear-probe"]
    argv += ["--dicom-window", "lung", "--quiet"]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    (run,) = Workspace(ws).list_runs()
    assert RunConfig.load(run.path / "config.json").data.dicom_window == "lung"
    new = write_dicom(
        tmp_path / "new.dcm", disc_slice(999, disc=True), bits_stored=12, intercept=-1024.0
    )
    assert main(["--workspace", ws, "predict", run.run_id, str(new), "--json"]) == 0
    out, err = capsys.readouterr()
    (from_run,) = json.loads(out)
    assert from_run["path"] == str(new) and from_run["top"][0][0] in ("disc", "none")
    assert not any(word in out + err for word in PHI)

    # The export records the window, and predicts from DICOM as the run does.
    assert main(["--workspace", ws, "export", run.run_id, "--format", "safetensors"]) == 0
    capsys.readouterr()
    manifest = json.loads((run.path / "export" / "refit_model.json").read_text())
    assert manifest["preprocess"]["dicom_window"] == "lung"
    assert main(["predict", str(run.path / "export"), str(new), "--json"]) == 0
    (from_export,) = json.loads(capsys.readouterr().out)
    assert dict(from_export["top"]) == pytest.approx(dict(from_run["top"]), abs=1e-4)


# Runs in a fresh interpreter: prefetch.start refuses to fork once threads run.
PREFETCH_CHECK = r"""
import json, sys, time
import numpy as np
from engine.data import prefetch
from engine.data.images import load_image

root = sys.argv[1]
assert prefetch.start(root, min_per_class=2, min_size=32, dicom_window="lung")
assert prefetch.take_index(root, min_per_class=2, window="bone") is None  # another run's window
index = prefetch.take_index(root, min_per_class=2, window="lung")
time.sleep(1.0)  # let the child decode
hits = lung = bone = 0
for sample in index.samples:
    assert prefetch.take_image(sample.path, 32, "bone") is None
    got = prefetch.take_image(sample.path, 32, "lung")
    if got is None:
        continue
    hits += 1
    lung += np.array_equal(np.asarray(got), np.asarray(load_image(sample.path, window="lung")))
    bone += np.array_equal(np.asarray(got), np.asarray(load_image(sample.path, window="bone")))
print(json.dumps({"samples": len(index.samples), "hits": hits, "lung": lung, "bone": bone}))
"""


@pytest.mark.slow
@pytest.mark.skipif(__import__("sys").platform != "linux", reason="prefetching forks (Linux)")
def test_the_prefetching_child_decodes_with_the_runs_window(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = dicom_class_folder(tmp_path / "data", per_class=3)
    done = subprocess.run(
        [sys.executable, "-c", PREFETCH_CHECK, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["samples"] == 6 and out["hits"] == 6
    assert out["lung"] == 6 and out["bone"] == 0


def test_a_scan_problem_gives_one_remedy_not_two(tmp_path):
    """A DICOM reason that says what to do gets only "it will be skipped." after it."""
    good = dicom_class_folder(tmp_path / "data", per_class=3)
    (good / "disc" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    index = scan_folder(good, min_per_class=2)
    [problem] = [p for p in index.problems if p.path and p.path.endswith("broken.dcm")]
    assert problem.message.endswith("re-export it; it will be skipped.")
    assert "permissions" not in problem.message


def test_a_build_without_pydicom_says_so(tmp_path, monkeypatch):
    import sys

    path = write_dicom(tmp_path / "a.dcm", disc_slice(0, disc=True))
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom fails
    with pytest.raises(ImageError, match="lacks DICOM support"):
        load_image(path)
