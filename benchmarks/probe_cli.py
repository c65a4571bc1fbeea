"""Folder in, evaluated model out, timed as a user runs it: `refit train DIR --method linear-probe`
against a plain extract-once script, each a whole process (interpreter start, imports, model,
features, head; the engine also scans, checkpoints and evaluates).

Sides, one run each unless ``--repeat``:

1. engine, new workspace: the ONNX export of the backbone is made (once per machine and backbone).
2. plain script (``plain_probe_script.py``): ImageFolder-style loading with 2 workers, eager
   PyTorch, scikit-learn's LogisticRegression, on the engine run's own train/val split.
3. engine, export cached: a second run in the same workspace with the feature cache emptied, so
   the images go through the network again but the export is reused. This is every run after
   the first on a machine.
4. engine, ``--runtime torch``: the same, with the frozen backbone in eager PyTorch.

Each side is timed without sampling its memory (sampling slows a side down, benchmarks/measure.py);
the table gives the peak resident set of its largest process.

Then the run's validation predictions are made again with ``refit evaluate --runtime torch``
and compared, image by image, with those the onnxruntime path saved.

    python benchmarks/probe_cli.py                      # 400 generated ~500x375 photos
    python benchmarks/probe_cli.py --sizes web          # 640x480 to 1024x768
    python benchmarks/probe_cli.py --data ~/my-labeled-folder
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from make_photos import generate
from measure import Measured, run_side, warm_file_cache
from report import machine_lines, table, warn_if_busy

HERE = Path(__file__).resolve().parent
TARGET = 2.5


def engine(folder: Path, workspace: Path, out: Path, label: str, *extra: str) -> Measured:
    args = ["--workspace", str(workspace), "train", str(folder), "--method", "linear-probe"]
    cmd = [str(HERE / "cli_side.py"), *args, "--quiet", *extra]
    return run_side(cmd, out=out, label=label, watch=False)


def best(best_of: list[Measured]) -> Measured:
    return min(best_of, key=lambda m: m.process_seconds)


def same_predictions(workspace: Path, run: Path) -> str:
    """Predict the validation split again in torch and compare with the saved predictions."""
    saved = run / "evaluation" / "val-predictions.npz"
    if not saved.is_file():
        subprocess.run(
            [sys.executable, "-m", "engine", "--workspace", str(workspace), "evaluate",
             run.name, "--json"],
            check=True, capture_output=True,
        )  # fmt: skip
    ort = np.load(saved, allow_pickle=False)["probs"]
    subprocess.run(
        [sys.executable, "-m", "engine", "--workspace", str(workspace), "evaluate", run.name,
         "--runtime", "torch", "--json"],
        check=True, capture_output=True,
    )  # fmt: skip
    ref = np.load(saved, allow_pickle=False)["probs"]
    same = int((ort.argmax(1) == ref.argmax(1)).sum())
    return (
        f"validation predictions, onnxruntime path vs torch: same class on {same} of {len(ref)} "
        f"images; largest probability difference {np.abs(ort - ref).max():.1e}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--sizes", default="small", choices=["small", "web", "mixed"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    warn_if_busy()
    tmp = Path(tempfile.mkdtemp(prefix="refit-bench-cli-"))
    try:
        folder = args.data or generate(
            tmp / "photos", per_class=args.per_class, seed=0, sizes=args.sizes
        )
        warm_file_cache(folder)
        rows, sides = [], {}
        for r in range(args.repeat):
            ws = tmp / f"ws{r}"
            sides.setdefault("cold", []).append(engine(folder, ws, tmp / f"c{r}.json", "engine"))
            run = Path(sides["cold"][-1].result["run"])
            sides.setdefault("plain", []).append(
                run_side(
                    [str(HERE / "plain_probe_script.py"), "--splits", str(run / "splits.json")],
                    out=tmp / f"p{r}.json",
                    label="plain script",
                    watch=False,
                )
            )
            for name, extra in (("warm", ()), ("torch", ("--runtime", "torch"))):
                shutil.rmtree(ws / "cache" / "features", ignore_errors=True)
                sides.setdefault(name, []).append(
                    engine(folder, ws, tmp / f"{name}{r}.json", f"engine {name}", *extra)
                )
        labels = {
            "cold": "engine, new workspace (exports)",
            "warm": "engine, export cached",
            "torch": "engine, --runtime torch",
            "plain": "plain script (2 workers)",
        }
        plain = best(sides["plain"]).process_seconds
        for key in ("cold", "warm", "torch", "plain"):
            m = best(sides[key])
            acc = m.result.get("val_accuracy") or (m.result.get("best") or {}).get("val_accuracy")
            rows.append(
                [labels[key], f"{m.process_seconds:.1f}", f"{acc:.3f}",
                 f"{plain / m.process_seconds:.2f}x", f"{m.peak_rss_mib:.0f}",
                 f"{m.other_cores:.2f}"]
            )  # fmt: skip
        print("\n".join(machine_lines()))
        print(f"\nFolder: {folder} ({sum(1 for _ in folder.rglob('*.*'))} files)\n")
        print(
            table(
                ["side", "wall s", "val acc", "plain / side", "peak RSS MiB", "others' cores"],
                rows,
            )
        )
        cold_run = Path(best(sides["cold"]).result["run"])  # <workspace>/runs/<id>, any round
        print(same_predictions(cold_run.parent.parent, cold_run))
        cold = plain / best(sides["cold"]).process_seconds
        warm = plain / best(sides["warm"]).process_seconds
        print(f"\nRATIO plain / engine: {cold:.2f}x new workspace, {warm:.2f}x export cached "
              f"(target >= {TARGET}x)")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
