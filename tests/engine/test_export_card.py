"""MODEL_CARD.md: right class counts per split, fingerprints, and the evaluation's metrics."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from synthetic import make_shapes_folder

from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.evaluation.report import evaluate_run, evaluation_path, load_evaluation
from engine.export import write_model_card
from engine.runs import RunDir
from engine.training.inputs import RunData
from engine.training.trainer import train

CLASSES = ("circle", "square", "triangle")
PER_CLASS = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    shapes = make_shapes_folder(root / "shapes", classes=CLASSES, per_class=PER_CLASS)
    config = RunConfig(
        seed=5,
        name="shapes for the card",
        data=DataConfig(path=str(shapes), val_fraction=0.3, test_fraction=0.2, num_workers=0),
        model=ModelConfig(backbone="timm:test_efficientnet", pretrained=False),
        # What Recommended picks for this data, chosen here: its advice costs more than the run.
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    torch.manual_seed(0)
    result = train(config, workspace=root / "ws")
    assert str(result.status) == "completed", result.error
    return RunDir(result.run_dir)


def table(card: str, header: str) -> list[list[str]]:
    """Rows of the Markdown table whose header line starts with ``header``."""
    lines = card.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def section(card: str, title: str) -> str:
    return card.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


@pytest.mark.slow
def test_class_counts_and_fingerprints_are_those_of_the_split(run, tmp_path):
    card = write_model_card(run, tmp_path).read_text()
    data = RunData.from_dict(run.splits())
    splits = {"train": data.train, "val": data.val, "test": data.test}
    assert all(splits.values())
    counts = {name: Counter(CLASSES[s.label] for s in samples) for name, samples in splits.items()}
    rows = {row[0]: [int(v) for v in row[1:]] for row in table(card, "| class | train")}
    assert list(rows) == list(CLASSES)
    for cls in CLASSES:
        per_split = [counts["train"][cls], counts["val"][cls], counts["test"][cls]]
        assert rows[cls] == [*per_split, PER_CLASS]
    fingerprints = {row[0]: row for row in table(card, "| split | examples")}
    words = {"train": "train", "val": "validation", "test": "test"}
    for name, samples in splits.items():
        digest = hashlib.sha256("\n".join(sorted(s.digest for s in samples)).encode()).hexdigest()
        assert fingerprints[words[name]] == [words[name], str(len(samples)), digest]
    # the dataset folder by its name: a full path may name the user
    assert f"Dataset: `{Path(data.root).name}`" in card and data.root not in card.split("```")[0]


def test_metrics_are_the_evaluations_and_test_metrics_only_once_evaluated(run, tmp_path):
    card = write_model_card(run, tmp_path).read_text()
    evaluation = load_evaluation(run, "val")  # the card evaluated the run: none was saved
    assert evaluation is not None and evaluation.checkpoint == "best"
    assert not evaluation_path(run, "test").exists()  # the test split stays locked
    assert "Test metrics" not in card
    val = section(card, "Validation metrics")
    assert f"On {evaluation.n} validation examples" in val
    assert f"- Accuracy: {evaluation.accuracy:.4f}" in val
    assert f"- Balanced accuracy: {evaluation.balanced_accuracy:.4f}" in val
    assert f"- Macro F1: {evaluation.macro_f1:.4f}" in val
    rows = table(val, "| class | precision")
    for row, metrics in zip(rows, evaluation.per_class, strict=True):
        assert row[0] == metrics.name and int(row[-1]) == metrics.support
        assert [float(v.split(" (")[0]) for v in row[1:4]] == pytest.approx(
            [metrics.precision, metrics.recall, metrics.f1], abs=5e-5
        )
        ci = evaluation.intervals.of_class(metrics.name).sensitivity
        assert row[2].endswith(f"({ci.text()})") or not ci.measured

    test = evaluate_run(run, "test", allow_test=True)
    card = write_model_card(run, tmp_path).read_text()
    test_part = section(card, "Test metrics (held-out test split)")
    assert f"On {test.n} test examples" in test_part
    assert f"- Accuracy: {test.accuracy:.4f}" in test_part
    assert [int(r[-1]) for r in table(test_part, "| class | precision")] == [
        c.support for c in test.per_class
    ]


def test_card_gives_model_config_environment_and_limits(run, tmp_path):
    card = write_model_card(run, tmp_path).read_text()
    state = run.state()
    assert card.startswith("# Model card: shapes for the card")
    assert f"- Method: {run.config().adapt.method}" in card
    assert f"{state['trainable_params']:,} of {state['total_params']:,}" in card
    assert "3 classes (circle, square, triangle)" in section(card, "1 Intended use")
    config = re.search(r"```json\n(.*?)\n```", card, re.S).group(1)
    assert json.loads(config) == run.config().to_dict()
    assert "Seed: 5" in card
    environment = section(card, "Environment")
    assert state["device"] in environment
    assert f"torch {state['versions']['torch']}" in environment
    assert "Limitations" in card


def test_a_card_for_the_last_checkpoint_leaves_the_saved_evaluation_alone(run, tmp_path):
    evaluate_run(run, "val")
    saved = evaluation_path(run, "val").read_text()
    card = write_model_card(run, tmp_path, checkpoint="last").read_text()
    assert "(last checkpoint" in section(card, "Validation metrics")
    assert evaluation_path(run, "val").read_text() == saved
