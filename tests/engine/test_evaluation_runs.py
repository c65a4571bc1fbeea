"""Evaluating real (tiny) trained image runs: saved reports, the locked test split, files that
went missing, the base run, and `refit evaluate` / `refit compare`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_shapes_folder, tree_snapshot

from engine.cli import main as refit
from engine.config import (
    AdaptConfig,
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.evaluation import (
    TestSplitLocked,
    base_config,
    compare_runs,
    evaluate_run,
    find_base_run,
    load_evaluation,
    load_predictions,
    predict_split,
)
from engine.evaluation.predictions import PredictionError
from engine.evaluation.report import evaluation_path
from engine.runs import RunDir, Workspace
from engine.task import Cancelled, Task
from engine.training import setup as training_setup
from engine.training.trainer import train

TINY = "timm:test_efficientnet"


class OpenedFiles:
    """Every path opened while recording (an audit hook: open(), Path.read_bytes, os.open...)."""

    def __init__(self) -> None:
        self.paths: list[str] | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if event == "open" and self.paths is not None and isinstance(args[0], str | os.PathLike):
            self.paths.append(os.path.abspath(os.fspath(args[0])))

    def start(self) -> None:
        self.paths = []

    def stop(self) -> list[str]:
        paths, self.paths = self.paths or [], None
        return paths


OPENED = OpenedFiles()


def config(path: Path, method: Method = Method.FULL, **changes) -> RunConfig:
    return RunConfig(
        seed=3,
        data=DataConfig(path=str(path), val_fraction=0.25, test_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=TINY, pretrained=False),
        adapt=AdaptConfig(method=method),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_fraction=0.0),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT),
        **changes,
    ).validate()


def train_recording(cfg: RunConfig, workspace: Path, monkeypatch) -> tuple[RunDir, list[str]]:
    """Train, recording every file opened after the dataset scan (the scan hashes all files)."""
    real = training_setup.prepare_data

    def prepare_then_record(*args, **kwargs):
        data = real(*args, **kwargs)
        OPENED.start()
        return data

    monkeypatch.setattr(training_setup, "prepare_data", prepare_then_record)
    try:
        result = train(cfg, workspace=workspace)
    finally:
        opened = OPENED.stop()
    assert str(result.status) == "completed"
    return RunDir(result.run_dir), opened


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A fine-tuned two-class run with a test split, and the files its training opened."""
    root = tmp_path_factory.mktemp("eval")
    data = make_shapes_folder(root / "shapes", per_class=12)
    with pytest.MonkeyPatch.context() as mp:
        run, opened = train_recording(config(data), root / "ws", mp)
    return {"run": run, "opened": opened, "data": data, "ws": Workspace(root / "ws")}


def split_paths(run: RunDir, split: str) -> list[str]:
    return [os.path.abspath(row[0]) for row in run.splits()[split]]


def test_training_never_opens_a_test_file(trained):
    run, opened = trained["run"], trained["opened"]
    test_files = set(split_paths(run, "test"))
    assert len(test_files) == 6
    assert set(split_paths(run, "train")) <= set(opened), "the recorder sees the loader"
    assert set(split_paths(run, "val")) <= set(opened)
    assert not test_files & set(opened)


def test_the_test_split_is_locked_before_any_file_is_opened(trained):
    run = trained["run"]
    OPENED.start()
    try:
        with pytest.raises(TestSplitLocked, match="stays locked"):
            predict_split(run, "test")
        with pytest.raises(TestSplitLocked):
            evaluate_run(run, "test")
        with pytest.raises(TestSplitLocked):
            compare_runs(run, run, "test")
    finally:
        opened = OPENED.stop()
    assert not set(split_paths(run, "test")) & set(opened)
    assert opened == []
    assert load_evaluation(run, "test") is None


def test_evaluate_run_saves_a_report_that_matches_training(trained):
    run = trained["run"]
    seen = []
    task = Task(lambda p: seen.append((p.done, p.total)))
    ev = evaluate_run(run, task=task, reuse=False)
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)
    assert ev.n == 6 and ev.classes == ("circle", "square") and ev.checkpoint == "best"
    assert ev.positive == "square"  # equal training counts: the second class
    # The same checkpoint on the same images gives the accuracy the trainer recorded.
    assert ev.accuracy == pytest.approx(run.summary()["best"]["val_accuracy"])
    assert load_evaluation(run).to_dict() == ev.to_dict()
    assert json.loads(evaluation_path(run).read_text())["run_id"] == run.run_id
    preds = load_predictions(run)
    assert preds.refs == tuple(split_paths(run, "val"))
    assert preds.digests == tuple(row[2] for row in run.splits()["val"])
    assert preds.labels.tolist() == [row[1] for row in run.splits()["val"]]
    assert np.allclose(preds.probs.sum(1), 1, atol=1e-5)
    assert preds.train_counts == (6, 6)
    # Saved predictions of the same checkpoint are reused: no image is opened again.
    OPENED.start()
    try:
        again = evaluate_run(run, positive="circle")
    finally:
        opened = OPENED.stop()
    assert not set(split_paths(run, "val")) & set(opened)
    assert again.positive == "circle" and again.accuracy == ev.accuracy


def test_the_unlocked_test_split_and_the_last_checkpoint(trained):
    run = trained["run"]
    ev = evaluate_run(run, "test", allow_test=True, checkpoint="last")
    assert ev.split == "test" and ev.n == 6 and ev.checkpoint == "last"
    assert load_predictions(run, "test").refs == tuple(split_paths(run, "test"))
    assert load_evaluation(run, "test").n == 6


def test_a_missing_image_is_named_and_cancel_stops_between_batches(trained, tmp_path):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained["run"].path, run.path)
    gone = Path(run.splits()["val"][2][0])
    moved = tmp_path / "moved.png"
    shutil.move(gone, moved)
    try:
        with pytest.raises(PredictionError, match=f"The image {gone} cannot be read any more"):
            predict_split(run, batch_size=2)
    finally:
        shutil.move(moved, gone)
    stop = Task()
    stop.cancel()
    with pytest.raises(Cancelled):
        predict_split(run, task=stop)


def test_image_paths_relative_to_the_dataset_root(trained, tmp_path):
    run = RunDir(tmp_path / "copy")
    shutil.copytree(trained["run"].path, run.path)
    splits = run.splits()
    root = splits["root"]
    for name in ("train", "val", "test"):
        splits[name] = [[os.path.relpath(p, root), y, d] for p, y, d in splits[name]]
    run.splits_path.write_text(json.dumps(splits))
    preds = predict_split(run)
    assert preds.refs == tuple(split_paths(trained["run"], "val"))
    assert np.allclose(preds.probs, predict_split(trained["run"]).probs, atol=1e-6)


def test_the_base_is_found_or_trained_and_a_linear_probe_is_its_own_base(
    trained, monkeypatch, capsys
):
    run, ws, data = trained["run"], trained["ws"], trained["data"]
    before = tree_snapshot(data)
    base_cfg = base_config(run.config())
    assert base_cfg.adapt.method is Method.LINEAR_PROBE
    assert base_cfg.name == f"{TINY} · base"
    assert base_cfg.data == run.config().data and base_cfg.model == run.config().model
    assert base_cfg.seed == run.config().seed and base_cfg.schedule == ScheduleConfig()
    assert find_base_run(ws, run) is None

    # `refit compare RUN` trains the missing base (watching that it never opens a test file).
    real = training_setup.prepare_data

    def prepare_then_record(*args, **kwargs):
        out = real(*args, **kwargs)
        OPENED.start()
        return out

    monkeypatch.setattr(training_setup, "prepare_data", prepare_then_record)
    try:
        code = refit(["--workspace", str(ws.root), "compare", run.run_id, "--quiet"])
    finally:
        opened = OPENED.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"No base run for {run.run_id} yet: training '{TINY} · base'" in out
    base = find_base_run(ws, run)
    assert base is not None and base.path != run.path
    assert base.config() == base_cfg
    assert not set(split_paths(run, "test")) & set(opened)
    assert find_base_run(ws, base) == base  # a linear probe is its own base
    assert "McNemar's test (exact)" in out and "B right" in out and base.run_id in out

    # The second time the base is found, not trained again.
    code = refit(["--workspace", str(ws.root), "compare", run.run_id, "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    assert result["run_b"] == base.run_id and result["n"] == 6
    assert (
        result["both_right"]
        + result["only_a_right"]
        + result["only_b_right"]
        + result["both_wrong"]
        == 6
    )
    assert f"Base: {base.run_id}" in captured.err
    assert len(Workspace(ws.root).list_runs()) == 2
    # A linear probe cannot be compared with itself.
    assert refit(["--workspace", str(ws.root), "compare", base.run_id]) == 2
    assert "its own base" in capsys.readouterr().err
    assert tree_snapshot(data) == before


def test_cli_evaluate_prints_a_readable_report(trained, capsys):
    run, ws = trained["run"], trained["ws"]
    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id]) == 0
    out = capsys.readouterr().out
    assert f"Run {run.run_id}, val split (6 images), best checkpoint" in out
    for text in ("accuracy", "macro F1", "ECE", "precision", "sensitivity", "specificity"):
        assert text in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("class "))
    table = lines[header : header + 3]
    assert [line.split()[0] for line in table] == ["class", "circle", "square"]
    assert len({len(line) for line in table}) == 1, "columns are aligned"
    cm = lines.index("Confusion matrix (rows: true class, columns: predicted class)")
    assert lines[cm + 1].split()[-2:] == ["circle", "square"]
    assert sum(int(v) for row in lines[cm + 2 : cm + 4] for v in row.split()[1:]) == 6

    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n"] == 6 and data["positive"] == "square"

    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id, "--test"]) == 0
    assert "test split (6 images)" in capsys.readouterr().out

    assert refit(["--workspace", str(ws.root), "evaluate", run.run_id, "--positive", "oval"]) == 2
    assert "'oval' is not a class" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        refit(["evaluate", run.run_id, "--checkpoint", "middle"])


def test_cli_compares_two_given_runs_on_the_unlocked_test_split(trained, capsys):
    run, ws = trained["run"], trained["ws"]
    code = refit(["--workspace", str(ws.root), "compare", run.run_id, run.run_id, "--test"])
    out = capsys.readouterr().out
    assert code == 0
    assert "On the 6 test examples both runs predicted:" in out
    assert "there is no difference" in out
    assert refit(["--workspace", str(ws.root), "compare", run.run_id, "no-such-run"]) == 2
    assert "No run 'no-such-run'" in capsys.readouterr().err
