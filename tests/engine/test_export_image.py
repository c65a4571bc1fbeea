"""Exporting an image run: every format reproduces the run's Predictor; refusals; the manifest."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from synthetic import make_shapes_folder, tree_snapshot

from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.evaluation import Predictor
from engine.export import ExportedModel, ExportError, ExportFormat, export_run
from engine.models import resolve_entry
from engine.runs import RunDir
from engine.task import Task
from engine.training.trainer import train

TINY = "timm:test_efficientnet"  # ~0.1M parameters, random init: fast and needs no weights


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-export")
    shapes = make_shapes_folder(root / "shapes", per_class=10)
    config = RunConfig(
        seed=3,
        data=DataConfig(path=str(shapes), val_fraction=0.3, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        # What Recommended picks for this data, chosen here: its advice costs more than the run.
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    torch.manual_seed(0)
    result = train(config, workspace=root / "ws")
    assert str(result.status) == "completed", result.error
    return RunDir(result.run_dir), shapes


@pytest.fixture(scope="module")
def exported(image_run, tmp_path_factory):
    run, shapes = image_run
    before = tree_snapshot(shapes)
    out = tmp_path_factory.mktemp("out") / "exported"
    messages: list[str] = []
    results = export_run(run, ["all"], out, task=Task(lambda p: messages.append(p.message)))
    assert tree_snapshot(shapes) == before  # the dataset is never written to
    return out, results, messages


def images(shapes):
    """A few images of each class."""
    return sorted(shapes.rglob("*_00[0-3].png"))


@pytest.fixture(scope="module")
def reference(image_run):
    run, shapes = image_run
    predictor = Predictor(run)
    return predictor.classes, predictor.predict(images(shapes), top_k=2)


def assert_same_predictions(got, want, tol=1e-4):
    assert [p.path for p in got] == [p.path for p in want]
    for g, w in zip(got, want, strict=True):
        assert g.error == w.error
        assert [name for name, _ in g.top] == [name for name, _ in w.top]
        assert dict(g.top) == pytest.approx(dict(w.top), abs=tol)


@pytest.mark.slow
def test_all_means_every_format_but_hf_and_each_is_checked(exported):
    out, results, messages = exported
    assert [r.format for r in results] == [
        ExportFormat.SAFETENSORS,
        ExportFormat.TORCHSCRIPT,
        ExportFormat.ONNX,
    ]
    for r in results:
        assert r.max_diff is not None and r.max_diff <= 1e-4
        assert "validation images" in r.check and "agrees on all" in r.check
        assert all(p.is_file() and p.parent == out for p in r.files)
    onnx = results[2]
    assert onnx.check.startswith("ONNX (onnxruntime) vs PyTorch")
    assert (out / "MODEL_CARD.md").is_file() and (out / "refit_model.json").is_file()
    assert messages and any("ONNX" in m for m in messages)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_every_format_predicts_like_the_run(image_run, exported, reference, fmt):
    _, shapes = image_run
    out, _, _ = exported
    classes, want = reference
    model = ExportedModel.open(out, prefer=fmt)
    assert model.format == fmt and model.modality == "image"
    got = model.predict(images(shapes), top_k=2, batch_size=3)  # not the traced batch size
    assert model.classes == classes
    assert_same_predictions(got, want)


def test_open_prefers_onnx_and_reports_unreadable_files(exported, tmp_path):
    out, _, _ = exported
    model = ExportedModel.open(out)
    assert model.format == "onnx"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = model.predict([broken])[0]
    assert result.error and "broken.png" in result.error and not result.top
    with pytest.raises(ExportError, match="classifies images"):
        model.predict_texts([("a", "some text")])


def test_refit_model_json_says_how_to_feed_the_model(image_run, exported):
    run, _ = image_run
    out, _, _ = exported
    manifest = json.loads((out / "refit_model.json").read_text())
    pre = resolve_entry(TINY).preprocess
    assert manifest["classes"] == ["circle", "square"]
    assert manifest["modality"] == "image"
    assert manifest["backbone"] == TINY and manifest["backbone_folder"] is None
    assert manifest["run_id"] == run.run_id and manifest["checkpoint"] == "best"
    assert manifest["config"] == run.config().to_dict()
    assert manifest["formats"] == ["safetensors", "torchscript", "onnx"]
    assert manifest["onnx"]["exporter"] == "torch.export (dynamo)"
    assert manifest["onnx"]["opset"] >= 17
    assert manifest["preprocess"]["input_size"] == pre.input_size
    assert manifest["preprocess"]["mean"] == list(pre.mean)
    assert manifest["preprocess"]["std"] == list(pre.std)
    assert manifest["preprocess"]["crop_pct"] == pre.crop_pct
    assert manifest["preprocess"]["resize_size"] == pre.resize_size
    assert manifest["preprocess"]["interpolation"] == pre.interpolation
    size = pre.input_size
    assert manifest["inputs"] == {
        "pixel_values": {"shape": ["batch", 3, size, size], "dtype": "float32"}
    }


def test_onnx_has_a_dynamic_batch_and_torchscript_takes_an_image_batch(exported):
    import onnxruntime as ort

    out, _, _ = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "pixel_values" and isinstance(inp.shape[0], str)
    size = resolve_entry(TINY).preprocess.input_size
    assert inp.shape[1:] == [3, size, size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still works
        traced = torch.jit.load(str(out / "model.torchscript.pt"))
    assert traced(torch.zeros(3, 3, size, size)).shape == (3, 2)


def test_hf_is_refused_for_a_timm_backbone(image_run, tmp_path):
    run, _ = image_run
    with pytest.raises(ExportError, match=r"timm model.*safetensors, torchscript or onnx"):
        export_run(run, [ExportFormat.HF], tmp_path / "hf-out")
    assert not (tmp_path / "hf-out").exists()


def test_a_folder_inside_the_dataset_is_refused(image_run):
    run, shapes = image_run
    before = tree_snapshot(shapes)
    with pytest.raises(ExportError, match="inside the dataset folder"):
        export_run(run, ["safetensors"], shapes / "circle" / "export")
    assert tree_snapshot(shapes) == before


@pytest.mark.slow
def test_exporting_again_into_the_folder_replaces_the_earlier_export(image_run, tmp_path):
    run, shapes = image_run
    out = tmp_path / "again"
    export_run(run, ["torchscript"], out)
    results = export_run(run, ["safetensors"], out, checkpoint="last")
    assert [r.format for r in results] == [ExportFormat.SAFETENSORS]
    assert not (out / "model.torchscript.pt").exists()
    model = ExportedModel.open(out)
    assert model.format == "safetensors" and model.manifest["checkpoint"] == "last"
    paths = images(shapes)[:4]
    assert_same_predictions(model.predict(paths), Predictor(run, checkpoint="last").predict(paths))


def test_a_bad_folder_gets_one_sentence(tmp_path):
    with pytest.raises(ExportError, match=r"no refit_model\.json"):
        ExportedModel.open(tmp_path)
    (tmp_path / "refit_model.json").write_text("{not json")
    with pytest.raises(ExportError, match="cannot be read"):
        ExportedModel.open(tmp_path)
    (tmp_path / "refit_model.json").write_text(json.dumps({"classes": ["a"], "modality": "image"}))
    with pytest.raises(ExportError, match="holds no model file"):
        ExportedModel.open(tmp_path)
    with pytest.raises(ExportError, match="not known"):
        export_run(None, ["tflite"], tmp_path)  # type: ignore[arg-type]


@pytest.fixture
def no_dynamo(monkeypatch):
    """torch.onnx.export whose torch.export-based exporter fails, as it does on some models."""
    real = torch.onnx.export

    def export(*args, dynamo=True, **kwargs):
        if dynamo:
            raise RuntimeError("an operator torch.export cannot capture")
        kwargs.pop("dynamic_shapes", None)
        return real(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)


def test_onnx_falls_back_to_the_torchscript_based_exporter(image_run, tmp_path, no_dynamo):
    run, _ = image_run
    (result,) = export_run(run, ["onnx"], tmp_path / "out")
    assert result.max_diff <= 1e-4
    manifest = json.loads((tmp_path / "out" / "refit_model.json").read_text())
    assert manifest["onnx"]["exporter"] == "TorchScript-based (dynamo=False)"
    assert manifest["formats"] == ["onnx"]


def test_an_onnx_file_that_does_not_reproduce_the_run_is_not_kept(
    image_run, tmp_path, no_dynamo, monkeypatch
):
    from engine.export.runtimes import OnnxRuntime

    real = OnnxRuntime.logits
    shift = np.array([2.0, 0.0], dtype=np.float32)  # moves every probability a lot
    monkeypatch.setattr(OnnxRuntime, "logits", lambda self, x: real(self, x) + shift)
    run, _ = image_run
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"does not reproduce the run on \d+ validation images"):
        export_run(run, ["onnx"], out)
    assert not out.exists()  # nothing is moved into place unless every format checks out


@pytest.mark.slow
def test_a_hugging_face_vit_exports_every_format_with_its_image_processor(tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    vit = tmp_path / "tiny-hf-vit"
    torch.manual_seed(0)
    vit_config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
    ViTModel(
        ViTConfig(**vit_config, intermediate_size=64, image_size=32, patch_size=8)
    ).save_pretrained(str(vit))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(vit))
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=6)
    config = RunConfig(
        seed=3,
        data=DataConfig(path=str(shapes), val_fraction=0.3, num_workers=0),
        model=ModelConfig(backbone=str(vit), pretrained=False),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    run = RunDir(train(config, workspace=tmp_path / "ws").run_dir)
    out = tmp_path / "exported"
    results = export_run(run, ["all"], out)
    assert [r.format for r in results] == list(ExportFormat)
    assert all(r.max_diff <= 1e-4 for r in results)
    assert (out / "hf" / "preprocessor_config.json").is_file()
    assert (out / "hf" / "model.safetensors").is_file()
    manifest = json.loads((out / "refit_model.json").read_text())
    assert manifest["preprocess"]["input_size"] == 32
    assert manifest["onnx"]["exporter"] == "torch.export (dynamo)"
    paths = images(shapes)
    want = Predictor(run).predict(paths, top_k=2)
    for fmt in ("onnx", "safetensors"):
        assert_same_predictions(ExportedModel.open(out, prefer=fmt).predict(paths, top_k=2), want)


def test_checks_run_on_random_images_when_the_validation_images_are_gone(image_run, tmp_path):
    from engine.data import Sample
    from engine.export.checks import check_batch

    run, _ = image_run
    gone = Sample(path=str(tmp_path / "gone.png"), label=0, split="val", digest="0")
    batch = check_batch(Predictor(run), (gone,))
    assert batch.size == 4 and "no longer on this computer" in batch.source
