"""Exporting text runs: every format (and LoRA's adapter and merged model) reproduces the run,
and the exported folder works without the original model folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_text_table, make_tiny_bert

from engine.cli import main as refit
from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.evaluation import Predictor
from engine.export import ExportedModel, ExportFormat, export_run
from engine.runs import RunDir
from engine.training.trainer import train

TEXTS = [
    ("a", "refund my card payment please"),
    ("b", "   "),
    ("c", "the parcel tracking says it arrived but it did not and the courier was late again"),
    ("d", "invoice"),
    ("e", "price charge card refund " * 20),  # longer than max_length: truncated
]


def text_run(root, method: Method) -> tuple[RunDir, object]:
    torch.manual_seed(0)
    bert = make_tiny_bert(root / "tiny-bert")
    table = make_text_table(root / "data" / "messages.tsv", per_class=16)
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        adapt=AdaptConfig(method=method),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    result = train(config, workspace=root / "ws")
    assert str(result.status) == "completed", result.error
    return RunDir(result.run_dir), bert


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A fully fine-tuned text run exported in every format; then its model folder is deleted,
    so the exported folder has to stand on its own."""
    root = tmp_path_factory.mktemp("text-export")
    run, bert = text_run(root, Method.FULL)
    results = export_run(run, ["all"], root / "exported")
    predictor = Predictor(run)
    reference = predictor.predict_texts(TEXTS, top_k=2)
    shutil.rmtree(bert)
    return root / "exported", results, reference, predictor.classes, predictor.max_length


def assert_same_predictions(got, want, tol=1e-4):
    assert [p.path for p in got] == [p.path for p in want]
    for g, w in zip(got, want, strict=True):
        assert g.error == w.error
        assert [name for name, _ in g.top] == [name for name, _ in w.top]
        assert dict(g.top) == pytest.approx(dict(w.top), abs=tol)


@pytest.mark.slow
def test_every_format_is_written_and_checked_on_validation_texts(exported):
    out, results, _, _, _ = exported
    assert [r.format for r in results] == list(ExportFormat)
    for r in results:
        assert r.max_diff is not None and r.max_diff <= 1e-4
        assert "validation texts" in r.check and "agrees on all" in r.check
    assert (out / "hf" / "config.json").is_file() and (out / "hf" / "head.safetensors").is_file()
    assert (out / "backbone" / "tokenizer.json").is_file()  # works without the HF cache


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_every_format_predicts_like_the_run_without_the_model_folder(exported, fmt):
    out, _, reference, classes, _ = exported
    model = ExportedModel.open(out, prefer=fmt)
    assert model.format == fmt and model.classes == classes and model.modality == "text"
    got = model.predict_texts(TEXTS, top_k=2, batch_size=3)
    assert got[1].error == "The text is empty."
    assert_same_predictions(got, reference)


def test_refit_model_json_of_a_text_run(exported):
    out, _, _, classes, max_length = exported
    manifest = json.loads((out / "refit_model.json").read_text())
    assert manifest["modality"] == "text" and manifest["classes"] == classes
    assert manifest["text"] == {"max_length": max_length, "tokenizer": "backbone"}
    assert manifest["backbone_folder"] == "backbone" and "preprocess" not in manifest
    assert set(manifest["inputs"]) == {"input_ids", "attention_mask"}
    assert manifest["formats"] == ["safetensors", "torchscript", "onnx", "hf"]
    assert manifest["onnx"]["exporter"] == "torch.export (dynamo)"


def test_onnx_has_dynamic_batch_and_sequence_axes(exported):
    import onnxruntime as ort

    out, _, _, _, _ = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert all(isinstance(d, str) for shape in inputs.values() for d in shape)


def test_cli_predict_on_the_exported_folder(exported, capsys):
    out, _, reference, _, _ = exported
    assert refit(["predict", str(out), "--text", TEXTS[0][1], "--top-k", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert dict(row["top"]) == pytest.approx(dict(reference[0].top), abs=1e-4)


@pytest.mark.slow
def test_lora_run_exports_adapter_and_merged_model_that_reproduce_it(tmp_path):
    from transformers import AutoModel

    from engine.models import build_model
    from engine.models.lora import load_adapter
    from engine.models.text import HFTextBackbone

    run, bert = text_run(tmp_path, Method.LORA)
    out = tmp_path / "exported"
    results = export_run(run, ["hf", "safetensors"], out)
    assert "adapter" in results[0].check
    predictor = Predictor(run)
    named = [t for t in TEXTS if t[1].strip()]
    batch = dict(
        predictor.model.tokenizer(
            [t for _, t in named], padding=True, truncation=True, max_length=32, return_tensors="pt"
        )
    )
    with torch.no_grad():
        want = predictor.model(batch).softmax(1)

    adapter = out / "hf" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and (adapter / "adapter_model.safetensors").is_file()
    with_adapter = load_adapter(build_model(ModelConfig(backbone=str(bert)), 2), adapter).eval()
    merged_backbone = HFTextBackbone(AutoModel.from_pretrained(str(out / "hf"))).eval()
    head = torch.nn.Sequential(torch.nn.Dropout(0.0), torch.nn.Linear(32, 2))
    head.load_state_dict(load_file(str(out / "hf" / "head.safetensors")))
    with torch.no_grad():
        torch.testing.assert_close(with_adapter(batch).softmax(1), want, atol=1e-5, rtol=0)
        torch.testing.assert_close(head(merged_backbone(batch)).softmax(1), want, atol=1e-4, rtol=0)

    info = json.loads((out / "hf" / "refit_head.json").read_text())
    assert info["classes"] == predictor.classes and info["lora"]["merged_into_weights"]
    assert not any(".lora_" in k for k in load_file(str(out / "model.safetensors")))
    got = ExportedModel.open(out).predict_texts(TEXTS, top_k=2)
    assert_same_predictions(got, predictor.predict_texts(TEXTS, top_k=2))
