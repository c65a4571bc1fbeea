"""Training on several processes (all GPUs, a chosen subset, or CPU processes with Gloo): the
engine runs under torchrun in a child process, and its rank 0 prints one JSON line per engine
event. These jobs are ordinary EngineWorker jobs: they rebuild each line into the same event the
in-process runner sends, so the Train page's plots, log and buttons work unchanged.

Pause, continue and stop write ``<run folder>/control.json`` (atomically), which the job reads
between steps; a stop that the job does not honour within ``STOP_GRACE_S`` gets SIGTERM, then
SIGKILL. A child that dies ends the run with one sentence, never an exception in the app.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from desktop.worker import Job
from engine import (
    Event,
    RunConfig,
    RunEnded,
    RunStarted,
    RunStatus,
    Task,
)

CONTROL_FILE = "control.json"
# A stop waits this long for the current step and the checkpoint, then SIGTERM (the ranks stop
# after their step too), then SIGKILL: in all under desktop.worker.TRAINING_WAIT_MS (30 s), so
# that quitting the app never leaves training processes behind.
STOP_GRACE_S = 18.0
KILL_GRACE_S = 8.0
MAX_LINE = 1_000_000  # an event line longer than this is skipped
STDERR_LINES = 40
POLL_S = 0.1
_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL


@dataclass(frozen=True)
class ProcessPlan:
    """How many processes train, and on what: ``gpus`` are CUDA indices (empty: CPU processes
    with Gloo). One process with no GPUs chosen means the ordinary in-app run."""

    nproc: int = 1
    gpus: tuple[int, ...] = ()

    @property
    def in_child(self) -> bool:
        """Whether the run goes to a torchrun child (several processes, or chosen GPUs)."""
        return self.nproc > 1 or bool(self.gpus)

    @property
    def on_gpus(self) -> bool:
        return bool(self.gpus)

    def describe(self) -> str:
        """'4 GPUs (0, 1, 2, 3)' or '2 CPU processes'."""
        if self.on_gpus:
            return f"{len(self.gpus)} GPUs ({', '.join(map(str, self.gpus))})"
        return f"{self.nproc} CPU processes"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The child's environment: CUDA_VISIBLE_DEVICES names the chosen GPUs; CPU processes
        see none (so torch picks Gloo and the CPU)."""
        env = dict(os.environ if base is None else base)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus)) if self.on_gpus else ""
        env["PYTHONUNBUFFERED"] = "1"
        return env


def engine_command() -> list[str]:
    """How to start the engine's command line in a child process (tests replace it)."""
    return [sys.executable, "-m", "engine"]


def train_command(config_file: Path, workspace: Path, plan: ProcessPlan) -> list[str]:
    """``python -m engine train CONFIG --nproc N --events-jsonl --workspace WS``."""
    return [
        *engine_command(),
        "train",
        str(config_file),
        "--nproc",
        str(plan.nproc),
        "--events-jsonl",
        "--workspace",
        str(workspace),
    ]


def resume_command(run_dir: str, workspace: Path, plan: ProcessPlan) -> list[str]:
    """``python -m engine resume RUN --nproc N --events-jsonl --workspace WS``."""
    return [
        *engine_command(),
        "resume",
        run_dir,
        "--nproc",
        str(plan.nproc),
        "--events-jsonl",
        "--workspace",
        str(workspace),
    ]


def distributed_train_job(config: RunConfig, workspace: Path, plan: ProcessPlan) -> Job:
    """A worker job that trains ``config`` with ``plan.nproc`` processes under torchrun."""

    def job(on_event: Callable[[Event], None], task: Task) -> Any:
        device = type(config.device.device)("cuda" if plan.on_gpus else "cpu")  # the Device enum
        chosen = replace(config, device=replace(config.device, device=device))
        with tempfile.TemporaryDirectory(prefix="refit-job-") as tmp:
            config_file = Path(tmp) / "config.json"
            config_file.write_text(chosen.to_json(), encoding="utf-8")
            command = train_command(config_file, workspace, plan)
            return run_engine_process(command, plan.environment(), on_event, task)

    return job


def distributed_resume_job(run_dir: str, workspace: Path, plan: ProcessPlan) -> Job:
    """A worker job that continues a stopped run with ``plan.nproc`` processes; its earlier
    curves are sent first, as the in-app resume does."""

    def job(on_event: Callable[[Event], None], task: Task) -> Any:
        from desktop.widgets.run_history import HistoryLoaded, RunHistory
        from engine import RunDir

        def forward(event: Event) -> None:
            if isinstance(event, RunStarted):
                records = RunDir(Path(event.run_dir)).metrics()
                on_event(HistoryLoaded(RunHistory.from_records(records)))  # type: ignore[arg-type]
            on_event(event)

        # the stop that ended the run is still in its control.json: the job must not read it
        if (Path(run_dir) / CONTROL_FILE).exists():
            from engine import write_control  # engine.distributed imports torch: not at start

            write_control(run_dir, "run")
        command = resume_command(run_dir, workspace, plan)
        return run_engine_process(command, plan.environment(), forward, task)

    return job


def event_from_json(line: str) -> Event | None:
    """The engine event one JSON line spells, or None for anything else (the engine's own
    parser: unknown events and fields of the wrong type are refused)."""
    from engine import event_from_json as parse

    return parse(line)


def crash_sentence(code: int, last_error: str, *, started: bool = True) -> str:
    """The sentence the Train page shows when the training processes die (``started``: after
    the run folder was made; before, they refused the run or could not start)."""
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    detail = f": {last_error.rstrip('.')}" if last_error else ""
    if not started:
        return f"The training processes did not start ({how}){detail}."
    return (
        f"The training processes ended unexpectedly ({how}){detail}. Resume continues from the "
        "last checkpoint."
    )


def run_engine_process(
    command: list[str],
    env: dict[str, str],
    on_event: Callable[[Event], None],
    task: Task,
    *,
    stop_grace_s: float | None = None,
    kill_grace_s: float | None = None,
) -> RunStatus:
    """Run ``command``, turn its stdout's JSON lines into events for ``on_event``, and follow
    ``task``'s pause and cancel with control.json. Always ends with a RunEnded: the job's own, or
    one this function makes when the processes died without sending it."""
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,  # one process group: a signal reaches torchrun and its ranks
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str | None] = queue.Queue()
    errors: deque[str] = deque(maxlen=STDERR_LINES)
    readers = [
        threading.Thread(target=_read_lines, args=(proc.stdout, lines.put, True), daemon=True),
        threading.Thread(target=_read_lines, args=(proc.stderr, errors.append), daemon=True),
    ]
    for reader in readers:
        reader.start()
    watch = _Control(
        proc,
        task,
        STOP_GRACE_S if stop_grace_s is None else stop_grace_s,
        KILL_GRACE_S if kill_grace_s is None else kill_grace_s,
    )
    ended: RunEnded | None = None
    stdout_open = True
    while stdout_open or proc.poll() is None:
        watch.tick()
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if line is None:
            stdout_open = False
            continue
        event = event_from_json(line)
        if event is None:
            continue
        if isinstance(event, RunStarted):
            watch.run_dir = event.run_dir
        if isinstance(event, RunEnded):
            ended = event
        on_event(event)
    code = proc.wait()
    for reader in readers:
        reader.join(timeout=2)
    if ended is not None:
        return ended.status
    if watch.stopping:
        status, error = RunStatus.CANCELLED, ""
    else:
        last = next((e.strip() for e in reversed(errors) if e.strip()), "")
        status = RunStatus.FAILED
        error = (
            crash_sentence(code, last[:300], started=bool(watch.run_dir))
            if code
            else ("The training processes ended without saying how the run finished.")
        )
    on_event(RunEnded(status=status, error=error, run_dir=watch.run_dir))
    return status


def _read_lines(stream: IO[str], put: Callable[[Any], None], end: bool = False) -> None:
    """Hand every line of ``stream`` to ``put`` (a longer line than MAX_LINE is skipped), and
    None at the stream's end when ``end``."""
    try:
        while True:
            line = stream.readline(MAX_LINE + 1)
            if not line:
                break
            if len(line) > MAX_LINE:  # skip the rest of an oversized line
                while line and not line.endswith("\n"):
                    line = stream.readline(MAX_LINE + 1)
                continue
            put(line.rstrip("\n"))
    except (OSError, ValueError):
        pass
    finally:
        if end:
            put(None)


class _Control:
    """Follows the Task's pause and cancel flags: writes control.json once the run folder is
    known, and signals the process group when a stop is not honoured in time."""

    def __init__(
        self, proc: subprocess.Popen[str], task: Task, stop_grace_s: float, kill_grace_s: float
    ) -> None:
        self.proc, self.task = proc, task
        self.stop_grace_s, self.kill_grace_s = stop_grace_s, kill_grace_s
        self.run_dir = ""
        self._written = ""  # what we last wrote to control.json (first: whatever the task says)
        self._stop_at: float | None = None
        self._signalled = 0  # 0, SIGTERM or SIGKILL

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def tick(self) -> None:
        wanted = "stop" if self.task.cancelled else "pause" if self.task.paused else "run"
        if wanted == "stop" and self._stop_at is None:
            self._stop_at = time.monotonic()
        if self.run_dir and wanted != self._written:
            try:
                from engine import write_control

                write_control(self.run_dir, wanted)
                self._written = wanted
            except OSError:
                pass  # the folder went away: the grace period below still ends the job
        if self._stop_at is None or self.proc.poll() is not None:
            return
        waited = time.monotonic() - self._stop_at
        if not self.run_dir and not self._signalled:
            self._signal(signal.SIGTERM)  # nothing to save yet: no need to wait
        elif waited > self.stop_grace_s and not self._signalled:
            self._signal(signal.SIGTERM)
        elif waited > self.stop_grace_s + self.kill_grace_s and self._signalled != _SIGKILL:
            self._signal(_SIGKILL)

    def _signal(self, sig: int) -> None:
        self._signalled = sig
        try:
            killpg = getattr(os, "killpg", None)  # POSIX: the whole group, torchrun's ranks too
            if killpg is not None:
                killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
