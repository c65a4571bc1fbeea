"""A tiny CPU run shared by the checkpoint reliability tests (kill-and-resume, disk faults)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    Method,
    ModelConfig,
    Monitor,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.runs import RunDir
from engine.training.checkpoint_files import BEST, weights_file

TINY = "timm:test_efficientnet"  # ~0.1M parameters, random init: fast and needs no weights
EPOCHS = 3


def tiny_config(data: Path, *, epochs: int = EPOCHS, lr: float = 3e-3) -> RunConfig:
    """Full fine-tuning on the image pipeline (resume is exact on the CPU for it)."""
    return RunConfig(
        seed=3,
        data=DataConfig(path=str(data), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(method=Method.FULL),
        # val_loss moves every epoch, so the best checkpoint is written more than once.
        schedule=ScheduleConfig(
            epochs=epochs, batch_size=8, warmup_fraction=0.0, monitor=Monitor.VAL_LOSS
        ),
        optim=OptimConfig(lr=lr),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT, cache_views=2),
    ).validate()


def final_weights(run: RunDir) -> dict[str, torch.Tensor]:
    return load_file(str(weights_file(run, "last")))


def best_weights(run: RunDir) -> dict[str, torch.Tensor]:
    return load_file(str(run.checkpoints / BEST))


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
