"""Images that use a narrow part of their intensity range: the scan says so, data.intensity
stretches them the same way in training, prediction and exports, and a probe gains from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import make_scans_folder, make_shapes_folder
from trained_runs import IMAGE_BACKBONE

from engine.config import Intensity, RunConfig
from engine.data import build_transform, scan_folder
from engine.data.intensity import (
    IntensityReport,
    IntensityStats,
    IntensityStretch,
    image_stats,
    resolve_intensity,
    stored_intensity,
)
from engine.data.problems import ProblemKind
from engine.preprocess import Preprocess


def _narrow_notices(index) -> list[str]:
    return [p.message for p in index.problems if p.kind is ProblemKind.NARROW_INTENSITY]


def test_scan_reports_narrow_range_images_in_one_sentence(tmp_path: Path) -> None:
    index = scan_folder(make_scans_folder(tmp_path / "scans", per_class=6), workers=1)
    notices = _narrow_notices(index)
    assert len(notices) == 1
    (notice,) = [p for p in index.problems if p.kind is ProblemKind.NARROW_INTENSITY]
    assert notice.path.endswith(".png") and Path(notice.path).is_file()  # a click shows one
    assert notices[0].startswith("12 of 12 images (100%) use a narrow part of the intensity range")
    assert "only a few grey levels" in notices[0] and "stretched to the full range" in notices[0]
    assert index.intensity is not None and index.intensity.suggests_stretch


def test_refit_scan_json_reports_the_intensity_facts(tmp_path: Path, capsys) -> None:
    from engine.cli import main

    scans = make_scans_folder(tmp_path / "scans", per_class=3)
    assert main(["scan", str(scans), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = {"measured": 6, "narrow": 6, "few_levels": 6, "dark": 6, "bright": 0}
    assert data["intensity"] == expected
    assert [p["kind"] for p in data["problems"]] == ["narrow-intensity"]


def test_scan_is_silent_on_normal_shapes_and_photos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2] / "benchmarks"))
    import make_photos as photos

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    rng = np.random.default_rng(0)
    for cls, kind in (("circle", "organic"), ("square", "geometric")):  # small JPEG photos
        for i in range(3):
            photos.scene(kind, rng, 160, 120).save(shapes / cls / f"photo_{i}.jpg", quality=90)
    index = scan_folder(shapes, workers=1)
    assert _narrow_notices(index) == []
    assert index.intensity is not None and index.intensity.measured == 18
    assert resolve_intensity("auto", index.intensity) == "off"


def test_twelve_bit_data_in_sixteen_bit_files_and_washed_out_exports_are_narrow() -> None:
    import io

    from engine.data.images import decode_image

    twelve = Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16))
    buf = io.BytesIO()
    twelve.save(buf, format="PNG")  # no sBIT: read as 16-bit, so 0-4095 becomes 0-16
    washed = Image.fromarray(np.linspace(210, 250, 64 * 64).reshape(64, 64).astype(np.uint8))
    stats = [image_stats(decode_image(buf.getvalue(), "twelve.png")), image_stats(washed)]
    report = IntensityReport.of(stats)
    assert (report.narrow, report.dark, report.bright, report.few_levels) == (2, 1, 1, 1)
    assert "are washed out" in report.sentence() and "are very dark" in report.sentence()
    # a low-contrast mid-grey photo (measured on a generated one) is left alone
    assert not IntensityStats(levels=80, p1=87, p99=149, mean=117.6).narrow


def test_auto_rule_needs_a_fifth_of_the_images() -> None:
    assert resolve_intensity("auto", IntensityReport(measured=10, narrow=2)) == "percentile"
    assert resolve_intensity("auto", IntensityReport(measured=10, narrow=1)) == "off"
    assert resolve_intensity("auto", None) == "off"
    assert resolve_intensity("off", IntensityReport(measured=10, narrow=10)) == "off"
    assert resolve_intensity("percentile", IntensityReport(measured=10, narrow=0)) == "percentile"
    few = IntensityReport(measured=10, narrow=1).sentence()
    assert "set data.intensity to 'percentile'" in few
    assert stored_intensity({}) == "off"  # runs from before the choice existed


def test_transform_with_stretch_spans_the_full_range(tmp_path: Path) -> None:
    make_scans_folder(tmp_path / "scans", per_class=1)
    image = Image.open(next((tmp_path / "scans" / "yes").iterdir())).convert("RGB")
    pre = Preprocess(input_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=1.0)
    off = build_transform(pre, train=False)(image)
    on = build_transform(Preprocess(**{**pre.__dict__, "intensity": "percentile"}), train=False)
    on_train = build_transform(
        Preprocess(**{**pre.__dict__, "intensity": "percentile"}), train=True
    )
    stretched = on(image)
    assert float(off.max()) <= 2 / 255 + 1e-6
    assert float(stretched.min()) == 0.0 and float(stretched.max()) == pytest.approx(1.0)
    assert float(on_train(image).max()) > 0.9  # training sees the same stretched pixels
    assert on.view.stretch  # the stretch is part of what the network sees


def test_flat_image_is_left_as_it_is() -> None:
    flat = Image.new("RGB", (8, 8), (7, 7, 7))
    assert np.array_equal(np.asarray(IntensityStretch()(flat)), np.asarray(flat))


def test_config_round_trip_and_old_configs_load() -> None:
    config = RunConfig()
    assert config.data.intensity is Intensity.AUTO
    data = config.to_dict()
    data["data"]["intensity"] = "percentile"
    assert RunConfig.from_dict(json.loads(json.dumps(data))).data.intensity is Intensity.PERCENTILE
    del data["data"]["intensity"]
    assert RunConfig.from_dict(data).data.intensity is Intensity.AUTO


def _train_scans(root: Path, intensity: str, *, lr: float = 1e-2, on_event=None):
    from engine.config import DataConfig, ModelConfig, OptimConfig, ScheduleConfig
    from engine.training.trainer import train

    scans = make_scans_folder(root / "scans", per_class=8)
    config = RunConfig(
        seed=0,
        data=DataConfig(path=str(scans), val_fraction=0.25, num_workers=0, intensity=intensity),
        model=ModelConfig(backbone=IMAGE_BACKBONE, pretrained=False),
        optim=OptimConfig(lr=lr),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFIT_HOME", str(root / "home"))
        return train(config, workspace=root / "ws", on_event=on_event)


@pytest.mark.slow
def test_auto_is_resolved_once_and_used_by_predict_and_export(tmp_path: Path) -> None:
    from engine.evaluation.predict import Predictor
    from engine.events import LogMessage
    from engine.export.exported import ExportedModel
    from engine.export.exporter import export_run
    from engine.runs import RunDir

    logs: list[str] = []
    result = _train_scans(
        tmp_path, "auto", on_event=lambda e: logs.append(e.text) if isinstance(e, LogMessage) else 0
    )
    assert any(t.startswith("Intensity: each image's 0.5-99.5% brightness window") for t in logs)
    run = RunDir(Path(result.run_dir))
    assert run.state()["intensity"] == "percentile"
    assert run.summary()["intensity"] == "percentile"
    assert run.config().data.intensity is Intensity.AUTO  # resolved facts stay out of the config
    predictor = Predictor(run)
    assert predictor.model.preprocess.intensity == "percentile"
    assert predictor.transform.view.stretch
    out = tmp_path / "export"
    export_run(run, ["onnx"], out)
    manifest = json.loads((out / "refit_model.json").read_text())
    assert manifest["preprocess"]["intensity"] == "percentile"
    assert manifest["preprocess"]["steps"].startswith("RGB; stretch intensity")
    exported = ExportedModel.open(out)
    assert exported.format == "onnx" and exported.transform.view.stretch
    images = sorted(str(p) for p in (tmp_path / "scans").rglob("*.png"))[:6]
    ours = [p.top for p in predictor.predict(images)]
    theirs = [p.top for p in exported.predict(images)]
    for a, b in zip(ours, theirs, strict=True):
        assert [c for c, _ in a] == [c for c, _ in b]
        assert [v for _, v in a] == pytest.approx([v for _, v in b], abs=1e-4)


def test_run_that_calls_every_image_one_class_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Near-black images through a random convnet give near-identical features; with a
    # negligible learning rate (a full fine-tune: the linear probe fits its head to convergence
    # and ignores the rate) the head calls every validation image the same class.
    from engine.cli import main
    from engine.runs import RunDir, Workspace

    monkeypatch.setenv("REFIT_HOME", str(tmp_path / "home"))
    scans = make_scans_folder(tmp_path / "scans", per_class=8)
    argv = ["--workspace", str(tmp_path / "ws"), "train", str(scans), "--quiet"]
    argv += ["--backbone", IMAGE_BACKBONE, "--no-pretrained", "--intensity", "off"]
    argv += ["--lr", "1e-7", "--epochs", "1", "--batch-size", "8", "--workers", "0"]
    argv += ["--val-fraction", "0.25", "--method", "full"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    (info,) = Workspace(tmp_path / "ws").list_runs()
    run = RunDir(info.path)
    summary = run.summary()
    assert summary["intensity"] == "off"
    (warning,) = summary["warnings"]
    assert "for every one of the 4 validation images: it learned nothing useful; try" in warning
    assert f"warning: {warning}" in out  # the log
    assert out[-2] == f"Warning: {warning}"  # the CLI's final lines

    from desktop.results.results_status import describe_run
    from desktop.train.page import _result_sentence
    from engine.events import RunEnded, RunStatus
    from engine.runs import run_facts

    facts = run_facts(run)
    assert facts.warnings == (warning,)
    assert "learned nothing useful" in describe_run(facts)  # the Results page
    ended = RunEnded(
        status=RunStatus.COMPLETED,
        best_metrics={"val_accuracy": 0.5, "epoch": 0.0},
        run_dir=str(run.path),
        warnings=(warning,),
    )
    assert "<b>Warning:</b> The model predicts" in _result_sentence(ended, str(run.path))


def test_chance_rule_accounts_for_the_validation_size() -> None:
    from engine.training.honesty import chance_bar, run_warnings

    assert chance_bar([22, 23]) == pytest.approx(0.623, abs=0.005)
    assert chance_bar([500, 500]) == pytest.approx(0.526, abs=0.005)
    classes = ("no", "yes")
    targets = torch.tensor([0] * 20 + [1] * 20)
    # 12/20 right per class: 60% balanced accuracy is not better than guessing on 40 images
    preds = torch.tensor([0] * 12 + [1] * 8 + [1] * 12 + [0] * 8)
    logits = torch.nn.functional.one_hot(preds, 2).float()
    (warning,) = run_warnings(logits, targets, classes)
    assert warning.startswith("Balanced accuracy 60% is within what guessing reaches on 40")
    # 17/20 right per class is clearly learned
    good = torch.tensor([0] * 17 + [1] * 3 + [1] * 17 + [0] * 3)
    assert run_warnings(torch.nn.functional.one_hot(good, 2).float(), targets, classes) == []
    # a validation split holding one class only: predicting it everywhere is no failure
    ones = torch.ones(10, dtype=torch.long)
    assert run_warnings(torch.nn.functional.one_hot(ones, 2).float(), ones, classes) == []


@pytest.mark.slow
def test_linear_probe_on_scans_does_clearly_better_with_the_stretch(tmp_path: Path) -> None:
    """efficientnet_lite0 (the offline starter) on 60 three-level scans: a standardised,
    cross-validated logistic probe on its features (measured: 85% off, 100% on)."""
    import dataclasses

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from engine.config import ModelConfig
    from engine.data.images import load_image
    from engine.models import build_model

    index = scan_folder(make_scans_folder(tmp_path / "scans", per_class=30), workers=1)
    assert resolve_intensity("auto", index.intensity) == "percentile"
    model = build_model(ModelConfig(backbone="efficientnet_lite0"), 2).eval()
    labels = np.array([s.label for s in index.samples])
    scores = {}
    for mode in ("off", "percentile"):
        pre = dataclasses.replace(model.preprocess, intensity=mode)
        transform = build_transform(pre, train=False)
        x = torch.stack([transform(load_image(s.path)) for s in index.samples])
        with torch.inference_mode():
            features = model.backbone(x).numpy()
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        folds = StratifiedKFold(5, shuffle=True, random_state=0)
        scores[mode] = cross_val_score(probe, features, labels, cv=folds).mean()
    assert scores["percentile"] >= 0.9, scores
    assert scores["percentile"] - scores["off"] >= 0.1, scores


def test_a_resumed_run_keeps_its_resolved_stretch_and_warnings(tmp_path: Path) -> None:
    from engine.config import (
        AdaptConfig,
        DataConfig,
        Method,
        ModelConfig,
        OptimConfig,
        ScheduleConfig,
    )
    from engine.events import EpochEnded
    from engine.runs import RunDir
    from engine.task import Task
    from engine.training.trainer import resume, train

    scans = make_scans_folder(tmp_path / "scans", per_class=8)
    config = RunConfig(  # a full fine-tune: the linear probe would fit its head to convergence
        data=DataConfig(path=str(scans), val_fraction=0.25, num_workers=0, intensity="off"),
        model=ModelConfig(backbone=IMAGE_BACKBONE, pretrained=False),
        adapt=AdaptConfig(method=Method.FULL),
        optim=OptimConfig(lr=1e-7),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
    ).validate()
    task = Task()

    def stop_after_first_epoch(event) -> None:
        if isinstance(event, EpochEnded):
            task.cancel()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFIT_HOME", str(tmp_path / "home"))
        first = train(config, workspace=tmp_path / "ws", on_event=stop_after_first_epoch, task=task)
        assert str(first.status) == "cancelled" and first.warnings
        run = RunDir(Path(first.run_dir))
        assert run.state()["intensity"] == "off"
        second = resume(first.run_dir, workspace=tmp_path / "ws")
    assert str(second.status) == "completed"
    assert run.state()["intensity"] == "off" and run.summary()["intensity"] == "off"
    assert second.warnings == first.warnings


@pytest.mark.slow
def test_the_feature_cache_key_includes_the_stretch(tmp_path: Path) -> None:
    from engine.runs import Workspace

    _train_scans(tmp_path, "off")
    _train_scans(tmp_path, "auto")  # resolves to percentile: other pixels, other features
    cache = Workspace(tmp_path / "ws").cache_root / "features"
    assert len(list(cache.glob("*-train.safetensors"))) == 2
    assert len(list(cache.glob("*-val.safetensors"))) == 2
