"""Run files hold any bytes: every reader survives, the damaged run is named, the others work.

One tiny real run is trained and evaluated once per module; every other run is a copy of it with
one file damaged in one way. Also: the run lock, a dead owner, and unusable workspaces.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import tree_snapshot
from trained_runs import train_image_run

from engine.cli import main
from engine.runs import RunDir, RunFileError, Workspace, WorkspaceError

pytestmark = pytest.mark.slow  # one real run (a few seconds), then only reading
REPO = Path(__file__).resolve().parents[2]

JSON_FILES = ("config.json", "state.json", "summary.json", "splits.json")
DAMAGING = ("config.json", "state.json", "summary.json", "splits.json")  # status "damaged"
NOTED = ("metrics.jsonl", "evaluation/val.json", "evaluation/val-predictions.npz")
KINDS = ("truncated", "emptied", "random", "not-utf8", "not-object")


def damage(data: bytes, kind: str, name: str) -> bytes:
    """``data`` (a run file's bytes) damaged in one way."""
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "emptied":
        return b""
    if kind == "random":
        return random.Random(name).randbytes(700)
    if kind == "not-utf8":  # still JSON in shape: only the decoding must fail
        cut = data.index(b'"') + 1
        return data[:cut] + b"\xff\xfe" + data[cut:]
    if kind == "not-object":
        return b'[1]\n2\n"text"\nnull\n' if name.endswith(".jsonl") else b"[1, 2, 3]\n"
    raise AssertionError(kind)


def damaged_npz(good: bytes, kind: str) -> bytes:
    """Predictions damaged in one way; for a zip, "not-utf8"/"not-object" damage its meta."""
    if kind in ("truncated", "emptied", "random"):
        return damage(good, kind, "npz")
    with np.load(io.BytesIO(good)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = b"\xff\xfe{}" if kind == "not-utf8" else b"[1, 2]"
    arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def case_id(name: str, kind: str) -> str:
    return f"zz-{name.replace('/', '_').replace('.', '_')}-{kind}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with the good run and one copy per (file, kind of damage)."""
    from engine.evaluation import evaluate_run

    root = tmp_path_factory.mktemp("damaged")
    good = RunDir(train_image_run(root))
    evaluate_run(good, "val")
    cases = {}
    for name in DAMAGING + NOTED:
        for kind in KINDS:
            copy = RunDir(good.path.parent / case_id(name, kind))
            shutil.copytree(good.path, copy.path)
            target = copy.path / name
            data = target.read_bytes()
            bad = damaged_npz(data, kind) if name.endswith(".npz") else damage(data, kind, name)
            target.write_bytes(bad)
            cases[(name, kind)] = copy
    return Workspace(good.path.parent.parent), good, cases


def test_every_damaged_run_is_listed_and_the_good_run_untouched(workspace):
    ws, good, cases = workspace
    before = tree_snapshot(good.path)
    runs = {r.run_id: r for r in ws.list_runs()}
    assert tree_snapshot(good.path) == before
    assert runs[good.run_id].status == "completed" and runs[good.run_id].problems == ()
    assert runs[good.run_id].best["val_accuracy"] >= 0
    for (name, kind), run in cases.items():
        info = runs[run.run_id]
        if name in DAMAGING:
            assert info.status == "damaged", (name, kind)
            assert name in info.problems[0], info.problems
            assert "restore it from a backup" in info.problems[0]
        elif kind == "emptied" and name == "metrics.jsonl":
            assert info.status == "completed" and info.problems == ()  # no curves: not damage
        else:  # metrics and evaluations: noted, the run stays usable
            assert info.status == "completed", (name, kind, info.problems)
            assert any(Path(name).name in p for p in info.problems), (name, kind, info.problems)


@pytest.mark.parametrize("name", JSON_FILES)
@pytest.mark.parametrize("kind", KINDS)
def test_strict_readers_raise_one_sentence_naming_the_file(workspace, name, kind):
    _, _, cases = workspace
    run = cases[(name, kind)]
    reader = {
        "config.json": run.config,
        "state.json": run.state,
        "summary.json": run.summary,
        "splits.json": run.splits,
    }[name]
    with pytest.raises(RunFileError) as err:
        reader()
    sentence = str(err.value)
    assert str(run.path / name) in sentence and sentence.endswith(".")
    assert "\n" not in sentence


def test_metrics_reader_keeps_readable_lines_and_counts_the_rest(workspace):
    _, good, _ = workspace
    records = good.metrics()
    assert records and all(isinstance(r, dict) for r in records)
    (tmp := good.path.parent.parent / "scratch").mkdir(exist_ok=True)
    copy = RunDir(tmp / "metrics-run")
    copy.path.mkdir(exist_ok=True)
    garbage = b'\xff\xfe\n{"half": \n[1, 2]\n"text"\n{"type": "step", "step": "x"}\n'
    copy.metrics_path.write_bytes(good.metrics_path.read_bytes() + garbage + b"\x00" * 100)
    lines = copy.metrics_lines()
    assert lines.records == records
    assert lines.unreadable == 6


def test_huge_files_are_refused_without_reading_them_whole(workspace):
    _, good, _ = workspace
    run = RunDir(good.path.parent.parent / "scratch" / "huge")
    shutil.copytree(good.path, run.path)
    with open(run.state_path, "wb") as fh:  # sparse: 17 MB of zeros, no disk used
        fh.truncate(17 * 2**20)
    with open(run.metrics_path, "ab") as fh:  # one 40 MB line with no end
        fh.truncate(fh.tell() + 40 * 2**20)
    with pytest.raises(RunFileError, match=r"state\.json is larger than 16 MiB"):
        run.state()
    lines = run.metrics_lines()
    assert lines.records == good.metrics() and lines.unreadable == 1


def test_refit_runs_lists_damaged_runs_in_a_subprocess(workspace):
    ws, good, cases = workspace
    before = tree_snapshot(good.path)
    done = _refit("--workspace", str(ws.root), "runs")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    for (name, _kind), run in cases.items():
        row = next(line for line in lines if line.startswith(run.run_id))
        assert ("damaged" in row) == (name in DAMAGING), row
    assert any(line.startswith(good.run_id) and "completed" in line for line in lines)
    assert any("config.json is not UTF-8 text" in line for line in lines)
    listed = json.loads(_refit("--workspace", str(ws.root), "runs", "--json").stdout)
    assert {r["run_id"] for r in listed} == {good.run_id, *(r.run_id for r in cases.values())}
    assert tree_snapshot(good.path) == before


@pytest.mark.parametrize("name", DAMAGING)
@pytest.mark.parametrize(
    "command",
    [
        ("resume", "{run}", "--quiet"),
        ("evaluate", "{run}"),
        ("predict", "{run}", "{image}"),
        ("export", "{run}", "--format", "safetensors", "--out", "{out}", "--quiet"),
    ],
    ids=lambda c: c[0] if isinstance(c, tuple) else c,
)
def test_commands_on_a_damaged_run_say_which_file_and_rewrite_nothing(
    workspace, capsys, tmp_path, name, command
):
    ws, good, cases = workspace
    run = cases[(name, "not-utf8")]
    before = tree_snapshot(run.path)
    image = next(Path(good.splits()["root"]).rglob("*.png"))
    argv = [a.format(run=run.path, image=image, out=tmp_path / "out") for a in command]
    code = main(["--workspace", str(ws.root), *argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err and f"{name} is not UTF-8 text" in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    assert tree_snapshot(run.path) == before  # a completed run is never rewritten as failed


def test_resume_after_garbage_in_metrics_rewrites_it_from_the_readable_lines(tmp_path):
    from engine.task import Task
    from engine.training.callbacks import Callback
    from engine.training.trainer import resume, train

    good = RunDir(train_image_run(tmp_path / "first"))
    task = Task()

    class StopAtStep2(Callback):
        def on_step_ended(self, event, ctx):
            if event.step == 2:
                task.cancel()

    config = good.config()
    ws = tmp_path / "ws2"
    stopped = train(config, workspace=ws, callbacks=[StopAtStep2()], task=task)
    assert str(stopped.status) == "cancelled"
    run = RunDir(stopped.run_dir)
    with open(run.metrics_path, "ab") as fh:
        fh.write(b'\xff\xfe garbage\n{"torn": \n[1, 2]\n')
    result = resume(run.path, workspace=ws)
    assert str(result.status) == "completed"
    records = run.metrics()
    assert run.metrics_lines().unreadable == 0  # the garbage is gone from the file
    steps = [r["step"] for r in records if r.get("type") == "step"]
    assert steps == list(range(1, run.summary()["global_step"] + 1))  # each step once
    assert run.status() == "completed" and run.summary()["status"] == "completed"


def test_a_second_resume_is_refused_while_the_owner_lives(workspace, tmp_path):
    _, good, _ = workspace
    run = RunDir(tmp_path / "locked")
    shutil.copytree(good.path, run.path)
    before = tree_snapshot(run.path)
    with run.lock() as me:
        assert run.owner() == me
        done = _refit("resume", str(run.path), "--quiet")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert f"already being trained by process {os.getpid()}" in done.stderr
        from engine.run_lock import RunBusyError
        from engine.training.trainer import resume

        with pytest.raises(RunBusyError):  # the same process (a second GUI Resume) too
            resume(run.path)
    assert not run.lock_path.exists() and run.owner() is None
    after = tree_snapshot(run.path)
    assert after == before


def test_a_running_run_whose_owner_is_gone_is_interrupted(workspace, tmp_path):
    from engine.files import write_json_atomic
    from engine.run_lock import this_process

    _, good, _ = workspace
    ws = Workspace(tmp_path / "ws")
    runs = {}
    me = this_process()
    owners = {
        "no-lock": None,
        "dead-pid": {"pid": _dead_pid(), "started": me.started, "host": me.host},
        "reused-pid": {"pid": me.pid, "started": me.started - 3600, "host": me.host},
        "garbage-lock": b"\xff\x00 not a lock",
        "alive": {"pid": me.pid, "started": me.started, "host": me.host},
        "other-host": {"pid": _dead_pid(), "started": 1.0, "host": me.host + "-elsewhere"},
    }
    for name, owner in owners.items():
        run = RunDir(ws.runs_root / name)
        shutil.copytree(good.path, run.path)
        run.update_state(status="running", resumable=False)
        if isinstance(owner, dict):
            write_json_atomic(run.lock_path, owner)
        elif owner is not None:
            run.lock_path.write_bytes(owner)
        runs[name] = run
    listed = {r.run_id: r.status for r in ws.list_runs()}
    assert listed == {
        "no-lock": "interrupted",
        "dead-pid": "interrupted",
        "reused-pid": "interrupted",
        "garbage-lock": "interrupted",
        "alive": "running",
        "other-host": "running",  # cannot be checked from here: respected
    }
    # The stale lock is taken over: the dead run resumes (refused only while the owner lives).
    with runs["dead-pid"].lock() as taken:
        assert runs["dead-pid"].owner() == taken
    done = _refit("--workspace", str(ws.root), "runs")
    assert "interrupted" in done.stdout and done.returncode == 0


def test_workspace_that_is_a_file_or_under_a_file_gives_one_sentence(tmp_path):
    from engine.config import RunConfig

    afile = tmp_path / "workspace.txt"
    afile.write_text("not a folder")
    for root in (afile, afile / "inside"):
        with pytest.raises(WorkspaceError, match="choose another workspace"):
            Workspace(root).create_run(RunConfig())
        done = _refit("--workspace", str(root), "runs")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert str(afile) in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_read_only_workspace_gives_one_sentence(tmp_path, capsys, monkeypatch):
    """Root ignores mode bits, so the refusal of the OS is injected: both the check before
    writing and an OSError while writing give the sentence."""
    from engine.config import RunConfig

    ws = Workspace(tmp_path / "ws")
    ws.runs_root.mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode & os.W_OK else real_access(p, mode)
    )
    with pytest.raises(WorkspaceError, match=r"ws/runs is read-only; make it writable"):
        ws.create_run(RunConfig())
    assert ws.problem() == ""  # listing still works
    monkeypatch.setattr(os, "access", real_access)

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    config = tmp_path / "config.json"
    config.write_text(RunConfig(data=RunConfig().data).to_json())
    code = main(["--workspace", str(tmp_path / "ro"), "train", str(config), "--quiet"])
    _out, err = capsys.readouterr()
    assert code == 2, err
    assert "is read-only (Permission denied); make it writable" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _refit(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )


def _dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
