"""Child process of test_kill_resume: trains the tiny run and kills itself (SIGKILL) at an
instrumented point, so nothing of the engine gets to clean up.

    python kill_child.py DATA THREADS OUT POINT...

It imports the engine once, then forks one process per POINT (importing torch costs seconds,
training the tiny run less); each trains into OUT/<index>/ws and is killed at its point. The
way each ended is written to OUT/<index>/ended ("killed" or what else happened).

POINT is ``step:N`` (after the N-th training step) or ``TARGET:N:WHEN``: the N-th matching call
of TARGET, with WHEN ``before`` (nothing written), ``inside`` (half of the bytes written) or
``after`` (written, nothing after it). TARGET is one of
``last_weights``, ``best_weights`` (safetensors save_file), ``state`` (torch.save),
``manifest``, ``rename`` (the generation folder renamed into place), ``prune`` (removing an
older generation) or ``metrics`` (appending an epoch's lines to metrics.jsonl).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def truncate_half(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb+") as fh:
        fh.truncate(size // 2)


class Trap:
    """Counts matching calls and dies at the chosen one."""

    def __init__(self, n: int, when: str) -> None:
        self.n, self.when, self.calls = n, when, 0

    def hit(self) -> bool:
        self.calls += 1
        return self.calls == self.n

    def wrap_writer(self, real, path_of, matches):
        """A function that writes a file: die before it, after half of it, or after it."""

        def wrapper(*args, **kwargs):
            path = Path(path_of(*args, **kwargs))
            if not matches(path) or not self.hit():
                return real(*args, **kwargs)
            if self.when == "before":
                die()
            result = real(*args, **kwargs)
            if self.when == "inside":
                truncate_half(path)
            die()
            return result

        return wrapper


def install(point: str) -> list:
    import shutil

    import torch

    import engine.files
    import engine.runs.folder
    import engine.training.checkpoint as ckpt

    if point.startswith("step:"):
        return [int(point.split(":")[1])]
    target, n, when = point.split(":")
    trap = Trap(int(n), when)
    if target in ("last_weights", "best_weights"):
        name = "last.safetensors" if target == "last_weights" else "best.safetensors"
        ckpt.save_file = trap.wrap_writer(
            ckpt.save_file, lambda tensors, path, **kw: path, lambda p: name in p.name
        )
    elif target == "state":
        torch.save = trap.wrap_writer(torch.save, lambda obj, f, **kw: f, lambda p: True)
    elif target == "manifest":
        ckpt._write_manifest = trap.wrap_writer(ckpt._write_manifest, lambda p, m: p, bool)
    elif target == "rename":
        real_rename = os.rename

        def rename(src, dst, *args, **kwargs):
            if "checkpoints" not in str(dst) or not trap.hit():
                return real_rename(src, dst, *args, **kwargs)
            if when == "before":
                die()
            real_rename(src, dst, *args, **kwargs)
            die()

        ckpt.os.rename = rename
    elif target == "prune":
        real_rmtree = shutil.rmtree

        def rmtree(path, *args, **kwargs):
            if not Path(path).name.startswith("last-") or not trap.hit():
                return real_rmtree(path, *args, **kwargs)
            (Path(path) / "last.safetensors").unlink()  # removal got this far
            die()

        ckpt.shutil.rmtree = rmtree
    elif target == "metrics":
        real_append = engine.files.append_jsonl

        def append(path, records):
            # Only the flushes that end an epoch: a timed flush mid-epoch depends on speed.
            if not any(r.get("type") == "epoch" for r in records) or not trap.hit():
                return real_append(path, records)
            data = "".join(__import__("json").dumps(r) + "\n" for r in records).encode()
            with open(path, "ab") as fh:
                fh.write(data[: len(data) // 2])
            die()

        engine.runs.folder.append_jsonl = append
    else:
        raise SystemExit(f"unknown point {point}")
    return []


def train_until_killed(data: Path, threads: int, workspace: Path, point: str) -> None:
    import torch

    torch.set_num_threads(threads)
    from ckpt_runs import tiny_config

    from engine.events import StepEnded
    from engine.training.trainer import train

    kill_at_step = install(point)

    def on_event(event) -> None:
        if kill_at_step and isinstance(event, StepEnded) and event.step == kill_at_step[0]:
            die()

    train(tiny_config(data), workspace=workspace, on_event=on_event)


def main() -> None:
    data, threads, out, *points = sys.argv[1:]
    # Import everything before forking; nothing has computed anything yet, so no thread pool
    # exists that a fork could break.
    import ckpt_runs  # noqa: F401

    import engine.training.trainer  # noqa: F401

    for index, point in enumerate(points):
        folder = Path(out) / str(index)
        folder.mkdir(parents=True)
        pid = os.fork()
        if pid == 0:
            try:
                train_until_killed(Path(data), int(threads), folder / "ws", point)
                os._exit(3)  # the run ended without being killed
            except BaseException:
                import traceback

                traceback.print_exc()
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        (folder / "ended").write_text("killed" if killed else f"wait status {status}")


if __name__ == "__main__":
    main()
