"""Frozen text encoders in onnxruntime: exported once, checked against torch, torch otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_text_table, make_tiny_bert

from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.events import LogMessage
from engine.frozen import text as frozen_text
from engine.frozen.text import encoder_key, ort_text_encoder, text_runtime_enabled
from engine.models.text import HFTextBackbone, load_tokenizer
from engine.training.trainer import train

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch.manual_seed(0)
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


def _backbone(folder: Path) -> HFTextBackbone:
    from transformers import AutoModel

    return HFTextBackbone(AutoModel.from_pretrained(str(folder))).eval()


def _sample(folder: Path) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(folder)
    texts = ["where is my parcel", "refund the double charge on my card please, today", "hi"]
    out = tokenizer(texts, padding=True, return_tensors="pt")
    return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def test_the_exported_encoder_matches_torch_and_is_reused(tiny_bert, tmp_path, monkeypatch):
    backbone, sample, lines = _backbone(tiny_bert), _sample(tiny_bert), []
    key = encoder_key(tiny_bert, weights=None, max_length=32, pooling="mean")
    encoder = ort_text_encoder(backbone, tmp_path, key, sample, lines.append)
    assert encoder is not None and "runs in onnxruntime" in lines[-1]
    # another batch size and length than the export's: the axes are dynamic
    longer = {k: torch.cat([v, v], 1)[:2] for k, v in sample.items()}
    with torch.inference_mode():
        want = backbone(longer)
    assert (encoder(longer) - want).abs().max() <= frozen_text.TOLERANCE
    monkeypatch.setattr(frozen_text, "export_text_encoder", _fail)
    assert ort_text_encoder(backbone, tmp_path, key, sample, lines.append) is not None


def _fail(*_args, **_kwargs):
    raise RuntimeError("exporter exploded")


def test_a_failed_export_or_check_falls_back_to_torch_with_one_line(
    tiny_bert, tmp_path, monkeypatch
):
    backbone, sample, lines = _backbone(tiny_bert), _sample(tiny_bert), []
    monkeypatch.setattr(frozen_text, "export_text_encoder", _fail)
    assert ort_text_encoder(backbone, tmp_path / "a", "k", sample, lines.append) is None
    assert lines == [
        "The frozen text encoder runs in torch: torch could not export it to ONNX (exporter "
        "exploded)."
    ]
    monkeypatch.undo()
    monkeypatch.setattr(frozen_text, "TOLERANCE", -1.0)  # no export can pass
    assert ort_text_encoder(backbone, tmp_path / "b", "k", sample, lines.append) is None
    assert "differ from torch's" in lines[-1]
    assert not list((tmp_path / "b").glob("*.onnx"))  # a failed export is not kept


def test_the_key_follows_the_weights_and_the_settings(tiny_bert, tmp_path):
    base = encoder_key(tiny_bert, weights=None, max_length=32, pooling="mean")
    assert base == encoder_key(tiny_bert, weights=None, max_length=32, pooling="mean")
    assert base != encoder_key(tiny_bert, weights=None, max_length=64, pooling="mean")
    override = tmp_path / "w.safetensors"
    override.write_bytes(b"x")
    assert base != encoder_key(tiny_bert, weights=str(override), max_length=32, pooling="mean")


def test_runtime_choice_torch_turns_it_off() -> None:
    class Device:
        runtime = "torch"

    class Config:
        device = Device()

    assert text_runtime_enabled(RunConfig()) is True
    assert text_runtime_enabled(Config()) is False


def _probe(table: Path, bert: Path, workspace: Path) -> tuple[dict, list[str]]:
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
    ).validate()
    lines: list[str] = []
    log = lambda e: lines.append(e.text) if isinstance(e, LogMessage) else None  # noqa: E731
    result = train(config, workspace=workspace, on_event=log)
    assert str(result.status) == "completed", result.error
    feats = {}
    for f in sorted((workspace / "cache" / "features").glob("*.safetensors")):
        feats[f.name] = next(iter(load_file(str(f)).values()))
    return feats, lines


@pytest.mark.slow  # two training runs
def test_a_text_probe_computes_its_features_in_onnxruntime_as_torch_would(
    tiny_bert, tmp_path, monkeypatch
):
    table = make_text_table(tmp_path / "data" / "messages.tsv", per_class=24)
    ort_feats, ort_lines = _probe(table, tiny_bert, tmp_path / "ws-ort")
    assert any("runs in onnxruntime" in line for line in ort_lines)
    monkeypatch.setattr(frozen_text, "text_runtime_enabled", lambda _config: False)
    torch_feats, torch_lines = _probe(table, tiny_bert, tmp_path / "ws-torch")
    assert not any("onnxruntime" in line for line in torch_lines)
    assert ort_feats.keys() == torch_feats.keys() and len(ort_feats) == 2
    for name, feats in ort_feats.items():
        assert (feats - torch_feats[name]).abs().max() <= frozen_text.TOLERANCE


@pytest.mark.slow  # a training run
def test_a_text_probe_predicts_and_evaluates_with_its_trainings_export(tiny_bert, tmp_path, capsys):
    """Prediction and evaluation of a trained text probe run its frozen encoder from the export
    its training made (no new export), and give torch's classes and probabilities."""
    from engine.evaluation.predict import Predictor
    from engine.modalities import modality_of
    from engine.runs import Workspace
    from engine.task import Task

    table = make_text_table(tmp_path / "data" / "messages.tsv", per_class=24)
    workspace = tmp_path / "ws"
    _probe(table, tiny_bert, workspace)
    exports = sorted((workspace / "cache" / "onnx").glob("text-encoder-*.onnx"))
    assert len(exports) == 1
    stamp = exports[0].stat().st_mtime_ns
    (folder,) = (workspace / "runs").iterdir()
    run = Workspace(workspace).open_run(folder.name)
    texts = [(f"t{i}", t) for i, t in enumerate(["where is my parcel", "refund me now", "hi"])]
    ort, plain = Predictor(run), Predictor(run, runtime="torch")
    got, want = ort.predict_texts(texts), plain.predict_texts(texts)
    assert ort.frozen is not None and plain.frozen is None
    assert any("onnxruntime" in note for note in ort.runtime_notes)
    for a, b in zip(got, want, strict=True):
        assert [c for c, _ in a.top] == [c for c, _ in b.top]
        assert max(abs(p - q) for (_, p), (_, q) in zip(a.top, b.top, strict=True)) < 1e-4
    refs = [t for _, t in texts] * 5  # evaluation's path: batches of a split's texts
    handler = modality_of(ort.modality)
    fresh = Predictor(run)
    probs = handler.split_probs(fresh, run, refs, 4, Task())
    torch_probs = handler.split_probs(plain, run, refs, 4, Task())
    assert fresh.frozen is not None
    assert abs(probs - torch_probs).max() < 1e-4
    assert exports[0].stat().st_mtime_ns == stamp  # the training's export, not a new one
    # `refit evaluate` with a named runtime says where its predictions ran
    from engine.cli import main

    capsys.readouterr()
    for runtime, said in (("onnxruntime", "runs in onnxruntime"), ("torch", "Predicted in torch.")):
        args = ["--workspace", str(workspace), "evaluate", run.run_id, "--runtime", runtime]
        assert main(args) == 0
        assert said in capsys.readouterr().out


class _Pixels(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.slow  # a training run
def test_a_text_probe_predicts_in_torch_when_its_export_was_tampered_with(tiny_bert, tmp_path):
    """After training, the workspace's encoder export is replaced by another network, cut short,
    or its record forged or deleted: prediction gives torch's answers, never a traceback; a file
    that fails is removed, one that still matches torch is checked again and used."""
    import json

    from engine.evaluation.predict import Predictor
    from engine.frozen.onnx import export
    from engine.runs import Workspace

    table = make_text_table(tmp_path / "data" / "messages.tsv", per_class=24)
    workspace = tmp_path / "ws"
    _probe(table, tiny_bert, workspace)
    (path,) = (workspace / "cache" / "onnx").glob("text-encoder-*.onnx")
    record = path.with_name(path.name.replace(".onnx", ".checked.json"))
    good, signed = path.read_bytes(), record.read_text()
    (folder,) = (workspace / "runs").iterdir()
    run = Workspace(workspace).open_run(folder.name)
    texts = [(f"t{i}", t) for i, t in enumerate(["where is my parcel", "refund me now", "hi"])]
    want = [r.top for r in Predictor(run, runtime="torch").predict_texts(texts)]

    def tamper(how: str) -> None:
        path.write_bytes(good)
        record.write_text(signed)
        if how == "foreign":  # another network (an image one) under the encoder's name
            export(_Pixels(), (torch.zeros(1, 3, 8, 8),), path, inputs={"x": {0: "b"}})
        elif how == "truncated":
            path.write_bytes(good[: len(good) // 2])
        elif how == "forged":
            forged = {**json.loads(signed), "difference": 0.0, "sha256": "0" * 64}
            record.write_text(json.dumps(forged))
        elif how == "deleted":
            record.unlink(missing_ok=True)
        elif how == "removed":  # as after a training with --runtime torch
            path.unlink()
            record.unlink()

    for how, used in [
        ("foreign", False),
        ("truncated", False),
        ("forged", True),
        ("deleted", True),
        ("removed", False),  # auto makes no export of its own: torch
    ]:
        tamper(how)
        predictor = Predictor(run)
        got = [r.top for r in predictor.predict_texts(texts)]
        assert (predictor.frozen is not None) is used, how
        assert path.exists() is used, how  # a file that failed its check is not kept
        for a, b in zip(got, want, strict=True):
            assert [c for c, _ in a] == [c for c, _ in b], how
            assert all(abs(p - q) < 1e-4 for (_, p), (_, q) in zip(a, b, strict=True)), how
        if how in ("foreign", "truncated"):
            assert any("runs in torch" in note for note in predictor.runtime_notes), how
    explicit = Predictor(run, runtime="onnxruntime")  # asked for: it exports again
    explicit.predict_texts(texts)
    assert explicit.frozen is not None and path.exists()
    # an evaluation's odd texts: empty, 100 KB (cut at max_length), only padding tokens
    from engine.modalities import modality_of
    from engine.task import Task

    odd = ["", "refund " * 15_000, "[PAD] [PAD] [PAD]", "hi"]
    handler = modality_of(explicit.modality)
    fresh, plain = Predictor(run), Predictor(run, runtime="torch")
    probs = handler.split_probs(fresh, run, odd, 2, Task())
    assert fresh.frozen is not None
    assert abs(probs - handler.split_probs(plain, run, odd, 2, Task())).max() < 1e-4
