"""Training on several processes (engine/distributed): torchrun + DDP + Gloo on the CPU.

The 2-process runs are real torchrun jobs of the tiny random-init network on generated shapes.

Tolerance of "the same validation metrics": a 2-process step trains on the same global batch
(the same samples, the same loss weights, DDP averaging the ranks' gradients into the global
batch's), so the only differences from a 1-process run are that each process normalises with
batch-norm statistics over its half of the batch and draws its own dropout masks. Over the 6
steps of the test that moves the validation loss by a few thousandths (0.003 measured), so the
test allows 0.05 on the loss and one validation image on the accuracy. The linear probe has no
such difference: its features must be equal (the same rows of the same images), and so must
its validation metrics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_shapes_folder
from test_evaluation_in_training import assert_same_as_from_scratch
from test_training import tiny_config

from engine.config import (
    Method,
    RunConfig,
)
from engine.distributed import Control, Dist, read_control, write_control
from engine.distributed.launch import failed_rank, failure_sentence, torchrun_command
from engine.distributed.worker import check_batch, parse
from engine.events import (
    AdviceGiven,
    CheckpointSaved,
    EpochEnded,
    LogMessage,
    RunEnded,
    RunStarted,
    RunStatus,
    StageProgressed,
    StepEnded,
    event_from_json,
    event_to_json,
)
from engine.runs import RunDir
from engine.training.loaders import ShardedBatches, batches_of, epoch_permutation
from engine.training.trainer import resume, train

ROOT = Path(__file__).resolve().parents[2]


def refit(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        **kw,
    )


def events_of(stdout: str) -> list:
    events = [event_from_json(line) for line in stdout.splitlines()]
    return [e for e in events if e is not None]


def epoch_lines(run: RunDir) -> list[dict]:
    return [r for r in run.metrics() if r.get("type") == "epoch"]


# -- fast: the pieces ---------------------------------------------------------------------------


def test_every_event_survives_a_json_line():
    events = [
        RunStarted(
            run_dir="/r",
            epochs=2,
            steps_per_epoch=3,
            start_epoch=0,
            device="cpu",
            precision="fp32",
            trainable_params=1,
            total_params=2,
            train_size=4,
            val_size=5,
            classes=("a", "b"),
            feature_cache=False,
            run_id="x",
        ),
        StepEnded(step=1, epoch=0, total_steps=6, loss=0.5, lr=0.1, samples_per_sec=3.0),
        EpochEnded(epoch=0, epochs=2, metrics={"val_loss": 0.25}, is_best=True, seconds=1.5),
        CheckpointSaved(path="/c", kind="best", epoch=0),
        StageProgressed(stage="scan", done=1, total=2),
        LogMessage(level="warning", text="careful"),
        RunEnded(
            status=RunStatus.CANCELLED, error="e", best_metrics={"epoch": 0.0}, warnings=("w",)
        ),
        AdviceGiven(advice={"reason": "r", "trials": [1, 2]}),
    ]
    for event in events:
        assert event_from_json(event_to_json(event)) == event


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Setting OMP_NUM_THREADS environment variable",
        "[1, 2]",
        "{not json",
        '{"event": "Nonsense"}',
        '{"event": "StepEnded", "step": 1}',  # fields missing
        '{"event": "RunEnded", "status": "exploded"}',
        '{"event": "__class__"}',
        '{"event": "LogMessage", "level": "info", "text": "' + "x" * 1_000_001 + '"}',
    ],
)
def test_a_line_that_is_no_event_is_none(line):
    assert event_from_json(line) is None


def test_unknown_fields_are_dropped():
    line = '{"event": "LogMessage", "level": "info", "text": "hi", "__init__": 1, "extra": 2}'
    assert event_from_json(line) == LogMessage(level="info", text="hi")


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("start", [0, 8])
def test_the_ranks_share_each_one_process_batch(world, start):
    n, batch, seed, epoch = 21, 6 if world == 3 else 8, 5, 2
    expected = batches_of(epoch_permutation(n, seed, epoch)[start:], batch)
    parts = []
    for rank in range(world):
        s = ShardedBatches(n, seed=seed, shuffle=True, batch_size=batch, rank=rank, world=world)
        s.set_position(epoch, start)
        parts.append([[i for _, i in b] for b in s])
        assert len(s) == len(expected) == len(parts[-1])
    for k, whole in enumerate(expected):
        got = [i for rank in range(world) for i in parts[rank][k]]
        assert sorted(set(got)) == sorted(whole)
        if len(whole) >= world:  # only a batch shorter than the world repeats a row
            assert sorted(got) == sorted(whole)


def test_a_rank_left_without_rows_of_a_short_last_batch_repeats_its_first():
    s = ShardedBatches(9, seed=0, shuffle=False, batch_size=8, rank=1, world=2)
    assert [[i for _, i in b] for b in s] == [[1, 3, 5, 7], [8]]


def test_the_batch_must_divide_among_the_processes(tmp_path):
    cfg = tiny_config(tmp_path)
    assert check_batch(cfg, 2) == ""
    refusal = check_batch(cfg, 3)
    assert "batch size 8 does not divide among 3 processes" in refusal
    assert refusal.count(".") == 1


def test_a_bad_control_file_never_stops_a_run(tmp_path):
    path = tmp_path / "control.json"
    assert read_control(path) == "run"  # missing
    for text in ("", "[]", '{"state": "explode"}', "\xff\xfe", '{"state": 1}'):
        path.write_text(text, encoding="latin-1")
        assert read_control(path) == "run"
    path.write_text(json.dumps({"state": "pause", "pad": "x" * 5000}))
    assert read_control(path) == "run"  # too large to be ours
    write_control(tmp_path, "stop")
    assert read_control(path) == "stop"
    with pytest.raises(ValueError):
        write_control(tmp_path, "explode")


def test_one_process_control_stops_the_task(tmp_path):
    from engine.task import Task

    control = Control(Dist(), torch.device("cpu"))
    control.path = tmp_path / "control.json"
    task = Task()
    control.apply(task)
    assert not task.cancelled
    control.stop_requested.set()
    control.apply(task)
    assert task.cancelled


def test_torchrun_failures_become_one_sentence():
    log = """
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
engine.distributed FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-06_00:51:54
  host      : box
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 4241)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 4241
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-06_00:51:54
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4242
"""
    assert failed_rank(log) == (1, -9)
    assert failed_rank("nothing here") is None
    assert failure_sentence(1, 2, -9, "run-a") == (
        "Process 1 of 2 ended unexpectedly (exit code -9); `refit resume run-a` continues "
        "from the last checkpoint."
    )
    cmd = torchrun_command("c.json", 2, workspace="/w", resume="r")
    assert cmd[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert cmd[cmd.index("--nproc-per-node") + 1] == "2"
    assert cmd[-3:] == ["--resume", "r", "--events-jsonl"]
    cmd = torchrun_command("c.json", 2, track=["tensorboard", "mlflow:http://h:5000"])
    assert cmd[-5:] == [
        "--track",
        "tensorboard",
        "--track",
        "mlflow:http://h:5000",
        "--events-jsonl",
    ]


def test_the_worker_validates_track_as_the_cli_does(capsys):
    args = parse(["c.json", "--track", "tensorboard", "--track", "mlflow:file:///tmp/mlruns"])
    assert [t.argument for t in args.track] == ["tensorboard", "mlflow:file:///tmp/mlruns"]
    with pytest.raises(SystemExit) as info:
        parse(["c.json", "--track", "wandb"])
    assert info.value.code == 2 and "`mlflow:URI`" in capsys.readouterr().err


# -- slow: real torchrun jobs on the CPU ----------------------------------------------------------


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


def two_processes(config: RunConfig, workspace: Path, tmp_path: Path) -> tuple[RunDir, list]:
    path = tmp_path / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    proc = refit(
        "train", str(path), "--workspace", str(workspace), "--nproc", "2", "--events-jsonl"
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    events = events_of(out)
    return RunDir(Path(events[-1].run_dir)), events


@pytest.mark.slow
def test_two_processes_reach_the_metrics_of_one(shapes, tmp_path):
    config = tiny_config(shapes)
    one_events: list = []
    one = train(config, workspace=tmp_path / "ws1", on_event=one_events.append)
    run, events = two_processes(config, tmp_path / "ws2", tmp_path)

    # The events rebuilt from rank 0's JSON lines are a 1-process run's, in the same order.
    kinds = [type(e).__name__ for e in events if not isinstance(e, LogMessage | StageProgressed)]
    one_kinds = [
        type(e).__name__ for e in one_events if not isinstance(e, LogMessage | StageProgressed)
    ]
    assert kinds == one_kinds
    assert isinstance(events[-1], RunEnded) and events[-1].status is RunStatus.COMPLETED

    ones, twos = epoch_lines(RunDir(one.run_dir)), epoch_lines(run)
    assert [r["epoch"] for r in twos] == [0, 1]
    for a, b in zip(ones, twos, strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 0.05
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 1 / 6 + 1e-9  # 6 validation images

    # Rank 0 alone wrote the folder: every metrics line once, the files of a 1-process run.
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(RunDir(one.run_dir).metrics())
    steps = [r["step"] for r in run.metrics() if r.get("type") == "step"]
    assert steps == list(range(1, len(steps) + 1))
    names = lambda p: sorted(q.relative_to(p).as_posix() for q in p.rglob("*"))  # noqa: E731
    assert names(run.path) == names(Path(one.run_dir))
    assert run.state()["status"] == "completed"
    # The saved evaluation (validation gathered from both ranks) is a 1-process evaluation of
    # the same best checkpoint.
    assert_same_as_from_scratch(run)


@pytest.mark.slow
def test_a_two_process_linear_probe_gathers_the_same_features(shapes, tmp_path):
    config = tiny_config(shapes, method=Method.LINEAR_PROBE)
    one = train(config, workspace=tmp_path / "ws1")
    run, _ = two_processes(config, tmp_path / "ws2", tmp_path)
    caches = [
        sorted((tmp_path / ws / "cache" / "features").glob("*.safetensors"))
        for ws in ("ws1", "ws2")
    ]
    assert [p.name for p in caches[0]] == [p.name for p in caches[1]] and caches[0]
    for a, b in zip(*caches, strict=True):
        assert torch.equal(load_file(str(a))["features"], load_file(str(b))["features"])
    assert epoch_lines(RunDir(one.run_dir))[-1] | {"seconds": 0} == epoch_lines(run)[-1] | {
        "seconds": 0
    }


def rank_process(torchrun_parent: int, rank: int) -> psutil.Process | None:
    for child in psutil.Process(torchrun_parent).children(recursive=True):
        try:
            env = child.environ()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if env.get("RANK") == str(rank) and "engine.distributed" in " ".join(child.cmdline()):
            return child
    return None


@pytest.mark.slow
def test_a_dead_process_stops_the_job_and_resume_finishes_it(shapes, tmp_path):
    config = tiny_config(shapes, epochs=8)
    path = tmp_path / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    ws = tmp_path / "ws"
    proc = refit("train", str(path), "--workspace", str(ws), "--nproc", "2", "--events-jsonl")
    assert proc.stdout is not None
    run_dir, killed = "", False
    out = []
    for line in proc.stdout:
        out.append(line)
        event = event_from_json(line)
        if isinstance(event, RunStarted):
            run_dir = event.run_dir
        if isinstance(event, StepEnded) and event.epoch == 1 and not killed:
            victim = rank_process(proc.pid, 1)
            assert victim is not None
            victim.send_signal(signal.SIGKILL)
            killed = True
    _, err = proc.communicate(timeout=120)
    assert killed and proc.returncode != 0
    run = RunDir(Path(run_dir))
    sentence = (
        f"Process 1 of 2 ended unexpectedly (exit code -9); `refit resume {run.run_id}` "
        "continues from the last checkpoint."
    )
    assert sentence in err
    assert run.state()["error"] == sentence and run.state()["resumable"] is True
    assert run.summary()["error"] == sentence

    # One process finishes it: every epoch once in metrics.jsonl.
    result = resume(run.run_id, workspace=ws)
    assert result.status is RunStatus.COMPLETED
    assert [r["epoch"] for r in epoch_lines(run)] == list(range(8))
    counts = Counter(r["step"] for r in run.metrics() if r.get("type") == "step")
    assert set(counts.values()) == {1}


def stopped_job(config: RunConfig, tmp_path: Path, *, after_epoch: int) -> tuple[RunDir, Path]:
    """A 2-process `refit train` of ``config`` stopped through the control file after epoch
    ``after_epoch`` (checked: cancelled, with its checkpoint); the run and its workspace, the
    control file removed so that a resume runs on."""
    path = tmp_path / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    ws = tmp_path / "ws"
    proc = refit("train", str(path), "--workspace", str(ws), "--nproc", "2", "--events-jsonl")
    assert proc.stdout is not None
    run_dir = ""
    for line in proc.stdout:
        event = event_from_json(line)
        if isinstance(event, RunStarted):
            run_dir = event.run_dir
        if isinstance(event, EpochEnded) and event.epoch == after_epoch:
            write_control(run_dir, "stop")
            break
    out, err = proc.communicate(timeout=120)
    ended = [e for e in events_of(out) if isinstance(e, RunEnded)]
    assert ended and ended[-1].status is RunStatus.CANCELLED, err[-2000:]
    run = RunDir(Path(run_dir))
    assert run.state()["status"] == "cancelled"
    (run.path / "control.json").unlink()
    return run, ws


@pytest.mark.slow
def test_a_stopped_job_resumes_with_two_processes(shapes, tmp_path):
    run, ws = stopped_job(tiny_config(shapes, epochs=6), tmp_path, after_epoch=1)
    again = refit("resume", run.run_id, "--workspace", str(ws), "--nproc", "2", "--events-jsonl")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert [r["epoch"] for r in epoch_lines(run)] == list(range(6))
    started = [e for e in events_of(out) if isinstance(e, RunStarted)]
    assert started and started[0].start_epoch >= 2


@pytest.mark.slow
def test_sigterm_to_torchrun_ends_the_job_with_a_checkpoint(shapes, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(tiny_config(shapes, epochs=8).to_json(), encoding="utf-8")
    cmd = torchrun_command(path, 2, workspace=tmp_path / "ws")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    ended = []
    for line in proc.stdout:
        event = event_from_json(line)
        if isinstance(event, StepEnded) and event.step == 4:
            proc.send_signal(signal.SIGTERM)
        if isinstance(event, RunEnded):
            ended.append(event)
    proc.communicate(timeout=120)
    assert [e.status for e in ended] == [RunStatus.CANCELLED]
    run = RunDir(Path(ended[0].run_dir))
    state = run.state()
    assert state["status"] == "cancelled" and state["resumable"] is True
    assert 1 <= state["epochs_done"] < 8


def test_pause_holds_until_the_control_file_says_run(tmp_path):
    import threading

    from engine.task import Task

    control = Control(Dist(), torch.device("cpu"))
    control.path = tmp_path / "control.json"
    write_control(tmp_path, "pause")
    task, done = Task(), threading.Event()
    waiter = threading.Thread(target=lambda: (control.apply(task), done.set()))
    waiter.start()
    assert not done.wait(0.3)  # paused: apply() is still waiting
    write_control(tmp_path, "run")
    waiter.join(timeout=10)
    assert done.is_set() and not task.cancelled


@pytest.mark.slow
def test_one_process_events_jsonl_prints_only_events(shapes, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(tiny_config(shapes, epochs=1).to_json(), encoding="utf-8")
    proc = refit("train", str(path), "--workspace", str(tmp_path / "ws"), "--events-jsonl")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    lines = [line for line in out.splitlines() if line.strip()]
    events = [event_from_json(line) for line in lines]
    assert None not in events
    assert isinstance(events[-1], RunEnded) and events[-1].status is RunStatus.COMPLETED
    assert any(isinstance(e, EpochEnded) for e in events)


@pytest.mark.slow
def test_a_job_that_cannot_start_says_why_in_one_sentence(tmp_path):
    from engine.distributed.launch import run_job

    result = run_job(2, config_json='{"schedule": "not a section"}', workspace=tmp_path / "ws")
    assert result.exit_code != 0 and result.status is RunStatus.FAILED
    assert "is not a Refit config.json" in result.error and "pass one" in result.error
    assert "ended unexpectedly" not in result.error
    assert not list((tmp_path / "ws" / "runs").glob("*/config.json"))  # no run was created
