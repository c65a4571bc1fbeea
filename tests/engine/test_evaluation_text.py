"""Evaluating a real (tiny) trained text run: texts from splits.json, three classes, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from synthetic import make_text_table, make_tiny_bert, tree_snapshot

from engine.cli import main as refit
from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.evaluation import (
    TestSplitLocked,
    compare_runs,
    evaluate_run,
    examples_in_cell,
    find_base_run,
    load_predictions,
    predict_split,
)
from engine.evaluation.compare import compare_predictions
from engine.runs import RunDir, Workspace
from engine.task import Task
from engine.training.trainer import train


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-eval")
    torch.manual_seed(0)
    bert = make_tiny_bert(root / "tiny-bert")
    table = make_text_table(root / "data" / "messages.csv", per_class=12, classes=3)
    cfg = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, test_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(epochs=3, batch_size=8, warmup_fraction=0.0),
    ).validate()
    result = train(cfg, workspace=root / "ws")
    assert str(result.status) == "completed"
    return RunDir(result.run_dir), table, Workspace(root / "ws")


def test_a_text_run_is_evaluated_on_the_texts_it_stored(text_run):
    run, table, _ = text_run
    before = tree_snapshot(table.parent)
    table.write_text("id,message,category\n", encoding="utf-8")  # the source changed since
    try:
        ev = evaluate_run(run)
        preds = load_predictions(run)
    finally:
        for rel, (_, _, content) in before.items():
            (table.parent / rel).write_bytes(content)
    rows = run.splits()["val"]
    assert preds.modality == "text" and ev.modality == "text"
    assert preds.refs == tuple(r[0] for r in rows)
    assert preds.digests == tuple(r[2] for r in rows)
    assert ev.classes == ("billing", "delivery", "tech") and ev.n == len(rows) == 9
    assert ev.positive is None and set(ev.roc) == set(ev.classes)
    assert ev.accuracy == pytest.approx(run.summary()["best"]["val_accuracy"])
    assert sum(map(sum, ev.confusion)) == 9
    wrong = [i for t in range(3) for p in range(3) if t != p for i in examples_in_cell(preds, t, p)]
    assert sorted(wrong) == np.flatnonzero(~preds.correct).tolist()


def test_text_test_split_is_locked_then_unlocked(text_run):
    run, _, _ = text_run
    with pytest.raises(TestSplitLocked):
        predict_split(run, "test")
    seen = []
    task = Task(lambda p: seen.append((p.done, p.total)))
    preds = predict_split(run, "test", allow_test=True, batch_size=4, task=task)
    assert preds.n == len(run.splits()["test"]) and seen[-1] == (preds.n, preds.n)
    assert np.allclose(preds.probs.sum(1), 1, atol=1e-5)


def test_a_text_linear_probe_compared_with_itself(text_run, capsys):
    run, _, ws = text_run
    assert find_base_run(ws, run) == run
    c = compare_runs(run, run)
    assert c.n == 9 and c.only_a_right == c.only_b_right == 0 and c.p_value == 1.0
    assert compare_predictions(load_predictions(run), load_predictions(run)) == c
    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id]) == 0
    out = capsys.readouterr().out
    assert "val split (9 texts)" in out and "ROC AUC" in out and "avg precision" in out
    assert "Positive class" not in out  # three classes: no positive class
    assert "mean ROC AUC over the classes" in out and "95% CI" in out
    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id, "--test", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["split"] == "test" and data["positive"] is None and data["operating"] is None
