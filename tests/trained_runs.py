"""Tiny real trained runs for tests that need a model: an image run and a (LoRA) text run.

Each trains in a few seconds on the CPU from generated data; no weights are downloaded. A test
process trains each kind of run once, in a private folder, and hands every caller its own copy
of that folder (data, workspace and run), so tests may damage their copy of the run freely.
A copy's config.json and splits.json still name the private folder's data, which no test may
change (it is identical to the copy's own data, and removed when the process ends).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from synthetic import make_shapes_folder, make_text_table, make_tiny_bert

IMAGE_BACKBONE = "timm:test_efficientnet"  # ~0.1M parameters, random init


_TRAINED: dict[tuple, tuple[Path, Path]] = {}  # kind of run -> (its private root, its run)


def _copy_of(key: tuple, root: Path, train_into: Callable[[Path], Path]) -> Path:
    """The run ``train_into`` trains, as a copy under ``root``; trained once per process.

    The copy's config.json names the private root's data (identical, and never changed)."""
    if key not in _TRAINED:
        private = Path(tempfile.mkdtemp(prefix="refit-test-run-"))
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        _TRAINED[key] = (private, train_into(private))
    private, run = _TRAINED[key]
    shutil.copytree(private, root, dirs_exist_ok=True, symlinks=True)
    return root / run.relative_to(private)


def train_image_run(root: Path, *, classes: tuple[str, ...] = ("circle", "square")) -> Path:
    """Train 2 epochs of a tiny convnet on drawn shapes; returns the run folder (a copy of the
    process's one run of these classes)."""
    return _copy_of(("image", classes), root, lambda into: _train_image_run(into, classes))


def _train_image_run(root: Path, classes: tuple[str, ...]) -> Path:
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
    """Train 2 epochs of a random 2-layer BERT (LoRA by default) on generated messages; returns
    the run folder (a copy of the process's one run of these arguments)."""
    key = ("text", lora, classes)
    return _copy_of(key, root, lambda into: _train_text_run(into, lora, classes))


def _train_text_run(root: Path, lora: bool, classes: int) -> Path:
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
