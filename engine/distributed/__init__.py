"""Training on several processes with PyTorch's own pieces: torchrun starts the processes, DDP
averages the gradients, NCCL (CUDA) or Gloo (CPU) carries them. Nothing here launches or
communicates by itself; it only says, for one process of the job, who it is (:class:`Dist`),
which run folder it may write (rank 0 alone; the others get a :class:`MirrorRun` that reads the
same folder and writes nothing) and what rank 0 read from ``<run>/control.json``
(:class:`Control`).

``python -m engine.distributed CONFIG`` is the entry point torchrun runs (see worker.py);
``refit train ... --nproc N`` starts torchrun (launch.py). docs/scale-out.md tells the story.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.runs import RunDir

CONTROL_FILE = "control.json"
CONTROL_MAX_BYTES = 4096  # {"state": "pause"} is 20 bytes; anything far larger is not ours
_STATES = ("run", "pause", "stop")


@dataclass(frozen=True)
class Dist:
    """One process of a job: its global rank, the world size and its GPU on the node.

    The default is a 1-process run, for which every method returns its input unchanged and
    no collective is called, so the single-process path stays what it was."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Several processes train together (collectives are called)."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes the run folder and emits events."""
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable values only; ours are plain data)."""
        if not self.active:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as td

            td.barrier()

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """The sums of ``values`` over every rank (float64, one collective)."""
        if not self.active:
            return values
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=device)
        td.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) on every rank: DDP keeps the
        weights equal, but each rank's last training step updated its own statistics, and the
        validation each rank computes must be the model rank 0 saves."""
        if not self.active:
            return
        import torch.distributed as td

        for buffer in module.buffers():
            td.broadcast(buffer.data, src=0)

    def agree(
        self, sentence: str, device: torch.device, cause: BaseException | None = None
    ) -> None:
        """Every rank calls this at the same point with "" (all went well) or the sentence of
        its own failure; when one failed, every rank raises ProcessFailed (one all-reduce)."""
        if self.active:
            self.fail_together(self.all_sum([float(bool(sentence))], device)[0], sentence, cause)

    def fail_together(
        self, failed: float, sentence: str, cause: BaseException | None = None
    ) -> None:
        """After a collective that summed every rank's failure flag: when one rank failed, every
        rank raises ProcessFailed with the sentence of the lowest failed rank (the sentences
        are gathered only then)."""
        if not failed or not self.active:
            return
        import torch.distributed as td

        from engine.distributed.failure import ProcessFailed

        said: list[Any] = [None] * self.world
        td.all_gather_object(said, sentence)
        rank, first = next((r, s) for r, s in enumerate(said) if s)
        raise ProcessFailed(first, rank) from cause

    def shard(self, n: int) -> list[int]:
        """This rank's items of ``n``: every world-th one from its rank (interleaved, so the
        shards differ in size by at most one)."""
        return list(range(self.rank, n, self.world))

    def gather_rows(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """Every rank's ``part`` (the rows of :meth:`shard` of ``n``, in order) put back in
        dataset order, on the CPU, on every rank."""
        if not self.active:
            return part
        import torch.distributed as td

        parts: list[Any] = [None] * self.world
        td.all_gather_object(parts, part.detach().cpu())
        whole = torch.empty((n, *part.shape[1:]), dtype=part.dtype)
        for rank, rows in enumerate(parts):
            whole[rank : n : self.world] = rows
        return whole


SINGLE = Dist()


class MirrorRun(RunDir):
    """The run folder as a rank other than 0 sees it: it reads the real files (config, splits,
    checkpoints: a multi-node job needs the workspace on a shared filesystem) and every write
    through the RunDir API does nothing, so the folder is written by rank 0 alone."""

    def update_state(self, **changes: Any) -> dict[str, Any]:
        return {**self.state(), **changes}

    def write_summary(self, changes: Any) -> None:
        return None

    def write_splits(self, data: Any) -> None:
        return None

    def append_metrics(self, *records: dict[str, Any]) -> None:
        return None

    def keep_metrics_until(self, global_step: int, epoch: int) -> None:
        return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[Any]:
        yield None


def read_control(path: Path) -> str:
    """``run``, ``pause`` or ``stop`` from a control file the app wrote (``run`` when it is
    missing, too large, not JSON or names another state: a bad file never stops a run)."""
    try:
        with path.open("rb") as f:
            raw = f.read(CONTROL_MAX_BYTES + 1)
    except OSError:
        return "run"
    if len(raw) > CONTROL_MAX_BYTES:
        return "run"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "run"
    state = data.get("state") if isinstance(data, dict) else None
    return state if state in _STATES else "run"


def write_control(run_dir: str | Path, state: str) -> None:
    """Write ``<run>/control.json`` atomically (what the app and tests call)."""
    from engine.files import write_json_atomic

    if state not in _STATES:
        raise ValueError(f"A control state is one of {', '.join(_STATES)}, not {state!r}.")
    write_json_atomic(Path(run_dir) / CONTROL_FILE, {"state": state})


class Control:
    """Pause and stop for a job of several processes: rank 0 reads the control file (and its
    own stop request, set by SIGTERM or Ctrl+C) between steps and broadcasts the state, so that
    every rank pauses, or stops after the same step."""

    def __init__(self, dist: Dist, device: torch.device) -> None:
        self.dist = dist
        self.device = device
        self.path: Path | None = None  # set once rank 0 knows its run folder
        self.stop_requested = threading.Event()

    def poll(self) -> str:
        state = "run"
        if self.dist.is_main:
            if self.stop_requested.is_set():
                state = "stop"
            elif self.path is not None:
                state = read_control(self.path)
        if not self.dist.active:
            return state
        import torch.distributed as td

        code = torch.tensor([_STATES.index(state)], dtype=torch.int64, device=self.device)
        td.broadcast(code, src=0)
        return _STATES[int(code.item())]

    def apply(self, task: Any) -> None:
        """Between steps: wait while paused (every rank, polling together); cancel ``task`` on
        stop, so the trainer checkpoints and ends as a stopped 1-process run does."""
        while True:
            state = self.poll()
            if state == "stop":
                task.cancel()
                return
            if state == "run":
                return
            time.sleep(0.5)
