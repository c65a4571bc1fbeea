"""A finished run leaves the evaluation `refit evaluate` would make, from training's own pass."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from synthetic import make_shapes_folder
from test_training import tiny_config
from trained_runs import train_text_run

from engine.config import AdaptConfig, Method
from engine.evaluation.predictions import predict_split, predictions_path, saved_predictions
from engine.evaluation.report import evaluate, evaluation_path, load_evaluation
from engine.events import RunStatus, StepEnded
from engine.runs import RunDir
from engine.task import Task
from engine.training import epoch as epoch_module
from engine.training.trainer import resume, train


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


def assert_same_as_from_scratch(run: RunDir, atol: float = 1e-5) -> None:
    """The saved predictions and evaluation equal a fresh prediction of the best checkpoint."""
    saved = saved_predictions(run, "val", "best")
    assert saved is not None, "saved predictions are tied to the best checkpoint file"
    fresh = predict_split(run, "val")
    assert saved.refs == fresh.refs and saved.digests == fresh.digests
    assert saved.checkpoint == fresh.checkpoint == "best"
    assert saved.checkpoint_stamp == fresh.checkpoint_stamp
    np.testing.assert_array_equal(saved.labels, fresh.labels)
    np.testing.assert_array_equal(saved.preds, fresh.preds)
    np.testing.assert_allclose(saved.probs, fresh.probs, atol=atol)
    assert saved.train_counts == fresh.train_counts
    ours, theirs = load_evaluation(run, "val"), evaluate(fresh)
    assert ours is not None
    assert ours.confusion == theirs.confusion
    assert ours.accuracy == theirs.accuracy and ours.macro_f1 == theirs.macro_f1
    assert ours.positive == theirs.positive


@pytest.mark.parametrize("method", [Method.LINEAR_PROBE, Method.FULL])
def test_a_finished_run_is_evaluated_as_refit_evaluate_would(shapes, tmp_path, method):
    result = train(tiny_config(shapes, method=method), workspace=tmp_path / "ws")
    assert result.status is RunStatus.COMPLETED
    run = RunDir(result.run_dir)
    assert result.evaluation == str(evaluation_path(run, "val"))
    assert predictions_path(run, "val").is_file()
    assert not (run.path / "evaluation" / "test.json").exists()
    assert_same_as_from_scratch(run)


def test_a_cached_prefix_run_is_evaluated_from_its_cached_activations(shapes, tmp_path):
    adapt = AdaptConfig(method=Method.LAST_N, last_n=2, cache_prefix=True)
    result = train(tiny_config(shapes, adapt=adapt), workspace=tmp_path / "ws")
    assert result.evaluation
    # The frozen layers' activations are cached in half precision.
    assert_same_as_from_scratch(RunDir(result.run_dir), atol=5e-3)


def test_a_lora_text_run_is_evaluated_too(tmp_path):
    run = RunDir(train_text_run(tmp_path))
    assert load_evaluation(run, "val").modality == "text"
    assert_same_as_from_scratch(run)


def fake_accuracy(monkeypatch, values):
    """Make the trainer see ``values`` as the validation accuracy of successive epochs."""
    real = epoch_module.classification_metrics
    it = iter(values)

    def metrics(*args, **kwargs):
        out = real(*args, **kwargs)
        out["val_accuracy"] = next(it)
        return out

    monkeypatch.setattr(epoch_module, "classification_metrics", metrics)


def test_the_best_epochs_predictions_are_kept_not_the_last(shapes, tmp_path, monkeypatch):
    fake_accuracy(monkeypatch, [0.9, 0.1, 0.2])
    result = train(tiny_config(shapes, epochs=3), workspace=tmp_path / "ws")
    run = RunDir(result.run_dir)
    assert result.best_metrics["epoch"] == 0
    assert_same_as_from_scratch(run)
    last = predict_split(run, "val", checkpoint="last")
    assert not np.allclose(saved_predictions(run, "val").probs, last.probs, atol=1e-4)


def cancel_at_step(task: Task, step: int):
    def on_event(event):
        if isinstance(event, StepEnded) and event.step >= step:
            task.cancel()

    return on_event


def test_a_run_cancelled_before_its_first_best_saves_nothing(shapes, tmp_path):
    task = Task()
    result = train(
        tiny_config(shapes),
        workspace=tmp_path / "ws",
        on_event=cancel_at_step(task, 1),
        task=task,
    )
    assert result.status is RunStatus.CANCELLED and result.evaluation == ""
    assert not (result.run_dir / "evaluation").exists()


def test_cancel_then_resume_leaves_the_final_best_checkpoints_predictions(
    shapes, tmp_path, monkeypatch
):
    fake_accuracy(monkeypatch, itertools.count(1))  # every epoch is a new best
    task = Task()
    cfg = tiny_config(shapes, epochs=3)
    steps = 3  # 18 training images, batch 8: cancelled in the second epoch
    stopped = train(
        cfg, workspace=tmp_path / "ws", on_event=cancel_at_step(task, steps + 1), task=task
    )
    assert stopped.status is RunStatus.CANCELLED
    run = RunDir(stopped.run_dir)
    assert stopped.evaluation, "a cancelled run with a best checkpoint keeps its evaluation"
    assert_same_as_from_scratch(run)
    before = saved_predictions(run, "val")
    done = resume(run.path, workspace=tmp_path / "ws")
    assert done.status is RunStatus.COMPLETED and done.best_metrics["epoch"] == 2
    assert_same_as_from_scratch(run)
    assert saved_predictions(run, "val").checkpoint_stamp != before.checkpoint_stamp


def test_refit_train_ends_with_the_evaluation_and_refit_evaluate_reuses_it(
    shapes, tmp_path, capsys
):
    from engine.cli import main

    ws = str(tmp_path / "ws")
    tiny = ["--backbone", "timm:test_efficientnet", "--no-pretrained", "--workers", "0"]
    argv = ["--workspace", ws, "train", str(shapes), *tiny, "--method", "linear-probe", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run = next((tmp_path / "ws" / "runs").iterdir())
    ev = load_evaluation(RunDir(run), "val")
    assert (
        f"Evaluated the best checkpoint on the validation split ({ev.n} images): accuracy "
        f"{ev.accuracy:.1%} ({ev.intervals.accuracy.text(True)}), balanced accuracy "
        f"{ev.balanced_accuracy:.1%}" in out
    )
    assert f"macro F1 {ev.macro_f1:.3f}" in out
    assert f"Saved {evaluation_path(RunDir(run), 'val')}" in out
    assert main(["--workspace", ws, "evaluate", run.name]) == 0
    out = capsys.readouterr().out
    assert "Reused the predictions saved from the best checkpoint" in out
    assert f"accuracy {ev.accuracy:.1%}" in out
    (run / "checkpoints" / "best.safetensors").touch()  # rewritten: the saved ones are stale
    assert main(["--workspace", ws, "evaluate", run.name]) == 0
    assert "Reused" not in capsys.readouterr().out
