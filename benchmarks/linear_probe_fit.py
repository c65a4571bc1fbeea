"""How well the engine's linear-probe head is fitted: engine before/after vs a plain sklearn probe.

For each dataset (generated thresholded scans, the same scans with the full grey range, and
generated web photos; or ``--data DIR``), in one workspace per dataset:

1. ``refit train DIR`` (linear-probe defaults, starter EfficientNet-Lite0) with the engine of
   ``--before`` (e.g. /work/main): the first run computes and caches the backbone features;
2. the same engine again (features from the cache: the head's own time);
3. the engine of this checkout (features from the cache);
4. the plain baseline on the engine's own cached features: scikit-learn's ``StandardScaler`` +
   ``LogisticRegressionCV`` (10 strengths, 5 stratified folds of the training set).

It prints validation accuracy, macro F1 and seconds side by side; no asserts.

    python benchmarks/linear_probe_fit.py --before /work/main --work /tmp/lpfit
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def generate(work: Path, per_class: int) -> dict[str, Path]:
    """The three generated datasets (reused when already there)."""
    sets = {
        "scans, 3 grey levels": (["make_scans.py", "--levels", "3"], work / "scans3"),
        "scans, full range": (["make_scans.py"], work / "scans"),
        "photos (web sizes)": (["make_photos.py", "--sizes", "web"], work / "photos"),
    }
    out = {}
    for name, (cmd, folder) in sets.items():
        if not folder.is_dir():
            script, *flags = cmd
            n = str(per_class)
            subprocess.run(
                [sys.executable, str(HERE / script), str(folder), "--per-class", n, *flags],
                check=True,
            )
        out[name] = folder
    return out


def engine_run(code: Path, data: Path, ws: Path) -> dict:
    """One ``refit train`` with the engine at ``code``; its summary plus the process's wall time."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [
        sys.executable,
        "-m",
        "engine",
        "--workspace",
        str(ws),
        "train",
        str(data),
        "--method",
        "linear-probe",
        "--backbone",
        "efficientnet_lite0",
        "--quiet",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=str(code), stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    runs = sorted((ws / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((runs[-1] / "summary.json").read_text())
    best = summary["best"]
    return {
        "acc": best["val_accuracy"],
        "f1": best["val_macro_f1"],
        "seconds": summary["seconds"],
        "wall": wall,
        "run": runs[-1],
    }


def plain_probe(ws: Path, run: Path) -> dict:
    """StandardScaler + LogisticRegressionCV on the engine's cached clean-view features."""
    import numpy as np
    from safetensors.numpy import load_file
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    splits = json.loads((run / "splits.json").read_text())
    y_train = np.array([row[1] for row in splits["train"]])
    y_val = np.array([row[1] for row in splits["val"]])
    feats = ws / "cache" / "features"
    train = load_file(str(next(feats.glob("*-train.safetensors"))))["features"]
    val = load_file(str(next(feats.glob("*-val.safetensors"))))["features"]
    t0 = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, max_iter=5000))
    model.fit(train[: len(y_train)], y_train)
    pred = model.predict(val)
    seconds = time.perf_counter() - t0
    return {
        "acc": accuracy_score(y_val, pred),
        "f1": f1_score(y_val, pred, average="macro"),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old engine")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--data", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    sets = generate(args.work, args.per_class)
    sets.update({str(d): d for d in args.data})
    rows = []
    for name, data in sets.items():
        ws = args.work / ("ws-" + data.name)
        cold = engine_run(args.before, data, ws)
        before = engine_run(args.before, data, ws)
        after = engine_run(REPO, data, ws)
        plain = plain_probe(ws, after["run"])
        rows.append((name, cold, before, after, plain))
        print(f"{name}: features + before-head run {cold['seconds']:.1f} s", flush=True)
    print()
    print(
        "| data | engine before: acc / F1 / s | engine after: acc / F1 / s "
        "| plain StandardScaler+LogisticRegressionCV: acc / F1 / s |"
    )
    print("| --- | --- | --- | --- |")
    for name, _cold, before, after, plain in rows:
        cells = [
            f"{r['acc']:.3f} / {r['f1']:.3f} / {r['seconds']:.1f}" for r in (before, after, plain)
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\nEngine seconds: the run's own summary (data scan, cached features loaded, head "
        "fitted, checkpoints); plain seconds: the fit alone on already-loaded features."
    )


if __name__ == "__main__":
    main()
