"""Run one side of a benchmark in its own process and measure its memory from outside.

The side writes its own results (timings taken inside it, its ``ru_maxrss``) as JSON to a file;
this module adds what only an outside observer sees: the peak proportional set size (PSS) of the
whole process tree, data-loader workers included, sampled a few times a second (PSS splits pages
that forked workers share with their parent, so the sum is not inflated by shared libraries), the
peak resident set of the tree's largest process (from ``wait4``: exact, and free), and how many
CPU cores other processes on the machine kept busy meanwhile: a benchmark that shares its cores
with someone else's work says so.

Sampling PSS is not free: the kernel walks the page tables of every process of the tree at each
sample, on the cores the side runs on. Measured on a 2-core machine, sampling 5 times a second
made an 8.4 s `refit train` take 9.2-10.4 s; ``watch=False`` times a side without it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MIB = 2**20
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Measured:
    """What one isolated side reported, plus what was observed from outside."""

    result: dict[str, Any]
    process_seconds: float  # interpreter start to exit, imports included
    peak_tree_pss_mib: float  # the side's process and every worker it started (NaN: not watched)
    other_cores: float  # average CPU cores busy with anything else while the side ran
    peak_rss_mib: float = float("nan")  # the largest process of the tree (wait4's ru_maxrss)


class SideFailed(RuntimeError):
    """A side exited with an error; the message carries the end of its output."""


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class TreeWatcher(threading.Thread):
    """Samples the peak summed PSS of a process tree."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.stop = threading.Event()
        self.peak_pss = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            self.peak_pss = max(self.peak_pss, sum(self._sample(p) for p in procs))
            self.stop.wait(self.interval)

    def _sample(self, proc: psutil.Process) -> int:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return 0
        return getattr(info, "pss", info.rss)


def run_side(
    args: list[str], *, out: Path, label: str, interval: float = 0.2, watch: bool = True
) -> Measured:
    """Run ``python ARGS... --out OUT`` from the repository root; return its JSON and memory.
    ``watch=False``: no PSS sampling (which slows the side down), peak RSS only."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    cmd = [sys.executable, *args, "--out", str(out)]
    print(f"[{label}] running ...", flush=True)
    busy0, me0, tree0 = _busy_seconds(), _own_cpu(), _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watcher = TreeWatcher(proc.pid, interval) if watch else None
    if watcher is not None:
        watcher.start()
    assert proc.stdout is not None
    output = proc.stdout.read()
    # wait4, not Popen.wait: its rusage holds the peak RSS of the side's largest process.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if watcher is not None:
        watcher.stop.set()
        watcher.join()
    tree = _children_cpu() - tree0  # the side and its workers, all waited for by now
    others = _busy_seconds() - busy0 - tree - (_own_cpu() - me0)
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(output.splitlines()[-30:])
        raise SideFailed(f"{label} failed (exit {proc.returncode}):\n{tail}")
    other_cores = max(0.0, others / seconds)
    print(
        f"[{label}] done in {seconds:.1f} s (other processes kept {other_cores:.2f} cores busy)",
        flush=True,
    )
    pss = watcher.peak_pss / MIB if watcher is not None else float("nan")
    rss = usage.ru_maxrss * 1024 / MIB  # KiB on Linux
    return Measured(json.loads(out.read_text()), seconds, pss, other_cores, rss)


def _own_cpu() -> float:
    t = resource.getrusage(resource.RUSAGE_SELF)
    return t.ru_utime + t.ru_stime


def _children_cpu() -> float:
    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.ru_utime + t.ru_stime


def warm_file_cache(folder: Path) -> int:
    """Read every file under ``folder`` once so that no side pays for a cold disk. Returns bytes."""
    total = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                while chunk := f.read(8 * MIB):
                    total += len(chunk)
    return total
