"""Freeze plans, parameter counts, and frozen BatchNorm staying frozen in train mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.config import AdaptConfig, Method, ModelConfig
from engine.models import (
    Classifier,
    ModelError,
    ParamCount,
    apply_freeze,
    backbone_is_frozen,
    build_model,
    count_parameters,
    resolve_frozen_groups,
)

BODY = ["stem", "layer1", "layer2", "layer3", "layer4"]


@pytest.fixture(scope="module")
def resnet18() -> Classifier:
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="resnet18", pretrained=False), 2)


def plan(model: Classifier, method: Method, **kw) -> list[str]:
    return resolve_frozen_groups(model, AdaptConfig(method=method, **kw))


def test_plans(resnet18):
    assert plan(resnet18, Method.LINEAR_PROBE) == BODY
    assert plan(resnet18, Method.FULL) == []
    assert plan(resnet18, Method.LAST_N, last_n=2) == ["stem", "layer1", "layer2"]
    assert plan(resnet18, Method.LAST_N, last_n=0) == BODY
    assert plan(resnet18, Method.LAST_N, last_n=99) == []
    custom = plan(resnet18, Method.CUSTOM, frozen_groups=["layer2", "stem"])
    assert custom == ["stem", "layer2"]  # forward order


def test_custom_plan_errors_name_the_groups(resnet18):
    with pytest.raises(ModelError, match="stem, layer1, layer2, layer3, layer4, head"):
        plan(resnet18, Method.CUSTOM, frozen_groups=["layer9"])
    with pytest.raises(ModelError, match="head cannot be frozen"):
        plan(resnet18, Method.CUSTOM, frozen_groups=["head"])
    with pytest.raises(ModelError):
        apply_freeze(resnet18, ["nope"])


def test_parameter_counts(resnet18):
    total = count_parameters(resnet18).total
    assert total == 11_176_512 + 512 * 2 + 2
    assert apply_freeze(resnet18, plan(resnet18, Method.LINEAR_PROBE)) == ParamCount(
        trainable=512 * 2 + 2, total=total
    )
    assert backbone_is_frozen(resnet18)
    assert resnet18.frozen_group_names() == BODY
    layer4 = next(g for g in resnet18.groups if g.name == "layer4").num_params
    assert apply_freeze(resnet18, plan(resnet18, Method.LAST_N, last_n=1)).trainable == (
        layer4 + 512 * 2 + 2
    )
    assert not backbone_is_frozen(resnet18)
    assert apply_freeze(resnet18, []) == ParamCount(trainable=total, total=total)
    assert resnet18.frozen_group_names() == []


def test_frozen_batchnorm_stays_in_eval_and_keeps_statistics(resnet18):
    apply_freeze(resnet18, plan(resnet18, Method.LAST_N, last_n=1))
    resnet18.train()
    groups = {g.name: g for g in resnet18.groups}
    modules = dict(resnet18.named_modules())
    frozen_bn = [
        modules[m]
        for name in ("stem", "layer1", "layer2", "layer3")
        for m in groups[name].module_names
        if isinstance(modules[m], nn.BatchNorm2d)
    ]
    live_bn = [
        modules[m] for m in groups["layer4"].module_names if isinstance(modules[m], nn.BatchNorm2d)
    ]
    assert frozen_bn and live_bn
    assert not any(bn.training for bn in frozen_bn)
    assert all(bn.training for bn in live_bn) and resnet18.head.training
    before = [bn.running_mean.clone() for bn in frozen_bn]
    live_before = live_bn[0].running_mean.clone()
    resnet18(torch.randn(4, 3, 64, 64))
    assert all(torch.equal(b, bn.running_mean) for b, bn in zip(before, frozen_bn, strict=True))
    assert not torch.equal(live_before, live_bn[0].running_mean)
    resnet18.eval()
    assert not any(m.training for m in resnet18.modules())
    apply_freeze(resnet18, [])
    resnet18.train()
    assert all(m.training for m in resnet18.modules())


def test_apply_freeze_updates_modes_of_a_model_already_training(resnet18):
    resnet18.train()
    apply_freeze(resnet18, BODY)
    assert not resnet18.backbone.bn1.training and resnet18.head.training


def test_frozen_dropout_in_a_mobilenet_pre_logits_group():
    model = build_model(ModelConfig(backbone="mobilenet_v3_large", pretrained=False), 2)
    apply_freeze(model, resolve_frozen_groups(model, AdaptConfig()))
    model.train()
    assert not model.backbone.classifier[2].training  # dropout inside the frozen pre-logits
    assert model.head[0].training
