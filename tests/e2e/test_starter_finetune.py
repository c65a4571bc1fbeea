"""End to end with the real offline starter backbone (ImageNet EfficientNet-Lite0 weights)."""

from __future__ import annotations

import pytest
from synthetic import draw_shape, make_shapes_folder, tree_snapshot

from engine.config import (
    AdaptConfig,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.evaluation import Predictor
from engine.runs import RunDir
from engine.training.trainer import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e") / "shapes"
    return make_shapes_folder(root, classes=("circle", "square", "triangle"), per_class=14, size=96)


def config(path, method: Method, epochs: int) -> RunConfig:
    return RunConfig(
        data=DataConfig(path=str(path), val_fraction=0.3, num_workers=0),
        model=ModelConfig(backbone="efficientnet_lite0"),
        adapt=AdaptConfig(method=method, last_n=1),
        schedule=ScheduleConfig(epochs=epochs, batch_size=16),
    )


def test_linear_probe_on_the_starter_backbone_learns_and_predicts(shapes, tmp_path):
    before = tree_snapshot(shapes)
    result = train(config(shapes, Method.LINEAR_PROBE, epochs=8), workspace=tmp_path)
    assert result.best_metrics["val_accuracy"] >= 0.9
    predictor = Predictor(RunDir(result.run_dir))
    image = tmp_path / "triangle.png"
    import random

    draw_shape("triangle", random.Random(99), 96).save(image)
    (pred,) = predictor.predict([image])
    assert pred.top[0][0] == "triangle"
    assert tree_snapshot(shapes) == before


def test_fine_tuning_the_last_group_of_the_starter_improves_over_its_first_epoch(shapes, tmp_path):
    result = train(config(shapes, Method.LAST_N, epochs=3), workspace=tmp_path)
    epochs = [r for r in RunDir(result.run_dir).metrics() if r["type"] == "epoch"]
    assert len(epochs) == 3
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result.best_metrics["val_accuracy"] >= 0.8
