"""Runs, evaluation and prediction with frozen compute in onnxruntime give torch's answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic import make_shapes_folder
from test_training import tiny_config

from engine.config import DeviceConfig, Method, Runtime
from engine.evaluation.predict import Predictor
from engine.evaluation.predictions import predict_split
from engine.events import LogMessage
from engine.runs import RunDir
from engine.training.trainer import train


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


def probe(shapes, workspace, runtime: Runtime, events: list | None = None):
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE)
    cfg = cfg.replace(device=dataclasses.replace(cfg.device, runtime=runtime))
    return train(cfg, workspace=workspace, on_event=(events if events is not None else []).append)


def logs(events: list) -> list[str]:
    return [e.text for e in events if isinstance(e, LogMessage)]


@pytest.mark.slow
def test_a_probe_in_onnxruntime_equals_one_in_torch(shapes, tmp_path):
    events: list = []
    fast = probe(shapes, tmp_path / "a", Runtime.ONNXRUNTIME, events)
    plain = probe(shapes, tmp_path / "b", Runtime.TORCH)
    assert any("runs in onnxruntime on the CPU" in t for t in logs(events))
    assert any(t.startswith("Features of ") and "onnxruntime" in t for t in logs(events))
    assert len(list((tmp_path / "a" / "cache" / "onnx").glob("*.onnx"))) == 1
    assert not (tmp_path / "b" / "cache" / "onnx").exists()
    assert fast.best_metrics["val_accuracy"] == plain.best_metrics["val_accuracy"]
    assert fast.best_metrics["val_loss"] == pytest.approx(plain.best_metrics["val_loss"], abs=1e-4)


def test_probe_predictions_match_torch_on_every_validation_image(shapes, tmp_path):
    run = RunDir(probe(shapes, tmp_path / "ws", Runtime.AUTO).run_dir)
    exports = sorted((tmp_path / "ws" / "cache" / "onnx").glob("*.onnx"))
    ort = predict_split(run, "val", runtime="auto")
    ref = predict_split(run, "val", runtime="torch")
    # The probe's backbone runs from the export its training made: nothing new is exported.
    assert sorted((tmp_path / "ws" / "cache" / "onnx").glob("*.onnx")) == exports
    assert np.array_equal(ort.preds, ref.preds)
    np.testing.assert_allclose(ort.probs, ref.probs, atol=1e-4)


@pytest.mark.slow  # a full fine-tune, then an ONNX export
def test_a_fine_tuned_run_is_exported_whole_for_large_jobs_only(shapes, tmp_path):
    cfg = tiny_config(shapes, method=Method.FULL)
    run = RunDir(train(cfg, workspace=tmp_path / "ws").run_dir)
    cache = tmp_path / "ws" / "cache" / "onnx"
    few = Predictor(run)
    few.prepare_runtime(5)
    assert few.frozen is None and not list(cache.glob("*.onnx"))  # Try it: not worth an export
    asked = predict_split(run, "val", runtime="onnxruntime")
    ref = predict_split(run, "val", runtime="torch")
    assert len(list(cache.glob("*.onnx"))) == 1
    assert np.array_equal(asked.preds, ref.preds)
    np.testing.assert_allclose(asked.probs, ref.probs, atol=1e-4)
    again = Predictor(run)
    again.prepare_runtime(1)  # the export exists now: even one image uses it
    assert again.frozen is not None
    x = again.transform(__import__("PIL.Image").Image.new("RGB", (40, 40), "red"))[None]
    np.testing.assert_allclose(
        again.image_probs(x), Predictor(run, runtime="torch").image_probs(x), atol=1e-4
    )
    assert any("checked against torch" in n for n in again.runtime_notes)


def test_device_runtime_round_trips_and_is_a_train_flag(tmp_path):
    from engine.cli import main
    from engine.config import RunConfig

    cfg = RunConfig(device=DeviceConfig(runtime=Runtime.TORCH))
    assert RunConfig.from_dict(cfg.to_dict()).device.runtime is Runtime.TORCH
    out = tmp_path / "c.json"
    shapes = make_shapes_folder(tmp_path / "s", per_class=3)
    assert main(["train", str(shapes), "--runtime", "onnxruntime", "--save-config", str(out)]) == 0
    assert RunConfig.load(out).device.runtime is Runtime.ONNXRUNTIME


def test_a_fall_back_to_torch_during_evaluation_is_a_logged_warning(
    shapes, tmp_path, monkeypatch, caplog
):
    """Evaluation and prediction have no run log: a failed export is a warning of the logging
    module (printed on stderr by the CLI), and the predictions are torch's."""
    import engine.frozen.forward as forward

    run = RunDir(probe(shapes, tmp_path / "ws", Runtime.TORCH).run_dir)

    def broken(*_args, **_kwargs):
        raise forward.OnnxUnavailable("export failed on purpose")

    monkeypatch.setattr(forward, "prepare", broken)
    with caplog.at_level("WARNING", logger="engine.frozen.predicting"):
        asked = predict_split(run, "val", runtime="onnxruntime")
    assert any("runs in torch: export failed on purpose" in r.message for r in caplog.records)
    ref = predict_split(run, "val", runtime="torch")
    assert np.array_equal(asked.preds, ref.preds)
