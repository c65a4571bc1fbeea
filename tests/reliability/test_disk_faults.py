"""Disk full while a run writes, damaged checkpoint files, divergence, and resumes that must fail
without rewriting what a run achieved."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_shapes_folder, tree_snapshot

import engine.runs
import engine.training.checkpoint as ckpt
import engine.training.outcome
from engine.cli import main as refit
from engine.evaluation import Predictor
from engine.evaluation.report import evaluate_run
from engine.events import RunStatus, StepEnded
from engine.export import export_run
from engine.runs import RunDir
from engine.task import Task
from engine.training.callbacks import Callback
from engine.training.checkpoint_files import (
    BEST,
    CheckpointError,
    generations,
    last_checkpoint,
)
from engine.training.divergence import FACTOR, Diverged, DivergenceGuard
from engine.training.provenance import StorageError, storage_sentence
from engine.training.trainer import resume, train
from reliability.ckpt_runs import assert_same_weights, final_weights, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_shapes_folder(tmp_path_factory.mktemp("faults") / "shapes", per_class=12)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    result = train(tiny_config(data), workspace=tmp_path_factory.mktemp("straight"))
    return RunDir(result.run_dir)


@pytest.fixture(scope="module")
def stopped(data, tmp_path_factory):
    """A run cancelled in its third epoch: a best, a last checkpoint, resumable."""
    task = Task()

    def stop(event):
        if isinstance(event, StepEnded) and event.step == 7:
            task.cancel()

    ws = tmp_path_factory.mktemp("stopped")
    result = train(tiny_config(data), workspace=ws, on_event=stop, task=task)
    assert result.status is RunStatus.CANCELLED
    return RunDir(result.run_dir)


def copy_run(run: RunDir, root: Path) -> RunDir:
    dest = root / "ws" / "runs" / run.run_id
    shutil.copytree(run.path, dest)
    return RunDir(dest)


def no_space_at(n: int, real, matches=lambda *a, **k: True):
    """``real`` that raises ENOSPC at its n-th matching call, like a disk filling up."""
    calls = [0]

    def wrapper(*args, **kwargs):
        if matches(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[-1]))
        return real(*args, **kwargs)

    return wrapper


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        path.write_bytes(b"")
    else:
        path.write_bytes(os.urandom(max(64, len(data))))


def checkpoint_path(run: RunDir, which: str) -> Path:
    if which == "best":
        return run.checkpoints / BEST
    folder = last_checkpoint(run.checkpoints).folder
    return folder / {"weights": "last.safetensors", "state": "last_state.pt"}.get(
        which, "manifest.json"
    )


# -- disk full ----------------------------------------------------------------------------------

MID_RUN = {
    "last weights": lambda mp: mp.setattr(
        ckpt, "save_file", no_space_at(2, ckpt.save_file, lambda t, p, **k: "last" in Path(p).name)
    ),
    "trainer state": lambda mp: mp.setattr(torch, "save", no_space_at(2, torch.save)),
    "manifest": lambda mp: mp.setattr(
        ckpt, "_write_manifest", no_space_at(2, ckpt._write_manifest)
    ),
    "best weights": lambda mp: mp.setattr(
        ckpt, "save_file", no_space_at(2, ckpt.save_file, lambda t, p, **k: "best" in Path(p).name)
    ),
    "metrics": lambda mp: mp.setattr(
        engine.runs.folder,
        "append_jsonl",
        no_space_at(
            2, engine.runs.folder.append_jsonl, lambda p, r: any("is_best" in x for x in r)
        ),
    ),
}


@pytest.mark.parametrize("where", list(MID_RUN))
def test_disk_full_mid_run_says_so_keeps_the_checkpoint_and_resumes(
    data, straight, tmp_path, monkeypatch, where
):
    ws = tmp_path / "ws"
    with monkeypatch.context() as mp:
        MID_RUN[where](mp)
        with pytest.raises(StorageError, match=r"The disk holding .* is full; free some space"):
            train(tiny_config(data), workspace=ws)
    (run_dir,) = (ws / "runs").iterdir()
    run = RunDir(run_dir)
    state = run.state()
    assert state["status"] == "failed" and state["resumable"] is True
    assert "is full" in state["error"] and json.loads(run.summary_path.read_text())["best"]
    last = last_checkpoint(run.checkpoints)
    assert last.epoch == 1 and generations(run.checkpoints) == [last.folder]
    assert not [p for p in run.checkpoints.iterdir() if p.name.startswith(".")]
    assert load_file(str(run.checkpoints / BEST))  # the previous best is whole

    assert resume(run.run_id, workspace=ws).status is RunStatus.COMPLETED
    assert_same_weights(final_weights(straight), final_weights(run))


def test_disk_full_writing_the_summary_fails_the_run_resumably(data, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    with monkeypatch.context() as mp:
        mp.setattr(RunDir, "write_summary", no_space_at(1, RunDir.write_summary))
        result = train(tiny_config(data), workspace=ws)
    assert result.status is RunStatus.FAILED and "is full" in result.error
    run = RunDir(result.run_dir)
    assert run.state()["status"] == "failed" and run.state()["resumable"] is True
    assert not run.summary_path.exists()
    again = resume(run.run_id, workspace=ws)  # nothing left to train: it just ends
    assert again.status is RunStatus.COMPLETED
    assert json.loads(run.summary_path.read_text())["status"] == "completed"


def test_disk_full_for_every_write_at_the_end_leaves_the_checkpoints(data, tmp_path, monkeypatch):
    """state.json cannot say how the run ended; the run list infers it from the dead owner."""
    ws = tmp_path / "ws"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fail(*args, **kwargs):
        raise full

    real_update = RunDir.update_state

    def update_state(self, **changes):
        return fail() if "ended" in changes else real_update(self, **changes)

    with monkeypatch.context() as mp:
        mp.setattr(RunDir, "write_summary", fail)
        mp.setattr(RunDir, "update_state", update_state)
        result = train(tiny_config(data), workspace=ws)
    assert result.status is RunStatus.FAILED and "is full" in result.error
    run = RunDir(result.run_dir)
    assert run.state()["status"] == "running"
    assert last_checkpoint(run.checkpoints).epoch == 3


# -- damaged checkpoint files -------------------------------------------------------------------

DAMAGES = ["truncated", "emptied", "random bytes"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("which", ["weights", "state", "manifest"])
def test_a_damaged_last_checkpoint_is_named_and_the_run_keeps_its_results(
    stopped, tmp_path, capsys, which, how
):
    run = copy_run(stopped, tmp_path)
    path = checkpoint_path(run, which)
    damage(path, how)
    summary, state = run.summary_path.read_bytes(), run.state()

    with pytest.raises(CheckpointError, match="damaged") as caught:
        resume(run.run_id, workspace=tmp_path / "ws")
    assert path.name in str(caught.value) and "cannot be resumed" in str(caught.value)
    assert run.summary_path.read_bytes() == summary
    after = run.state()
    assert after.pop("last_resume_error") == str(caught.value)
    after.pop("last_resume_failed")
    assert after == state

    with pytest.raises(CheckpointError, match=f"damaged .*{path.name}.*--checkpoint best"):
        Predictor(run, checkpoint="last")
    assert Predictor(run).classes == ["circle", "square"]  # best is untouched

    code = refit(["--workspace", str(tmp_path / "ws"), "resume", run.run_id, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("refit: The last checkpoint is damaged")


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_best_checkpoint_is_named_never_replaced_by_last(
    stopped, data, tmp_path, capsys, how
):
    run = copy_run(stopped, tmp_path)
    damage(run.checkpoints / BEST, how)
    with pytest.raises(CheckpointError, match=r"best\.safetensors is damaged.*--checkpoint last"):
        Predictor(run)
    with pytest.raises(CheckpointError, match="damaged"):
        evaluate_run(run)
    with pytest.raises(CheckpointError, match="damaged"):
        export_run(run, ["safetensors"], tmp_path / "export")
    image = next((data / "circle").iterdir())
    ws = ["--workspace", str(tmp_path / "ws")]
    assert refit([*ws, "predict", run.run_id, str(image)]) == 2
    err = capsys.readouterr().err
    assert "best.safetensors is damaged" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert refit([*ws, "predict", run.run_id, str(image), "--checkpoint", "last"]) == 0
    assert "%" in capsys.readouterr().out

    # Resuming says so and writes a new best instead of keeping a broken one.
    messages = []
    result = resume(run.run_id, workspace=tmp_path / "ws", on_event=messages.append)
    assert result.status is RunStatus.COMPLETED
    assert any("best.safetensors" in getattr(e, "text", "") for e in messages)
    assert load_file(str(run.checkpoints / BEST))


def test_a_missing_best_is_never_silently_replaced_by_last(stopped, data, tmp_path, capsys):
    run = copy_run(stopped, tmp_path)
    (run.checkpoints / BEST).unlink()
    with pytest.raises(CheckpointError, match=r"no best checkpoint.*--checkpoint last"):
        Predictor(run)
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        export_run(run, ["safetensors"], tmp_path / "export")
    ws = ["--workspace", str(tmp_path / "ws")]
    assert refit([*ws, "evaluate", run.run_id]) == 2
    assert "no best checkpoint" in capsys.readouterr().err
    assert Predictor(run, checkpoint="last").checkpoint.name == "last.safetensors"


def test_the_layout_of_older_versions_still_resumes_and_opens(stopped, straight, tmp_path):
    run = copy_run(stopped, tmp_path)
    folder = last_checkpoint(run.checkpoints).folder
    for name in ("last.safetensors", "last_state.pt"):
        (folder / name).rename(run.checkpoints / name)
    shutil.rmtree(folder)
    assert last_checkpoint(run.checkpoints).folder is None
    assert Predictor(run, checkpoint="last").checkpoint == run.checkpoints / "last.safetensors"
    assert resume(run.run_id, workspace=tmp_path / "ws").status is RunStatus.COMPLETED
    assert_same_weights(final_weights(straight), final_weights(run))
    assert not (run.checkpoints / "last_state.pt").exists(), "replaced by a generation folder"


# -- resumes that fail --------------------------------------------------------------------------


def test_resuming_a_completed_run_is_refused_and_touches_nothing(straight, tmp_path, capsys):
    run = copy_run(straight, tmp_path)
    before = tree_snapshot(run.path)
    with pytest.raises(CheckpointError, match="already completed; there is nothing to resume"):
        resume(run.run_id, workspace=tmp_path / "ws")
    assert refit(["--workspace", str(tmp_path / "ws"), "resume", run.run_id]) == 2
    assert "already completed" in capsys.readouterr().err
    assert tree_snapshot(run.path) == before


def test_a_resume_whose_dataset_moved_leaves_status_and_best_as_they_were(stopped, tmp_path):
    run = copy_run(stopped, tmp_path)
    splits = json.loads(run.splits_path.read_text())
    moved = str(tmp_path / "moved-away")
    text = json.dumps(splits).replace(str(Path(splits["root"])), moved)
    run.splits_path.write_text(text)
    summary, state = run.summary_path.read_bytes(), run.state()
    metrics = run.metrics_path.read_bytes()
    with pytest.raises(Exception, match="cannot be resumed") as caught:
        resume(run.run_id, workspace=tmp_path / "ws")
    after = run.state()
    assert after.pop("last_resume_error") == str(caught.value)
    after.pop("last_resume_failed")
    assert after == state and after["status"] == "cancelled" and after["resumable"] is True
    assert run.summary_path.read_bytes() == summary and run.metrics_path.read_bytes() == metrics


# -- divergence ---------------------------------------------------------------------------------


def test_the_divergence_rule_fires_on_nan_and_explosions_only():
    guard = DivergenceGuard(num_classes=2)
    healthy = [0.69, 0.75, 2.5, 0.4, 12.0, 0.01, 0.0, 30.0]  # spikes a healthy run can have
    for step, loss in enumerate(healthy, 1):
        guard.check_step(loss, step, lr=1e-3)
    with pytest.raises(Diverged, match=r"exploded to 6585 at step 9.*lower learning rate"):
        guard.check_step(6585.0, 9, lr=1e-3)
    for bad in (math.nan, math.inf):
        with pytest.raises(Diverged, match="became"):
            DivergenceGuard(2).check_step(bad, 1, lr=1.0)
    resumed = DivergenceGuard(2)
    resumed.load_state_dict(guard.state_dict())
    assert resumed.limit == guard.limit == FACTOR * math.log(2)
    with pytest.raises(Diverged):
        resumed.check_validation({"val_loss": math.nan}, 0, lr=1.0)


class PoisonAtStep(Callback):
    """Makes one weight NaN after step ``n``, as an overflowing update would."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step_ended(self, event, ctx) -> None:
        if event.step == self.n:
            with torch.no_grad():
                next(ctx.model.parameters()).fill_(math.nan)


def test_a_nan_stops_the_run_within_a_step_and_keeps_the_best(data, tmp_path, capsys):
    events = []
    ws = tmp_path / "ws"
    result = train(
        tiny_config(data), workspace=ws, callbacks=[PoisonAtStep(5)], on_event=events.append
    )
    assert result.status is RunStatus.DIVERGED and "lower learning rate" in result.error
    assert "its best checkpoint (epoch 1) is kept" in result.error
    steps = [e.step for e in events if isinstance(e, StepEnded)]
    assert steps[-1] == 5 and "at step 6" in result.error, "stopped at the first NaN loss"
    run = RunDir(result.run_dir)
    assert run.state()["status"] == "diverged" and run.state()["resumable"] is False
    summary = json.loads(run.summary_path.read_text())
    assert summary["status"] == "diverged" and summary["best"]["epoch"] == 0.0
    for path in [run.checkpoints / BEST, last_checkpoint(run.checkpoints).weights]:
        assert all(t.isfinite().all() for t in load_file(str(path)).values()), path
    assert last_checkpoint(run.checkpoints).epoch == 1, "no last checkpoint after the NaN"

    image = str(next((data / "circle").iterdir()))
    args = ["--workspace", str(ws)]
    assert refit([*args, "predict", run.run_id, image, "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert "%" in out and "nan%" not in out
    assert refit([*args, "runs"]) == 0
    assert "diverged" in capsys.readouterr().out
    assert refit([*args, "resume", run.run_id]) == 2
    assert "diverged" in capsys.readouterr().err


def test_a_huge_learning_rate_ends_diverged_without_writing_broken_weights(data, tmp_path):
    result = train(tiny_config(data, lr=10.0), workspace=tmp_path / "ws")
    assert result.status is RunStatus.DIVERGED, result
    assert "lower learning rate (now" in result.error
    run = RunDir(result.run_dir)
    for path in run.checkpoints.rglob("*.safetensors"):
        assert all(t.isfinite().all() for t in load_file(str(path)).values()), path


def test_weights_that_are_nan_are_refused_for_predictions(stopped, tmp_path):
    run = copy_run(stopped, tmp_path)
    tensors = load_file(str(run.checkpoints / BEST))
    first = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[first] = torch.full_like(tensors[first], math.nan)
    from safetensors.torch import save_file

    save_file(tensors, str(run.checkpoints / BEST))
    with pytest.raises(CheckpointError, match="NaN or infinite weights"):
        Predictor(run)


def test_failed_writes_under_the_workspace_get_one_sentence(tmp_path):
    ws = tmp_path / "ws"
    inside = str(ws / "runs" / "r1" / "checkpoints" / "best.safetensors")
    cases = {
        OSError(errno.ENOSPC, "No space left on device", inside): f"The disk holding {ws} is full",
        OSError(errno.EDQUOT, "Disk quota exceeded", inside): f"The disk holding {ws} is full",
        OSError(errno.EROFS, "Read-only file system", inside): "is on a read-only disk",
        PermissionError(errno.EACCES, "Permission denied", inside): f"{inside} cannot be written",
    }
    for exc, start in cases.items():
        sentence = storage_sentence(exc, ws, "r1")
        assert start in sentence and "`refit resume r1`" in sentence, sentence
    # A picture the run reads is not the workspace's problem.
    assert storage_sentence(PermissionError(errno.EACCES, "denied", "/data/a.png"), ws, "r1") == ""
    assert storage_sentence(ValueError("x"), ws, "r1") == ""


def test_a_second_ctrl_c_mid_step_cancels_and_resumes(data, straight, tmp_path):
    """KeyboardInterrupt (the CLI's second Ctrl+C) lands mid-step: no checkpoint of the half-done
    step is written, the run is cancelled (not failed) and resumes to the uninterrupted result."""

    def abort(event):
        if isinstance(event, StepEnded) and event.step == 7:
            raise KeyboardInterrupt

    ws = tmp_path / "ws"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(data), workspace=ws, on_event=abort)
    run = RunDir(next((ws / "runs").iterdir()))
    state = run.state()
    assert state["status"] == "cancelled" and state["resumable"] is True
    assert last_checkpoint(run.checkpoints).global_step < 7  # the epoch before, not step 7
    result = resume(run.path, workspace=ws)
    assert result.status is RunStatus.COMPLETED
    assert_same_weights(final_weights(run), final_weights(straight))


def test_a_second_ctrl_c_while_the_run_ends_leaves_it_cancelled(data, tmp_path, monkeypatch):
    """The first Ctrl+C cancels; the second lands while the run writes its final checkpoint: the
    run is cancelled (not left "running" with no summary) and resumes to the end."""
    from engine.task import Task
    from engine.training.checkpointing import Checkpointer

    task = Task()

    def cancel(event):
        if isinstance(event, StepEnded) and event.step == 7:
            task.cancel()

    def interrupted(self, ctx, status):
        raise KeyboardInterrupt

    ws = tmp_path / "ws"
    with monkeypatch.context() as patch:
        patch.setattr(Checkpointer, "finish", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(data), workspace=ws, on_event=cancel, task=task)
    run = RunDir(next((ws / "runs").iterdir()))
    state = run.state()
    assert state["status"] == "cancelled" and state["resumable"] is True
    assert (run.path / "summary.json").is_file()
    assert resume(run.path, workspace=ws).status is RunStatus.COMPLETED
