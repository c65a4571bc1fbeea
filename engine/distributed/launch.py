"""`refit train ... --nproc N` and `refit resume RUN --nproc N`: the run under torchrun.

The CLI writes the resolved RunConfig to a JSON file in the workspace, starts
``python -m torch.distributed.run --standalone --nproc-per-node N -m engine.distributed CONFIG
--events-jsonl`` and rebuilds rank 0's events from its stdout (the same progress as a
1-process run). Ctrl+C writes ``<run>/control.json`` = stop (every rank stops after the same
step, with a checkpoint). When a process dies, torchrun stops the others and names the rank
that failed; that becomes one sentence, in the run's summary and state and on the terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import Event, RunEnded, RunStarted, RunStatus, event_from_json

#: torchrun's summary of a failed worker: "rank : 1 (local_rank: 1)" then "exitcode : -9".
_ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)")
STDERR_KEPT = 200  # lines of torchrun's own log kept for a failure we cannot name


def torchrun_command(
    config_path: str | Path,
    nproc: int,
    *,
    workspace: str | Path | None = None,
    resume: str = "",
    events_jsonl: bool = True,
    track: Sequence[str] = (),
) -> list[str]:
    """The torchrun command line of a job of ``nproc`` processes on this machine; ``track``:
    `--track` values (rank 0 tracks the run there)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "engine.distributed", str(config_path)]
    if workspace is not None:
        cmd += ["--workspace", str(workspace)]
    if resume:
        cmd += ["--resume", resume]
    for value in track:
        cmd += ["--track", value]
    if events_jsonl:
        cmd.append("--events-jsonl")
    return cmd


@dataclass
class JobResult:
    """How a torchrun job ended (the fields `refit train` prints, like a RunResult's)."""

    run_dir: Path | str = ""
    status: RunStatus = RunStatus.FAILED
    best_metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    warnings: tuple[str, ...] = ()
    evaluation: str = ""
    exit_code: int = 0


def failed_rank(log: str) -> tuple[int, int] | None:
    """(rank, exit code) of the first failure torchrun reports in its log ("Root Cause", after
    the list of the processes it then stopped itself), or None."""
    cause = log.rfind("Root Cause")
    match = _ROOT_CAUSE.search(log, cause if cause >= 0 else 0)
    return (int(match.group(1)), int(match.group(2))) if match else None


def failure_sentence(rank: int, world: int, code: int, run_id: str) -> str:
    """What the user reads when one process of a job dies."""
    again = f"`refit resume {run_id}`" if run_id else "`refit resume RUN`"
    return (
        f"Process {rank} of {world} ended unexpectedly (exit code {code}); {again} continues "
        "from the last checkpoint."
    )


def run_job(
    nproc: int,
    *,
    config_json: str = "",
    resume: str = "",
    workspace: str | Path | None = None,
    on_event: Callable[[Event], Any] | None = None,
    task: Any = None,
    track: Sequence[str] = (),
) -> JobResult:
    """Run a job of ``nproc`` processes on this machine and return how it ended; the events of
    rank 0 go to ``on_event``; cancelling ``task`` stops every process after its step;
    ``track``: `--track` values, tracked by rank 0."""
    from engine.runs import Workspace

    ws = Workspace(workspace)
    ws.runs_root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".launch-", suffix=".json", dir=ws.runs_root)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(config_json or "{}")
    cmd = torchrun_command(name, nproc, workspace=ws.root, resume=resume, track=track)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A session of its own: the terminal's Ctrl+C reaches this process alone, which asks the
    # job to stop through the control file instead of killing it mid-step.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    result = JobResult()
    log: list[str] = []
    refusals: list[str] = []
    failures: list[dict[str, Any]] = []  # the processes' own sentences (failure.announce)
    reader = threading.Thread(
        target=_keep_stderr, args=(proc, log, refusals, failures), daemon=True
    )
    reader.start()
    stopper = threading.Thread(target=_stop_on_cancel, args=(proc, task, result), daemon=True)
    if task is not None:
        stopper.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = event_from_json(line)
            if event is None:
                if line.strip():
                    print(line.rstrip(), file=sys.stderr)
                continue
            _note(result, event)
            if on_event is not None:
                on_event(event)
        result.exit_code = proc.wait()
    except KeyboardInterrupt:  # a second Ctrl+C: torchrun passes SIGTERM to every process
        proc.terminate()
        result.exit_code = proc.wait()
    finally:
        reader.join(timeout=5)
        Path(name).unlink(missing_ok=True)
    if result.exit_code != 0 and refusals and not result.run_dir:
        result.error = refusals[0]  # the job refused to start: rank 0's sentence
    elif result.exit_code != 0 and not _announced(result, failures, "".join(log)):
        _failed(result, "".join(log), nproc)
    return result


def _note(result: JobResult, event: Event) -> None:
    if isinstance(event, RunStarted):
        result.run_dir = event.run_dir
    elif isinstance(event, RunEnded):
        result.status, result.error = event.status, event.error
        result.best_metrics, result.warnings = dict(event.best_metrics), event.warnings
        result.run_dir = event.run_dir or result.run_dir


def _keep_stderr(
    proc: subprocess.Popen, log: list[str], refusals: list[str], failures: list[dict[str, Any]]
) -> None:
    """torchrun's log: kept (its failure summary names the rank), with the worker's own
    one-sentence refusals ("refit: error: ...") and failures (failure.announce) apart."""
    from engine.distributed.failure import read_announcement

    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("refit: error: "):
            refusals.append(line.removeprefix("refit: error: ").strip())
        announced = read_announcement(line)
        if announced is not None:
            failures.append(announced)
            continue
        log.append(line)
        del log[:-STDERR_KEPT]


def _stop_on_cancel(proc: subprocess.Popen, task: Any, result: JobResult) -> None:
    """The first Ctrl+C (the task cancelled): ask every process to stop after its step."""
    from engine.distributed import write_control

    while proc.poll() is None:
        if task.cancel_event.wait(timeout=0.5):
            if result.run_dir:
                write_control(result.run_dir, "stop")
            else:  # still setting up: nothing to checkpoint yet
                proc.terminate()
            return


def _announced(result: JobResult, failures: list[dict[str, Any]], log: str) -> bool:
    """The job ended non-zero after a process said why. The first process that failed of its
    own is the sentence (the others then lost contact with it); rank 0's own sentence is the
    one its RunEnded carries. When the processes only lost contact (the group's timeout) and
    none was killed, rank 0's ending stands, or else the first of those sentences. False
    otherwise: torchrun's log names the rank."""
    own = [f for f in failures if not f.get("contact")]
    found = failed_rank(log)
    if own:
        first = own[0]
        if first.get("rank") != 0 or not result.error:
            result.error = first["sentence"]
    elif failures and (found is None or found[1] > 0):
        if result.error or result.status is not RunStatus.FAILED:
            return True  # rank 0 ended the run itself (diverged, timed out): its ending stands
        result.error = failures[0]["sentence"]
    else:
        return False
    result.status = RunStatus.FAILED
    if result.run_dir:
        record_failure(Path(result.run_dir), result.error)
    return True


def _failed(result: JobResult, log: str, world: int) -> None:
    """The job ended non-zero. Rank 0's own ending (a RunEnded with its sentence) stands when
    rank 0 is the one that failed by an exception; a process that died is named in a sentence,
    recorded in the run's summary and state."""
    found = failed_rank(log)
    rank0_ended = result.error or result.status is not RunStatus.FAILED
    if found is not None and found[0] == 0 and found[1] > 0 and rank0_ended:
        return
    if found is None and rank0_ended and result.run_dir:
        return  # torchrun stopped by a signal after rank 0 ended the run (stopped)
    run_id = Path(result.run_dir).name if result.run_dir else ""
    if found is None:
        tail = log.strip().splitlines()[-1:] or ["no log"]
        result.error = f"The job of {world} processes failed ({tail[0].strip()})."
        if run_id:
            result.error = result.error[:-1] + f"; `refit resume {run_id}` continues it."
    else:
        result.error = failure_sentence(found[0], world, found[1], run_id)
    result.status = RunStatus.FAILED
    if result.run_dir:
        record_failure(Path(result.run_dir), result.error)


def record_failure(run_dir: Path, sentence: str) -> None:
    """The run's summary and state say why the job ended (best effort: a full disk loses it,
    the terminal still says it)."""
    import contextlib

    from engine.runs import RunDir
    from engine.training.checkpoint_files import has_last_checkpoint

    run = RunDir(run_dir)
    with contextlib.suppress(OSError, ValueError):
        run.write_summary({"status": "failed", "error": sentence})
        run.update_state(
            status="failed", error=sentence, resumable=has_last_checkpoint(run.checkpoints)
        )
