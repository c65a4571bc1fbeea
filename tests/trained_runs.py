"""Tiny real trained runs for tests that need a model: an image run and a (LoRA) text run.

Each trains in a few seconds on the CPU from generated data; no weights are downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_shapes_folder, make_text_table, make_tiny_bert

IMAGE_BACKBONE = "timm:test_efficientnet"  # ~0.1M parameters, random init


def train_image_run(root: Path, *, classes: tuple[str, ...] = ("circle", "square")) -> Path:
    """Train 2 epochs of a tiny convnet on drawn shapes; returns the run folder."""
    from engine.config import (
        AugmentConfig,
        AugmentPreset,
        DataConfig,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )
    from engine.training.trainer import train

    shapes = make_shapes_folder(root / "shapes", classes=classes, per_class=12)
    config = RunConfig(
        seed=3,
        data=DataConfig(path=str(shapes), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=IMAGE_BACKBONE, pretrained=False),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT, cache_views=2),
    ).validate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFIT_HOME", str(root / "home"))
        result = train(config, workspace=root / "ws")
    return Path(result.run_dir)


def train_text_run(root: Path, *, lora: bool = True, classes: int = 2) -> Path:
    """Train 2 epochs of a random 2-layer BERT (LoRA by default) on generated messages."""
    import torch

    from engine.config import (
        AdaptConfig,
        DataConfig,
        Method,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )
    from engine.training.trainer import train

    torch.manual_seed(0)
    bert = make_tiny_bert(root / "tiny-bert")
    table = make_text_table(root / "data" / "messages.tsv", per_class=24, classes=classes)
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        adapt=AdaptConfig(method=Method.LORA if lora else Method.FULL),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
    ).validate()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFIT_HOME", str(root / "home"))
        result = train(config, workspace=root / "ws")
    return Path(result.run_dir)
