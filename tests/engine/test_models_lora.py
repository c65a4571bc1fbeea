"""LoRA and the other methods on transformers: exact trainable counts, targets, refusals."""

from __future__ import annotations

import json

import pytest
import torch

from engine.config import AdaptConfig, Method, ModelConfig
from engine.models import ModelError, adapt_model, build_model, count_parameters
from engine.models.lora import (
    default_lora_targets,
    load_adapter,
    lora_candidates,
    lora_param_count,
    merged_copy,
    save_adapter,
)

MINILM = "all-MiniLM-L6-v2"
H, FFN, LAYERS = 384, 1536, 6  # all-MiniLM-L6-v2's hidden size, feed-forward size and depth


@pytest.fixture(scope="module")
def minilm():
    return build_model(ModelConfig(backbone=MINILM), 2)


def fresh(minilm):
    import copy

    return copy.deepcopy(minilm)


def lora_size(r: int, shapes: list[tuple[int, int]]) -> int:
    """Parameters of rank-r adapters on linear layers of (in, out) shapes: A is r×in, B out×r."""
    return sum(r * (i + o) for i, o in shapes)


def test_minilm_groups_and_total_match_the_architecture(minilm):
    names = [g.name for g in minilm.groups]
    assert names == ["embeddings", *[f"block{i}" for i in range(LAYERS)], "head"]
    per_block = 4 * (H * H + H) + 2 * H * FFN + FFN + H + 4 * H  # q,k,v,o + FFN + 2 LayerNorms
    assert {g.num_params for g in minilm.groups if g.name.startswith("block")} == {per_block}
    assert minilm.tokenizer is not None and minilm.modality == "text"


@pytest.mark.parametrize(
    ("adapt", "expected"),
    [
        (AdaptConfig(method=Method.LINEAR_PROBE), lambda m, head: head),
        (AdaptConfig(method=Method.FULL), lambda m, head: count_parameters(m).total),
        (
            AdaptConfig(method=Method.LAST_N, last_n=2),
            lambda m, head: head + 2 * m.groups[1].num_params,
        ),
        (
            AdaptConfig(method=Method.CUSTOM, frozen_groups=["embeddings", "block0"]),
            lambda m, head: head + 5 * m.groups[1].num_params,
        ),
        (
            AdaptConfig(method=Method.LORA),  # defaults: rank 8 on query and value
            lambda m, head: head + LAYERS * lora_size(8, [(H, H), (H, H)]),
        ),
        (
            AdaptConfig(method=Method.LORA, lora_rank=4, lora_targets=["query", "key", "dense"]),
            # dense: the attention output (H→H), the FFN's intermediate (H→FFN) and output (FFN→H)
            lambda m, head: (
                head + LAYERS * lora_size(4, [(H, H), (H, H), (H, H), (H, FFN), (FFN, H)])
            ),
        ),
    ],
    ids=["linear-probe", "full", "last-2", "custom", "lora", "lora-r4-qk-dense"],
)
def test_trainable_counts_are_exact_for_every_method(minilm, adapt, expected):
    model = fresh(minilm)
    head = H * 2 + 2
    _, count = adapt_model(model, adapt)
    assert count.trainable == expected(model, head)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count.trainable


def test_lora_defaults_train_under_two_percent_and_leave_the_model_unchanged_at_start(minilm):
    model = fresh(minilm).eval()
    batch = dict(
        model.tokenizer(["a short text", "another one here"], padding=True, return_tensors="pt")
    )
    before = model(batch)
    _, count = adapt_model(model, AdaptConfig(method=Method.LORA))
    assert count.trainable / count.total < 0.02
    model.eval()
    torch.testing.assert_close(model(batch), before)  # B starts at zero: same function
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(".lora_" in n or n.startswith("head.") for n in names)
    assert lora_param_count(fresh(minilm), AdaptConfig(method=Method.LORA)) == count


@pytest.mark.slow  # builds full-size ViT and BERT-family models
def test_lora_targets_are_found_for_each_transformer_family():
    vit_timm = build_model(
        ModelConfig(backbone="timm:vit_small_patch16_224"), 3, load_weights=False
    )
    assert lora_candidates(vit_timm) == ["qkv", "proj", "fc1", "fc2"]
    assert default_lora_targets(vit_timm) == ["qkv"]
    _, count = adapt_model(vit_timm, AdaptConfig(method=Method.LORA))
    assert count.trainable == 12 * lora_size(8, [(384, 3 * 384)]) + 384 * 3 + 3

    vit_tv = build_model(ModelConfig(backbone="vit_b_16"), 3, load_weights=False)
    assert default_lora_targets(vit_tv) == ["self_attention"]
    _, count = adapt_model(vit_tv, AdaptConfig(method=Method.LORA))
    # peft adapts nn.MultiheadAttention's packed input projection and its output projection.
    per_layer = lora_size(8, [(768, 3 * 768), (768, 768)])
    assert count.trainable == 12 * per_layer + 768 * 3 + 3
    x = torch.randn(1, 3, 224, 224)
    vit_tv.train()
    vit_tv(x).sum().backward()
    grads = [p.grad for n, p in vit_tv.named_parameters() if ".lora_B" in n]
    assert grads and all(g is not None for g in grads)


def test_lora_on_a_convnet_or_an_unknown_layer_is_refused_with_a_sentence(minilm):
    convnet = build_model(ModelConfig(backbone="timm:test_efficientnet", pretrained=False), 2)
    with pytest.raises(ModelError, match="transformer backbone"):
        adapt_model(convnet, AdaptConfig(method=Method.LORA))
    with pytest.raises(ModelError, match="query, key, value, dense"):
        adapt_model(fresh(minilm), AdaptConfig(method=Method.LORA, lora_targets=["wq"]))


def test_adapter_saves_in_peft_format_and_loads_back_to_the_same_predictions(minilm, tmp_path):
    model = fresh(minilm)
    adapt_model(model, AdaptConfig(method=Method.LORA))
    with torch.no_grad():  # make the adapters and head non-trivial
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    batch = dict(
        model.tokenizer(
            ["first text", "the second text is longer"], padding=True, return_tensors="pt"
        )
    )
    expected = model(batch)

    folder = save_adapter(model, tmp_path / "adapter", ["a", "b"])
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    assert (folder / "adapter_model.safetensors").is_file()

    loaded = load_adapter(fresh(minilm), folder).eval()
    torch.testing.assert_close(loaded(batch), expected)
    merged = merged_copy(model).eval()
    torch.testing.assert_close(merged(batch), expected, rtol=1e-4, atol=1e-5)
    assert not any(".lora_" in n for n, _ in merged.named_parameters())

    from peft import PeftModel  # the adapter also loads with peft alone, onto the base encoder
    from transformers import AutoModel

    from engine.models.weights import text_starter_folder

    base = AutoModel.from_pretrained(str(text_starter_folder()))
    plain = PeftModel.from_pretrained(base, str(folder)).eval()
    hidden = plain(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(model.backbone(batch), pooled, rtol=1e-4, atol=1e-5)


def test_remote_code_is_refused_unless_allowed(tmp_path):
    from engine.models.weights import text_starter_folder

    folder = tmp_path / "custom-model"
    folder.mkdir()
    config = json.loads((text_starter_folder() / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ModelError, match="allow remote code"):
        build_model(ModelConfig(backbone=str(folder), pretrained=False), 2)
