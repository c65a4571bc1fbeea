"""Trust: a pickle that runs code when loaded is refused at every place a file is loaded.

Each payload's ``__reduce__`` writes a sentinel file; every test checks that the file was never
written and that the refusal is one of the engine's own one-sentence errors.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from synthetic import make_tiny_bert

from engine.config import ModelConfig
from engine.models import ModelError, build_model
from engine.training.checkpoint import CheckpointError
from reliability.hostile_models import (
    PREPROCESS,
    classifier_weights,
    evil_legacy_torch_pickle,
    evil_npy,
    evil_torch_pickle,
    save_vit,
)

PAYLOADS = {"zip": evil_torch_pickle, "legacy": evil_legacy_torch_pickle}


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "SENTINEL"


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


def one_sentence(exc: BaseException) -> str:
    """The refusal reads as one sentence of the engine's own, never a library's trace."""
    from engine.training.provenance import error_sentence

    text = error_sentence(exc)
    assert "\n" not in text.strip(), text
    assert not text.startswith(("UnpicklingError", "RuntimeError", "AttributeError")), text
    assert "weights_only=False" not in text  # never advise loading it unsafely
    return text


def hf_cache_snapshot(root: Path, repo: str) -> Path:
    repo_dir = root / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot


# -- weights the user points at -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_model_weights_option_refuses_pickles(tmp_path, sentinel, kind):
    """model.weights: a .pt/.pth/.bin file the user (or a replayed config) names."""
    for suffix in (".pt", ".pth", ".bin"):
        path = PAYLOADS[kind](tmp_path / f"start{suffix}", sentinel)
        config = ModelConfig(backbone="timm:test_efficientnet", pretrained=False, weights=str(path))
        with pytest.raises(ModelError) as info:
            build_model(config, 2)
        assert "code" in one_sentence(info.value) and path.name in str(info.value)
    assert not sentinel.exists()


def test_torchvision_cache_file_refuses_pickles(caches, sentinel):
    from engine.models import weights_status

    expected = Path(weights_status("resnet18").source)
    evil_torch_pickle(expected, sentinel)
    with pytest.raises(ModelError) as info:
        build_model(ModelConfig(backbone="resnet18"), 2)
    one_sentence(info.value)
    assert not sentinel.exists()


def test_timm_cache_file_refuses_pickles(caches, sentinel):
    snapshot = hf_cache_snapshot(caches, "timm/test_efficientnet.r160_in1k")
    evil_torch_pickle(snapshot / "pytorch_model.bin", sentinel)
    with pytest.raises(ModelError) as info:
        build_model(ModelConfig(backbone="timm:test_efficientnet"), 2)
    one_sentence(info.value)
    assert not sentinel.exists()


def test_hugging_face_folder_refuses_pickled_weights(tmp_path, sentinel):
    folder = save_vit(tmp_path / "vit")
    (folder / "model.safetensors").unlink()
    evil_torch_pickle(folder / "pytorch_model.bin", sentinel)
    with pytest.raises(ModelError) as info:
        build_model(ModelConfig(backbone=str(folder)), 2)
    one_sentence(info.value)
    assert not sentinel.exists()


def test_lora_adapter_refuses_pickled_weights(tmp_path, sentinel):
    from peft import LoraConfig

    from engine.models.lora import load_adapter

    bert = make_tiny_bert(tmp_path / "bert")
    model = build_model(ModelConfig(backbone=str(bert), pretrained=False), 2)
    adapter = tmp_path / "adapter"
    LoraConfig(r=2, target_modules=["query", "value"]).save_pretrained(str(adapter))
    evil_torch_pickle(adapter / "adapter_model.bin", sentinel)
    with pytest.raises(ModelError) as info:
        load_adapter(model, adapter)
    one_sentence(info.value)
    assert not sentinel.exists()


# -- files the engine wrote (or someone replaced) -----------------------------------------------


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_resume_state_refuses_pickles(tmp_path, sentinel, kind):
    from engine.training.checkpoint import load_trainer_state

    path = PAYLOADS[kind](tmp_path / "last_state.pt", sentinel)
    with pytest.raises(CheckpointError) as info:
        load_trainer_state(path)
    assert "code" in one_sentence(info.value)
    assert not sentinel.exists()


def test_run_checkpoint_refuses_pickles(tmp_path, sentinel):
    """best.safetensors replaced by a pickle: safetensors never unpickles."""
    from engine.config import RunConfig
    from engine.evaluation import Predictor
    from engine.runs import RunDir

    run = tmp_path / "run"
    evil_torch_pickle(run / "checkpoints" / "best.safetensors", sentinel)
    config = RunConfig(model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False))
    (run / "config.json").write_text(config.to_json())
    (run / "summary.json").write_text(json.dumps({"classes": ["a", "b"]}))
    with pytest.raises(CheckpointError) as info:
        Predictor(RunDir(run))
    one_sentence(info.value)
    assert not sentinel.exists()


def test_feature_cache_refuses_pickles(tmp_path, sentinel):
    from engine.training.features import cached

    path = evil_torch_pickle(tmp_path / "features.safetensors", sentinel)
    tensor, was_cached = cached(path, lambda: torch.ones(3, 2))
    assert not was_cached and torch.equal(tensor, torch.ones(3, 2))
    assert not sentinel.exists()


def test_saved_predictions_refuse_pickles(tmp_path, sentinel):
    import numpy as np

    from engine.evaluation.predictions import PredictionError, SplitPredictions

    path = tmp_path / "val-predictions.npz"
    with zipfile.ZipFile(path, "w") as zf:
        evil_npy(tmp_path / "meta.npy", sentinel)
        zf.write(tmp_path / "meta.npy", "meta.npy")
        zf.writestr("labels.npy", b"")
    with pytest.raises(PredictionError) as info:
        SplitPredictions.load(path)
    one_sentence(info.value)
    assert not sentinel.exists()
    with pytest.raises(ValueError, match="allow_pickle"):  # the payload really is a pickle
        np.load(tmp_path / "meta.npy", allow_pickle=False)


# -- exported folders -----------------------------------------------------------------------------


def image_export(root: Path, formats: list[str]) -> Path:
    export = root / "export"
    backbone = save_vit(export / "backbone")
    classifier_weights(backbone, export / "model.safetensors")
    (backbone / "model.safetensors").unlink()
    manifest = {
        "format_version": 1,
        "classes": ["cat", "dog"],
        "modality": "image",
        "backbone": "vit",
        "backbone_folder": "backbone",
        "formats": formats,
        "preprocess": PREPROCESS,
        "config": {"model": {}},
    }
    (export / "refit_model.json").write_text(json.dumps(manifest))
    return export


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_exported_safetensors_refuse_pickles(tmp_path, sentinel, kind):
    from engine.export import ExportedModel

    export = image_export(tmp_path, ["safetensors"])
    PAYLOADS[kind](export / "model.safetensors", sentinel)
    with pytest.raises((ModelError, CheckpointError)) as info:
        ExportedModel.open(export)
    one_sentence(info.value)
    assert not sentinel.exists()


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_exported_torchscript_refuses_pickles(tmp_path, sentinel, kind):
    from engine.export import ExportedModel

    export = image_export(tmp_path, ["torchscript"])
    PAYLOADS[kind](export / "model.torchscript.pt", sentinel)
    with pytest.raises(ModelError) as info:
        ExportedModel.open(export)
    one_sentence(info.value)
    assert not sentinel.exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated, still loaded
def test_exported_torchscript_with_a_pickle_inside_is_refused(tmp_path, sentinel):
    """A real TorchScript archive whose data.pkl was swapped for a payload."""
    import pickle

    from engine.export import ExportedModel
    from reliability.hostile_models import _Payload

    export = image_export(tmp_path, ["torchscript"])
    real = tmp_path / "real.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(real))
    target = export / "model.torchscript.pt"
    with zipfile.ZipFile(real) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Payload(sentinel), protocol=2)
            dst.writestr(item, data)
    with pytest.raises(ModelError) as info:
        ExportedModel.open(export)
    one_sentence(info.value)
    assert not sentinel.exists()
