"""Layer groups: every parameter in exactly one group, in forward order, head last."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from engine.config import ModelConfig
from engine.models import Classifier, build_model, list_catalog
from engine.models.groups import repeated_block_groups

TORCHVISION = [e.name for e in list_catalog() if e.family == "torchvision" and e.name != "vit_b_16"]

EXPECTED = {
    "efficientnet_lite0": ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head_conv", "head"],
    "resnet18": ["stem", "layer1", "layer2", "layer3", "layer4", "head"],
    "resnet50": ["stem", "layer1", "layer2", "layer3", "layer4", "head"],
    "efficientnet_b0": ["stem"] + [f"stage{i}" for i in range(1, 8)] + ["head_conv", "head"],
    "mobilenet_v3_large": ["stem"]
    + [f"block{i}" for i in range(1, 16)]
    + ["head_conv", "pre_logits", "head"],
    "convnext_tiny": ["stem", "stage1", "stage2", "stage3", "stage4", "final_norm", "head"],
    "vit_b_16": ["embeddings"] + [f"block{i}" for i in range(12)] + ["final_norm", "head"],
    "timm:convnext_nano": ["stem", "stage1", "stage2", "stage3", "stage4", "final_norm", "head"],
    "timm:vit_small_patch16_224": ["stem"]
    + [f"block{i}" for i in range(12)]
    + ["final_norm", "head"],
}


def save_tiny_vit(folder: Path) -> Path:
    """A randomly initialised ViT image classifier small enough for a unit test."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=5,
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_vit_folder(tmp_path: Path) -> Path:
    return save_tiny_vit(tmp_path / "tiny-vit")


def build(name: str, num_classes: int = 3, *, meta: bool = False) -> Classifier:
    """Architecture only; ``meta`` skips the (slow, irrelevant here) random initialisation."""
    config = ModelConfig(backbone=name, pretrained=False)
    if not meta:
        return build_model(config, num_classes)
    with torch.device("meta"):
        return build_model(config, num_classes)


def check_groups(model: Classifier, size: int | None = 64) -> None:
    names = [g.name for g in model.groups]
    assert names[-1] == "head" and len(names) == len(set(names))
    params = dict(model.named_parameters())
    seen = [p for g in model.groups for p in g.param_names]
    assert sorted(seen) == sorted(params)  # every parameter exactly once
    modules = dict(model.named_modules())
    for g in model.groups:
        assert g.num_params == sum(params[p].numel() for p in g.param_names) > 0
        for m in g.module_names:
            own = {f"{m}.{p}" for p, _ in modules[m].named_parameters()}
            assert own <= set(g.param_names)
    head = model.groups[-1]
    assert set(head.param_names) == {"head.1.weight", "head.1.bias"}
    assert model.head[1].in_features == model.num_features
    if size is None:
        return
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, size, size))
        assert feats.shape == (1, model.num_features)
        assert model(torch.randn(1, 3, size, size)).shape == (1, model.num_classes)


HEAVY = {"resnet50", "convnext_tiny", "timm:convnext_nano", "timm:vit_small_patch16_224"}


@pytest.fixture(scope="module")
def vit_b_16() -> Classifier:
    return build("vit_b_16", 4, meta=True)


@pytest.mark.parametrize("name", [*TORCHVISION, "efficientnet_lite0", "timm:convnext_nano"])
def test_groups_cover_every_parameter(name):
    model = build(name, meta=name in HEAVY)
    check_groups(model, None if name in HEAVY else 64)
    assert [g.name for g in model.groups] == EXPECTED[name]
    backbone_params = sum(p.numel() for p in model.backbone.parameters())
    assert backbone_params == model.entry.params  # the catalog's number is right


def test_vit_b_16_groups(vit_b_16):
    check_groups(vit_b_16, size=None)
    assert [g.name for g in vit_b_16.groups] == EXPECTED["vit_b_16"]
    assert set(vit_b_16.groups[0].param_names) == {
        "backbone.class_token",
        "backbone.conv_proj.weight",
        "backbone.conv_proj.bias",
        "backbone.encoder.pos_embedding",
    }
    assert sum(p.numel() for p in vit_b_16.backbone.parameters()) == vit_b_16.entry.params


def test_timm_vit_groups():
    model = build("timm:vit_small_patch16_224", meta=True)
    check_groups(model, size=None)
    assert [g.name for g in model.groups] == EXPECTED["timm:vit_small_patch16_224"]


@pytest.mark.parametrize(
    "name",
    [
        "timm:resnet18",
        "timm:swin_tiny_patch4_window7_224",
        "timm:regnety_002",
        "timm:mobilenetv3_small_100",
    ],
)
def test_any_timm_model_gets_readable_groups(name):
    model = build(name, 2, meta=True)
    names = [g.name for g in model.groups]
    assert names[0] == "stem" and 5 <= len(names) <= 16
    stages = [n for n in names if n.startswith(("stage", "layer"))]
    assert len(stages) == 4 or "mobile" in name
    check_groups(model, size=None)


def test_timm_model_forward_gives_pooled_features():
    check_groups(build("timm:mobilenetv3_small_100", 2), size=64)


def test_hf_vit_folder_groups(tiny_vit_folder):
    model = build_model(ModelConfig(backbone=str(tiny_vit_folder), pretrained=False), 3)
    check_groups(model, size=32)
    assert [g.name for g in model.groups] == [
        "embeddings",
        "block0",
        "block1",
        "block2",
        "final_norm",
        "head",
    ]
    assert model.entry.family == "hf" and model.preprocess.input_size == 32
    assert model.num_features == 32


def test_generic_groups_work_for_text_encoders():
    from transformers import BertConfig, BertModel

    bert = BertModel(
        BertConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            vocab_size=50,
        )
    )
    spec = repeated_block_groups(bert)
    assert [name for name, _ in spec] == ["embeddings", "block0", "block1", "final"]
    assert sorted(p for _, names in spec for p in names) == sorted(
        n for n, _ in bert.named_parameters()
    )


def test_generic_groups_without_a_block_list():
    spec = repeated_block_groups(nn.Sequential(nn.Linear(2, 2)))
    assert spec == [("backbone", ["0.weight", "0.bias"])]
