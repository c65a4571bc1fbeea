"""Folder in, evaluated model out: `refit train DIR --method linear-probe` wall time, before and
after training saves its own evaluation (issue 12, item 3).

"before" is another source tree of the engine (``--before-src``, e.g. an unpacked
``git archive <commit>``), where a run needs `refit train` and then `refit evaluate RUN` (a second
pass over the validation images); "after" is this tree, where `refit train` leaves the
evaluation. Each side runs the real CLI in fresh processes on a fresh workspace (no feature
cache), one after the other, in rounds; the fastest round of each side is reported, with how
many cores other processes kept busy meanwhile.

    python benchmarks/evaluated_model.py DIR --before-src /tmp/base [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import warm_file_cache
from report import machine_lines, table, warn_if_busy

REPO_ROOT = Path(__file__).resolve().parent.parent


def _busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _refit(src: Path, workspace: Path, *args: str) -> tuple[float, str]:
    """Run `refit ARGS` from source tree ``src``; (seconds, output)."""
    env = {**os.environ, "PYTHONPATH": str(src), "REFIT_HOME": str(workspace)}
    cmd = [sys.executable, "-m", "engine", "--workspace", str(workspace), *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def one_side(src: Path, data: Path, *, evaluate: bool) -> dict:
    """Train (and with ``evaluate``, then evaluate) once on a fresh workspace."""
    workspace = Path(tempfile.mkdtemp(prefix="refit-evaluated-"))
    try:
        busy0, cpu0 = _busy(), _children_cpu()
        train_s, _ = _refit(src, workspace, "train", str(data), "--method", "linear-probe")
        run = next((workspace / "runs").iterdir())
        eval_s, out = _refit(src, workspace, "evaluate", run.name) if evaluate else (0.0, "")
        total = train_s + eval_s
        others = max(0.0, (_busy() - busy0 - (_children_cpu() - cpu0)) / total)
        ev = json.loads((run / "evaluation" / "val.json").read_text())
        return {
            "train_s": train_s,
            "evaluate_s": eval_s,
            "total_s": total,
            "accuracy": ev["accuracy"],
            "macro_f1": ev["macro_f1"],
            "n": ev["n"],
            "others": others,
            "reused": "Reused" in out,
        }
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _children_cpu() -> float:
    import resource

    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.ru_utime + t.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--before-src", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    print("\n".join(machine_lines()))
    warm_file_cache(args.data)
    warn_if_busy()
    before, after = "before: train + evaluate", "after: train"
    sides: dict[str, list[dict]] = {before: [], after: []}
    for _ in range(args.rounds):
        for name, src, evaluate in ((before, args.before_src, True), (after, REPO_ROOT, False)):
            sides[name].append(one_side(src, args.data, evaluate=evaluate))
            print(f"[{name}] {json.dumps(sides[name][-1])}", flush=True)
    rows = []
    for name, results in sides.items():
        best = min(results, key=lambda r: r["total_s"])
        rows.append(
            [
                name,
                f"{best['train_s']:.1f}",
                f"{best['evaluate_s']:.1f}" if best["evaluate_s"] else "-",
                f"{best['total_s']:.1f}",
                f"{best['accuracy']:.3f}",
                f"{best['macro_f1']:.3f}",
                best["n"],
                f"{best['others']:.2f}",
            ]
        )
    headers = ["side", "train s", "evaluate s", "folder -> evaluated s", "accuracy", "macro F1"]
    print(table([*headers, "val images", "others' cores"], rows))
    fastest = [min(r["total_s"] for r in v) for v in sides.values()]
    print(f"after is {fastest[0] / fastest[1]:.2f}x faster (folder in -> evaluated model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
