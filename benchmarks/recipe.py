"""Recommended vs fixed recipes: what ``refit train DIR`` (no flags) gives against the linear
probe, a full fine-tune and a fixed fastai ``fine_tune``-style recipe, in accuracy and time.

Per dataset (generated "scan-like" slices with 3 grey levels and generated web-size photos, or
``--data DIR``), in one workspace, on the same split (the engine's default 80/20, seed 0):

1. ``recommended``: ``refit train DIR`` (the default ``--method auto``); also what it chose;
2. ``probe``: ``refit train DIR --method linear-probe``;
3. ``full``: ``refit train DIR --method full`` (engine defaults);
4. ``fastai``: ``plain_fastai.py``, a plain PyTorch loop of fastai's ``fine_tune`` defaults on
   the first engine run's ``splits.json`` with that run's intensity stretch.

Every side is a process of its own; its wall time runs from process start to exit (imports,
data scan and feature extraction included). The workspace's feature cache is emptied before each
engine run, so that no run profits from the previous one's features. No asserts.

    python benchmarks/recipe.py --work /tmp/recipe
    python benchmarks/recipe.py --data ~/my-images --only recommended,probe
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
from measure import SideFailed, run_side, warm_file_cache
from report import load_text, machine_lines, warn_if_busy

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
METHODS = ("recommended", "probe", "full", "fastai")
ENGINE_FLAGS = {
    "recommended": [],
    "probe": ["--method", "linear-probe"],
    "full": ["--method", "full"],
}
LABELS = {
    "recommended": "Recommended (`refit train DIR`)",
    "probe": "linear probe",
    "full": "full fine-tune",
    "fastai": "fastai fine_tune (plain loop)",
}


def generate(work: Path, per_class: int | None) -> dict[str, Path]:
    """The two default datasets, generated once into ``work`` (reused when already there)."""
    sets = {
        "scans, 3 grey levels": (
            ["make_scans.py", "--levels", "3", "--lesion", "medium"],
            per_class or 115,
            work / "data-scans3",
        ),
        "photos (web sizes)": (
            ["make_photos.py", "--sizes", "web"],
            per_class or 100,
            work / "data-photos",
        ),
    }
    out = {}
    for name, (cmd, n, folder) in sets.items():
        if not folder.is_dir():
            script, *flags = cmd
            subprocess.run(
                [sys.executable, str(HERE / script), str(folder), "--per-class", str(n), *flags],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        out[name] = folder
    return out


def side_env(threads: int) -> dict[str, str]:
    """The environment of every side: this checkout's engine, ``threads`` intra-op threads."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    n = str(threads)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def _busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _children_cpu() -> float:
    import resource

    t = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.ru_utime + t.ru_stime


def engine_run(method: str, data: Path, ws: Path, threads: int) -> dict:
    """One ``refit train`` in a fresh process (feature cache emptied first): its run folder's
    config and summary, the process's wall seconds and the cores other processes kept busy."""
    shutil.rmtree(ws / "cache", ignore_errors=True)
    runs = ws / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    cmd = [sys.executable, "-m", "engine", "--workspace", str(ws), "train", str(data)]
    cmd += [*ENGINE_FLAGS[method], "--quiet"]
    print(f"[{method}] {data.name}: running ...", flush=True)
    busy0, tree0, t0 = _busy(), _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=REPO, env=side_env(threads), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    others = max(0.0, (_busy() - busy0 - (_children_cpu() - tree0)) / wall)
    new = sorted(set(runs.iterdir()) - before) if runs.is_dir() else []
    if proc.returncode != 0 or not new:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise SideFailed(f"{method} on {data} failed (exit {proc.returncode}):\n{tail}")
    run = new[-1]
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    print(f"[{method}] done in {wall:.1f} s (others kept {others:.2f} cores busy)", flush=True)
    return {"run": run, "config": config, "summary": summary, "wall": wall, "others": others}


def engine_row(result: dict) -> dict:
    best, last = result["summary"]["best"], result["summary"]["last"]
    return {
        "acc": best["val_accuracy"],
        "f1": best["val_macro_f1"],
        "last_acc": last["val_accuracy"],
        "last_f1": last["val_macro_f1"],
        "best_epoch": int(result["summary"].get("best_epoch", -1)) + 1,  # stored 0-based
        "wall": result["wall"],
        "others": result["others"],
    }


def choice(config: dict, summary: dict) -> str:
    """What the Recommended run chose, from its config.json (and the epochs it ran)."""
    adapt, optim, sched = config["adapt"], config["optim"], config["schedule"]
    method = adapt["method"]
    depth = f" (last_n {adapt['last_n']})" if method not in ("linear-probe", "full") else ""
    done = summary.get("epochs_done")
    ran = f" ({done} run)" if done is not None and done != sched["epochs"] else ""
    return (
        f"{method}{depth}, lr {optim['lr']:g}, {sched['epochs']} epochs{ran}: "
        f"{adapt.get('reason') or '(no reason recorded)'}"
    )


def same_split(reference: Path, run: Path) -> bool:
    def lists(path: Path) -> tuple:
        s = json.loads(path.read_text())
        return tuple(tuple(r[0] for r in s[k]) for k in ("train", "val"))

    return lists(reference) == lists(run)


def fastai_run(splits: Path, intensity: str, out: Path, threads: int) -> dict:
    args = [str(HERE / "plain_fastai.py"), "--splits", str(splits), "--intensity", intensity]
    m = run_side([*args, "--threads", str(threads)], out=out, label="fastai")
    r = m.result
    return {
        "acc": r["best"]["acc"],
        "f1": r["best"]["f1"],
        "last_acc": r["last"]["acc"],
        "last_f1": r["last"]["f1"],
        "best_epoch": r["best"]["epoch"],
        "wall": m.process_seconds,
        "others": m.other_cores,
    }


def bench_dataset(name: str, data: Path, ws: Path, methods: list[str], threads: int) -> dict:
    """Every selected method on one dataset: {method: row}, plus the Recommended choice."""
    warm_file_cache(data)
    rows, notes, reference = {}, [], None
    for method in (m for m in METHODS if m in methods and m != "fastai"):
        result = engine_run(method, data, ws, threads)
        rows[method] = engine_row(result)
        splits = result["run"] / "splits.json"
        if reference is None:
            reference, intensity = splits, result["summary"].get("intensity", "off")
        elif not same_split(reference, splits):
            notes.append(f"WARNING: {method} used a different split than the first run")
        if method == "recommended":
            notes.append(f"Recommended chose {choice(result['config'], result['summary'])}")
    if "fastai" in methods:
        out = ws / "fastai-result.json"
        rows["fastai"] = fastai_run(reference, intensity, out, threads)
    return {"name": name, "rows": rows, "notes": notes}


def print_table(results: list[dict]) -> None:
    print(
        "\n| data | method | val acc (best epoch) | macro F1 (best) | val acc / F1 (last epoch) "
        "| best epoch | wall s | × probe time | others' cores |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for res in results:
        probe = res["rows"].get("probe")
        for method, r in res["rows"].items():
            ratio = f"{r['wall'] / probe['wall']:.1f}×" if probe else "-"
            print(
                f"| {res['name']} | {LABELS[method]} | {r['acc']:.3f} | {r['f1']:.3f} "
                f"| {r['last_acc']:.3f} / {r['last_f1']:.3f} | {r['best_epoch']} "
                f"| {r['wall']:.1f} | {ratio} | {r['others']:.2f} |"
            )
    print()
    for res in results:
        for note in res["notes"]:
            print(f"- {res['name']}: {note}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, help="generated images per class (115 / 100)")
    parser.add_argument(
        "--data", type=Path, action="append", default=[], help="your folder (repeatable)"
    )
    parser.add_argument(
        "--with-generated", action="store_true", help="with --data: also the generated sets"
    )
    parser.add_argument("--only", default=",".join(METHODS), help=",".join(METHODS))
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", action="store_true", help="keep workspaces and generated data")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.methods == ["fastai"]:
        parser.error("--only fastai needs an engine run's split: add recommended, probe or full")
    for folder in args.data:
        if not folder.is_dir():
            parser.error(f"--data {folder}: no such folder; give a folder of class subfolders")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    os.environ.update(side_env(args.threads))  # run_side passes this environment on
    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="recipe-")) if temporary else args.work
    work.mkdir(parents=True, exist_ok=True)
    warn_if_busy()
    sets = generate(work, args.per_class) if args.with_generated or not args.data else {}
    sets.update({str(d): d.resolve() for d in args.data})
    results, workspaces = [], []
    try:
        for i, (name, data) in enumerate(sets.items()):
            ws = work / f"ws-{i}-{data.name}"
            shutil.rmtree(ws, ignore_errors=True)  # a fresh workspace: every run starts cold
            workspaces.append(ws)
            results.append(bench_dataset(name, data, ws, args.methods, args.threads))
    finally:
        if not args.keep:
            for path in [*workspaces, *(p for p in sets.values() if p.parent == work)]:
                shutil.rmtree(path, ignore_errors=True)
            if temporary:
                shutil.rmtree(work, ignore_errors=True)
    print_table(results)
    print(f"\nthreads per side: {args.threads}; load average at the end: {load_text()}")
    for line in machine_lines():
        print(f"- {line}")


if __name__ == "__main__":
    main()
