"""A job of several processes never hangs when one process fails alone (engine/distributed/
failure.py): real 2-process Gloo jobs with a fault injected into one rank through a
``sitecustomize.py`` that only the test's PYTHONPATH holds (no user data or config can reach
it). Each job runs under a hard timeout that kills its whole process tree, and with a process
group timeout of 60 s, so a regression fails instead of hanging."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import psutil
import pytest
import torch
from synthetic import make_shapes_folder
from test_distributed import ROOT, epoch_lines, events_of, tiny_config

from engine.distributed.failure import (
    MARKER,
    MAX_TIMEOUT_S,
    ProcessFailed,
    announce,
    contact_sentence,
    group_timeout,
    is_lost_contact,
    rank_sentence,
    read_announcement,
)
from engine.distributed.launch import JobResult, _announced
from engine.events import RunEnded, RunStatus
from engine.runs import RunDir
from engine.training.trainer import resume

JOB_SECONDS = 240  # the hard limit of one job (it takes ~20 s on an idle 2-core machine)


# -- fast: the pieces ---------------------------------------------------------------------------


def test_the_timeout_comes_from_the_environment_or_is_ten_minutes(monkeypatch):
    monkeypatch.delenv("REFIT_DIST_TIMEOUT_S", raising=False)
    assert group_timeout().total_seconds() == 600
    monkeypatch.setenv("REFIT_DIST_TIMEOUT_S", "90")
    assert group_timeout().total_seconds() == 90
    for bad in ("soon", "-5", "0"):
        monkeypatch.setenv("REFIT_DIST_TIMEOUT_S", bad)
        assert group_timeout().total_seconds() == 600


def test_a_timeout_past_any_clock_is_the_longest_one_not_a_crash(monkeypatch):
    # float("1e309") is inf and 1e15 s is past timedelta's range: both raised OverflowError,
    # in the worker's init_process_group and again while it said why a collective failed.
    monkeypatch.setenv("REFIT_DIST_TIMEOUT_S", "nan")
    assert group_timeout().total_seconds() == 600
    for huge in ("1e309", "inf", "1e15"):
        monkeypatch.setenv("REFIT_DIST_TIMEOUT_S", huge)
        assert group_timeout().total_seconds() == MAX_TIMEOUT_S
        timed = RuntimeError("Timed out waiting 60000ms for recv")
        assert f"waited {MAX_TIMEOUT_S} s" in contact_sentence(timed, 0, 2, "r")


def test_a_forged_or_damaged_failure_line_is_not_a_processes_sentence():
    import io
    import json
    from contextlib import redirect_stderr

    def forged(**fields) -> str:
        record = {"rank": 1, "world": 2, "contact": False, "sentence": "X.", **fields}
        return MARKER + json.dumps(record)

    assert read_announcement(forged()) is not None
    for bad in ({"rank": "0"}, {"rank": True}, {"rank": -1}, {"rank": 2}, {"world": "2"}):
        assert read_announcement(forged(**bad)) is None, bad
    for bad in ({"contact": "yes"}, {"sentence": 5}, {"sentence": ["a"]}, {"world": 0}):
        assert read_announcement(forged(**bad)) is None, bad
    # A huge sentence is cut; control characters (a terminal's escapes) become spaces.
    record = read_announcement(forged(sentence="A\x1b[2J\rB" + "z" * 100_000))
    assert record is not None
    assert record["sentence"].startswith("A [2J B") and len(record["sentence"]) <= 2000
    # A process prints its line in one write: the other ranks' lines cannot cut into it.
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    with redirect_stderr(Stream()):
        announce(1, 2, "Process 1 of 2 failed: X.", contact=False)
    assert len(writes) == 1 and writes[0].endswith("\n")
    assert read_announcement(writes[0])["sentence"] == "Process 1 of 2 failed: X."


def test_a_failure_is_said_of_its_process_once():
    said = rank_sentence(1, 2, "ImageError: a.png cannot be decoded.", "run-a")
    assert said == (
        "Process 1 of 2 failed: ImageError: a.png cannot be decoded; `refit resume run-a` "
        "continues from the last checkpoint."
    )
    full = "The disk is full; free some space, then `refit resume run-a` continues it."
    assert rank_sentence(0, 2, full, "run-a").count("refit resume") == 1


def test_a_collective_that_failed_is_told_from_a_process_of_its_own():
    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection")
    assert is_lost_contact(gloo)
    assert is_lost_contact(RuntimeError("Application timeout caused pair closure"))
    assert not is_lost_contact(RuntimeError("injected failure"))
    assert not is_lost_contact(ProcessFailed("Process 1 of 2 failed: NCCL-free text.", 1))
    timed = RuntimeError("[/gloo/unbound_buffer.cc:129] Timed out waiting 60000ms for recv")
    assert "waited 600 s for the other processes" in contact_sentence(timed, 0, 2, "r")
    assert "one of them ended" in contact_sentence(gloo, 0, 2, "r")


def test_the_launcher_tells_the_first_process_that_failed_of_its_own(tmp_path):
    def line(rank: int, sentence: str, contact: bool) -> dict:
        import json

        text = MARKER + json.dumps(
            {"rank": rank, "world": 2, "contact": contact, "sentence": sentence}
        )
        record = read_announcement(text)
        assert record is not None
        return record

    # Rank 1 failed, then rank 0 lost contact with it: rank 1's sentence.
    result = JobResult(error="Process 0 of 2 lost contact ...")
    failures = [line(1, "Process 1 of 2 failed: X.", False), line(0, "lost", True)]
    assert _announced(result, failures, "")
    assert result.error == "Process 1 of 2 failed: X." and result.status is RunStatus.FAILED
    # Rank 0 failed of its own: the sentence its RunEnded carries stands.
    result = JobResult(error="The disk holding /w is full; ...")
    assert _announced(result, [line(0, "other words", False)], "")
    assert result.error == "The disk holding /w is full; ..."
    # Every process only lost contact (the timeout): rank 0's ending stands, else the first.
    result = JobResult(error="Process 0 of 2 waited 600 s ...")
    assert _announced(result, [line(1, "Process 1 of 2 waited", True)], "")
    assert result.error == "Process 0 of 2 waited 600 s ..."
    result = JobResult()
    assert _announced(result, [line(1, "Process 1 of 2 waited", True)], "")
    assert result.error == "Process 1 of 2 waited"
    # Every process only lost contact and one was killed: torchrun's log names it instead.
    killed = "Root Cause\n  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 3)"
    assert not _announced(JobResult(), [line(0, "lost", True)], killed)
    assert read_announcement("refit: error: something") is None
    assert read_announcement(MARKER + "{not json") is None


# -- slow: real torchrun jobs on the CPU with one rank's fault ----------------------------------


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=8)


def faulty_job(
    tmp_path: Path, shapes: Path, fault: str, *, timeout_s: int = 60, epochs: int = 3
) -> tuple[int, str, RunDir, RunEnded]:
    """``refit train --nproc 2`` with ``fault`` (the body of a sitecustomize.py) in every
    process; (exit code, stderr, run folder, rank 0's RunEnded). The whole process tree is
    killed at the limit."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(textwrap.dedent(fault), encoding="utf-8")
    path = tmp_path / "config.json"
    path.write_text(tiny_config(shapes, epochs=epochs).to_json(), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(inject), str(ROOT)]),
        "REFIT_DIST_TIMEOUT_S": str(timeout_s),
    }
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "engine", "train", str(path), "--workspace", str(ws)]
    proc = subprocess.Popen(
        [*cmd, "--nproc", "2", "--events-jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        out, err = proc.communicate(timeout=JOB_SECONDS)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.communicate()
        pytest.fail(f"The job still ran after {JOB_SECONDS} s: one rank's fault hung it.")
    ended = [e for e in events_of(out) if isinstance(e, RunEnded)]
    assert ended, err[-3000:]
    return proc.returncode, err, RunDir(Path(ended[-1].run_dir)), ended[-1]


def rank_one_failed(error: str, run: RunDir) -> str:
    """The sentence a job of 2 ends with when process 1 failed with ``error`` ("Type: text")."""
    return (
        f"Process 1 of 2 failed: {error}; `refit resume {run.run_id}` continues from the last "
        "checkpoint."
    )


def refit_error(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("refit: error: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0].removeprefix("refit: error: ")


def assert_resume_finishes(run: RunDir, epochs: int = 3) -> None:
    state = run.state()
    assert state["status"] == "failed" and state["resumable"] is True
    result = resume(run.run_id, workspace=run.path.parents[1])
    assert result.status is RunStatus.COMPLETED
    assert [r["epoch"] for r in epoch_lines(run)] == list(range(epochs))
    counts = Counter(r["step"] for r in run.metrics() if r.get("type") == "step")
    assert set(counts.values()) == {1}


@pytest.mark.slow
def test_a_batch_that_fails_on_one_rank_ends_every_rank_with_its_sentence(shapes, tmp_path):
    code, err, run, ended = faulty_job(
        tmp_path,
        shapes,
        """
        import os
        if os.environ.get("RANK") == "1":
            import engine.training.pipeline as p
            batches = p.ImagePipeline.train_batches
            def train_batches(self, epoch, start_step):
                for i, batch in enumerate(batches(self, epoch, start_step)):
                    if epoch == 1 and i == 1:
                        raise ValueError("image 7 of rank 1 cannot be decoded")
                    yield batch
            p.ImagePipeline.train_batches = train_batches
        """,
    )
    assert code != 0
    sentence = rank_one_failed("ValueError: image 7 of rank 1 cannot be decoded", run)
    assert refit_error(err) == sentence
    # Rank 0 heard it at the step's all-reduce and ended the run with it itself (what a
    # multi-node job started by torchrun directly, without the launcher, records).
    assert ended.error == sentence
    assert run.state()["error"] == sentence and run.summary()["error"] == sentence
    assert run.summary()["epochs_done"] == 1
    assert_resume_finishes(run)


@pytest.mark.slow
def test_a_validation_share_that_fails_on_one_rank_ends_every_rank(shapes, tmp_path):
    code, err, run, ended = faulty_job(
        tmp_path,
        shapes,
        """
        import os
        if os.environ.get("RANK") == "1":
            import engine.training.pipeline as p
            evaluate = p.ImagePipeline._eval_forward
            def eval_forward(self, x):
                if self.ctx.loop.epoch == 1:
                    raise ValueError("validation image 3 cannot be decoded")
                return evaluate(self, x)
            p.ImagePipeline._eval_forward = eval_forward
        """,
    )
    assert code != 0
    sentence = rank_one_failed("ValueError: validation image 3 cannot be decoded", run)
    assert refit_error(err) == sentence and ended.error == sentence
    assert [r["epoch"] for r in epoch_lines(run)] == [0]
    assert_resume_finishes(run)


@pytest.mark.slow
def test_a_step_that_raises_on_one_rank_ends_the_job_with_its_sentence(shapes, tmp_path):
    code, err, run, ended = faulty_job(
        tmp_path,
        shapes,
        """
        import os
        if os.environ.get("RANK") == "1":
            import engine.training.pipeline as p
            forward = p.ImagePipeline.forward
            def failing_forward(self, x):
                if self.ctx.loop.global_step == 4:
                    raise RuntimeError("injected forward failure")
                return forward(self, x)
            p.ImagePipeline.forward = failing_forward
        """,
    )
    assert code != 0
    sentence = rank_one_failed("RuntimeError: injected forward failure", run)
    # Rank 1 said it and ended; rank 0 lost contact in the step's collective (not Gloo's text).
    assert refit_error(err) == sentence and run.state()["error"] == sentence
    assert ended.error.startswith("Process 0 of 2 lost contact with the other processes")
    assert_resume_finishes(run)


@pytest.mark.slow
def test_a_checkpoint_rank_0_cannot_write_ends_the_job_with_its_own_sentence(shapes, tmp_path):
    code, err, run, ended = faulty_job(
        tmp_path,
        shapes,
        """
        import errno, os
        if os.environ.get("RANK") == "0":
            import engine.training.checkpointing as c
            commit = c.commit_last
            def commit_last(folder, model, state, *, epoch, global_step):
                if epoch == 2:  # the second epoch's last checkpoint: the disk is full
                    raise OSError(errno.ENOSPC, "No space left on device", str(folder))
                return commit(folder, model, state, epoch=epoch, global_step=global_step)
            c.commit_last = commit_last
        """,
    )
    assert code != 0
    said = refit_error(err)
    assert said.startswith("The disk holding ") and " is full; free some space" in said
    assert "Process" not in said and "ended unexpectedly" not in said
    assert ended.error == said and run.state()["error"] == said
    assert_resume_finishes(run)


@pytest.mark.slow
def test_an_out_of_memory_on_one_rank_only_trains_on(shapes, tmp_path):
    code, err, run, ended = faulty_job(
        tmp_path,
        shapes,
        """
        import os
        if os.environ.get("RANK") == "1":
            import torch
            import engine.training.pipeline as p
            forward = p.ImagePipeline.forward
            def oom_above_two(self, x):
                if len(x) > 2:  # this rank's GPU holds 2 images a pass, the other's 4
                    raise torch.OutOfMemoryError("injected: CUDA out of memory")
                return forward(self, x)
            p.ImagePipeline.forward = oom_above_two
        """,
    )
    # Micro-batches on rank 1 alone: one gradient all-reduce per step on each rank all the same.
    assert code == 0, err[-3000:]
    assert ended.status is RunStatus.COMPLETED and run.state()["status"] == "completed"
    lines = epoch_lines(run)
    assert [r["epoch"] for r in lines] == [0, 1, 2]
    assert all(torch.isfinite(torch.tensor(r["val_loss"])) for r in lines)


@pytest.mark.slow
def test_a_rank_stuck_in_a_collective_ends_the_job_at_the_timeout(shapes, tmp_path):
    code, err, run, _ = faulty_job(
        tmp_path,
        shapes,
        """
        import os
        if os.environ.get("RANK") == "1":
            import engine.training.pipeline as p
            batches = p.ImagePipeline.train_batches
            def train_batches(self, epoch, start_step):
                for i, batch in enumerate(batches(self, epoch, start_step)):
                    if epoch == 1 and i == 1:
                        import torch.distributed as td
                        td.barrier()  # a collective the other rank never calls
                    yield batch
            p.ImagePipeline.train_batches = train_batches
        """,
        timeout_s=20,
    )
    assert code != 0
    said = refit_error(err)
    assert said.startswith("Process ") and "waited 20 s for the other processes" in said
    assert f"`refit resume {run.run_id}`" in said
    assert run.state()["error"] == said
    assert_resume_finishes(run)
