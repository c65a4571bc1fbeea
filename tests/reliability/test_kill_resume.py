"""Kill a short run (SIGKILL, in a subprocess) at instrumented points, inside and between the
checkpoint writes and at steps; then the newest complete checkpoint loads and resuming gives
exactly the uninterrupted run's weights and metrics on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic import make_shapes_folder, tree_snapshot

from engine.events import RunStatus
from engine.runs import RunDir, Workspace
from engine.training.checkpoint import load_trainer_state
from engine.training.checkpoint_files import CheckpointError, generations, last_checkpoint
from engine.training.trainer import resume, train
from reliability.ckpt_runs import assert_same_weights, best_weights, final_weights, tiny_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the child forks one process per point"),
]
CHILD = Path(__file__).with_name("kill_child.py")
STEPS_PER_EPOCH = 3  # 18 training images, batches of 8

# (kill point, epochs the newest complete checkpoint holds afterwards); see kill_child.py
KILL_POINTS = [
    ("step:2", 0),  # before the first checkpoint
    ("step:5", 1),  # mid-epoch 2
    ("last_weights:2:inside", 1),  # the epoch-2 weights half written
    ("state:2:before", 1),  # epoch-2 weights written, trainer state not (issue 10, case 6)
    ("state:2:inside", 1),
    ("manifest:2:inside", 1),
    ("rename:2:before", 1),  # the whole generation written, not yet renamed into place
    ("rename:2:after", 2),  # renamed, the older generation not yet removed
    ("prune:1:inside", 2),  # the older generation half removed
    ("metrics:2:inside", 1),  # a torn metrics line at the end of epoch 2
    ("best_weights:2:inside", 1),  # the second best weights half written
]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The shapes folder and the uninterrupted run every killed run must end up equal to."""
    root = tmp_path_factory.mktemp("kill")
    data = make_shapes_folder(root / "shapes", per_class=12)
    result = train(tiny_config(data), workspace=root / "straight")
    run = RunDir(result.run_dir)
    bests = [r["epoch"] for r in run.metrics() if r["type"] == "epoch" and r["is_best"]]
    assert len(bests) >= 2, "best_weights:2 needs a second best epoch"
    return {"data": data, "result": result, "run": run, "root": root}


@pytest.fixture(scope="module")
def killed(straight):
    """One child process imports the engine once and forks a run per kill point."""
    out = straight["root"] / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    threads = str(torch.get_num_threads())
    points = [p for p, _ in KILL_POINTS]
    proc = subprocess.run(
        [sys.executable, str(CHILD), str(straight["data"]), threads, str(out), *points],
        capture_output=True,
        text=True,
        timeout=600,  # a hang guard only
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {point: out / str(i) for i, point in enumerate(points)}, proc.stderr


def killed_run(killed, point: str) -> RunDir:
    folders, stderr = killed
    assert (folders[point] / "ended").read_text() == "killed", stderr
    (info,) = Workspace(folders[point] / "ws").list_runs()
    return RunDir(info.path)


RESUMABLE = [(p, e) for p, e in KILL_POINTS if e > 0]


@pytest.mark.parametrize("point,epochs", RESUMABLE, ids=[p for p, _ in RESUMABLE])
def test_a_killed_run_resumes_to_the_uninterrupted_result(straight, killed, point, epochs):
    run = killed_run(killed, point)
    assert run.state()["status"] == "running", "killed: nothing got to write its end"

    last = last_checkpoint(run.checkpoints)
    assert last is not None and last.epoch == epochs
    assert last.global_step == epochs * STEPS_PER_EPOCH
    state = load_trainer_state(last.state)
    assert (state["epoch"], state["global_step"]) == (last.epoch, last.global_step)

    resumed = resume(run.run_id, workspace=run.path.parent.parent)
    assert resumed.status is RunStatus.COMPLETED
    assert_same_weights(final_weights(straight["run"]), final_weights(run))
    assert_same_weights(best_weights(straight["run"]), best_weights(run))
    assert resumed.best_metrics == pytest.approx(straight["result"].best_metrics)
    newest = last_checkpoint(run.checkpoints).folder
    assert generations(run.checkpoints) == [newest], "older generations removed"
    assert not [p for p in run.checkpoints.iterdir() if p.name.startswith(".")], "temp files left"
    records = run.metrics()
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == list(range(1, 3 * STEPS_PER_EPOCH + 1)), "every step logged exactly once"
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0, 1, 2]


def test_killed_before_the_first_checkpoint_resume_says_so_and_changes_nothing(killed):
    run = killed_run(killed, "step:2")
    assert last_checkpoint(run.checkpoints) is None
    before = tree_snapshot(run.path)
    with pytest.raises(CheckpointError, match="no resumable checkpoint"):
        resume(run.run_id, workspace=run.path.parent.parent)
    state = run.state()
    assert state["status"] == "running" and "no resumable checkpoint" in state["last_resume_error"]
    after = tree_snapshot(run.path)
    # state.json gains the note; the dead process's run.lock is taken over and released.
    notes = {"state.json", "run.lock"}
    assert {k: v for k, v in after.items() if k not in notes} == {
        k: v for k, v in before.items() if k not in notes
    }
    assert "run.lock" in before and "run.lock" not in after
