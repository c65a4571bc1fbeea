"""The peak-memory estimate shown before a run starts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from engine.config import DataConfig, ModelConfig, OptimConfig, Optimizer, RunConfig, ScheduleConfig
from engine.models import build_model
from engine.training.memory import MemoryEstimate, estimate_peak_memory

TINY = "timm:test_efficientnet"  # BatchNorm and a convnet: the harder case for "untouched"


def config(backbone: str = TINY, batch: int = 32, **optim) -> RunConfig:
    return RunConfig(
        data=DataConfig(path="unused"),
        model=ModelConfig(backbone=backbone, pretrained=False),
        schedule=ScheduleConfig(batch_size=batch),
        optim=OptimConfig(**optim),
    )


class TinyMLP(nn.Module):
    """Flatten, Linear(48, 16), ReLU, then a Linear(16, 2) head: saved bytes known exactly."""

    modality = "image"
    preprocess = SimpleNamespace(input_size=4)
    entry = SimpleNamespace(is_convnet=False)

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.ReLU())
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_saved_activations_and_state_match_what_autograd_keeps():
    model = TinyMLP()
    est = estimate_peak_memory(model, config(batch=10), None)
    # Per example autograd keeps the input (48 floats: Linear's input is a view of it) and the
    # ReLU output (16 floats, which the head's Linear saves too: one storage); the first Linear's
    # 16 outputs are the largest tensor not saved (the working set).
    assert est.per_example == (48 + 16 + 16) * 4
    assert est.fixed_activations == 0
    params = (48 * 16 + 16 + 16 * 2 + 2) * 4
    assert est.parameters == est.gradients == params
    assert est.optimizer == 2 * params  # AdamW: two moments
    assert est.peak == 4 * params + 10 * 80 * 4
    sgd = estimate_peak_memory(model, config(batch=10, optimizer=Optimizer.SGD), None)
    assert sgd.optimizer == params
    plain = estimate_peak_memory(model, config(optimizer=Optimizer.SGD, momentum=0.0), None)
    assert plain.optimizer == 0


def test_a_frozen_backbone_needs_only_inference_activations():
    model = TinyMLP()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    est = estimate_peak_memory(model, config(batch=8), None)
    assert est.cached and est.batch_size == 64  # the feature extraction's batch
    assert est.gradients == est.optimizer == 0
    # The input batch (Flatten and the Linear see views of it) is held throughout; at its peak,
    # the ReLU reads the Linear's 16 outputs and writes 16 more.
    assert est.per_example == (48 + 16 + 16) * 4
    assert "while computing features in batches of 64" in est.sentence()


def test_estimate_grows_with_the_batch_and_with_what_trains():
    model = build_model(ModelConfig(backbone=TINY, pretrained=False), 2)
    groups = [g.name for g in model.groups]
    probe = estimate_peak_memory(model, config(), groups[:-1])
    last_n = estimate_peak_memory(model, config(), groups[:-3])
    full = estimate_peak_memory(model, config(), [])
    assert probe.cached and not last_n.cached and not full.cached
    assert probe.peak_for(32) < last_n.peak_for(32) < full.peak_for(32)
    assert last_n.gradients < full.gradients
    small = estimate_peak_memory(model, config(batch=8), [])
    assert small.peak < full.peak
    assert full.peak - small.peak == 24 * full.per_example
    sentence = full.sentence()
    assert sentence.startswith("Peak memory about ") and "for batch 32 of the" in sentence
    assert sentence.endswith("available on the CPU.")


def test_measuring_the_trainers_model_leaves_it_as_it_was():
    model = build_model(ModelConfig(backbone=TINY, pretrained=False), 2)
    model.eval()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    estimate_peak_memory(model, config(), None)
    torch.testing.assert_close(torch.rand(3), expected_draw, msg="the random stream moved")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, buffers[key], msg=key)
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def gb(x: float) -> int:
    return int(x * 1e9)


def test_sentence_says_when_it_fits_and_which_batch_would():
    fits = MemoryEstimate(
        device_type="cuda",
        batch_size=32,
        parameters=gb(0.3),
        gradients=gb(0.3),
        optimizer=gb(0.6),
        fixed_activations=0,
        per_example=gb(0.9 / 32),
        available=gb(6),
    )
    assert (
        fits.sentence()
        == "Peak memory about 2.1 GB for batch 32 of the 6.0 GB free on the CUDA GPU."
    )
    big = MemoryEstimate(
        device_type="cuda",
        batch_size=64,
        parameters=gb(0.5),
        gradients=gb(0.5),
        optimizer=gb(1.0),
        fixed_activations=0,
        per_example=gb(0.15),
        available=gb(6),
    )
    assert not big.fits and big.largest_batch() == 16
    assert big.sentence().endswith("batch 64 likely does not fit; 16 would.")
    hopeless = MemoryEstimate(
        device_type="mps",
        batch_size=8,
        parameters=gb(8),
        gradients=gb(8),
        optimizer=gb(16),
        fixed_activations=0,
        per_example=gb(0.1),
        available=gb(10),
    )
    assert hopeless.largest_batch() == 0
    assert "even one example likely does not fit" in hopeless.sentence()
    assert "on the Apple GPU" in hopeless.sentence()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backbone", ["timm:resnet18", "timm:vit_tiny_patch16_224"])
def test_estimate_is_close_to_the_measured_cuda_peak(backbone):
    from engine.config import DeviceConfig, Precision

    cfg = config(backbone, batch=32).replace(device=DeviceConfig(precision=Precision.FP32))
    model = build_model(cfg.model, 10).cuda()
    est = estimate_peak_memory(model, cfg, None)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(32, 3, model.preprocess.input_size, model.preprocess.input_size).cuda()
    y = torch.randint(0, 10, (32,)).cuda()
    for _ in range(2):  # the second step has the optimizer state in place
        torch.cuda.reset_peak_memory_stats()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = torch.cuda.max_memory_allocated()
    assert 0.6 < est.peak / measured < 1.6, (est.peak, measured)
