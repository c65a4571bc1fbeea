"""Linear probe, folder in to trained head out: Refit Studio's engine vs a plain PyTorch script.

Both sides train a linear head on frozen EfficientNet-Lite0 features of the same train/val
images, each in a process of its own (time and peak memory isolated):

1. engine, cold: ``train(RunConfig(... LINEAR_PROBE ...), workspace=<fresh>)``: scan, split,
   feature extraction, head training, checkpoints. Its split (splits.json) is then given to
2. the plain PyTorch baseline (``plain_linear_probe.py``), and finally
3. engine, warm: the same run again in the same workspace, where the feature cache hits
   (reported for information; not part of the ratio).

    python benchmarks/linear_probe.py                 # generated photos, 200 per class
    python benchmarks/linear_probe.py --data ~/my-labeled-folder --keep
    python benchmarks/linear_probe.py --repeat 3     # fastest of 3 rounds per side (busy machine)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from make_photos import generate
from measure import Measured, run_side, warm_file_cache
from report import machine_lines, table, warn_if_busy

HERE = Path(__file__).resolve().parent
VAL_FRACTION = 0.375  # 150 of 400 images with the default 200 per class
TARGET_RATIO = 1.5


def engine_marks(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Times (s after the call) at which the engine's stages ended, from its events."""
    marks: dict[str, Any] = {"segments": []}
    open_segment: dict[str, Any] | None = None
    for row in timeline:
        event, t = row["event"], row["t"]
        if event == "StageProgressed" and row["stage"] == "scan":
            marks["scan_end"] = t
        elif event == "LogMessage" and row["text"].startswith("Computing backbone features"):
            open_segment = {"start": t, "end": None, "images": 0}
            marks["segments"].append(open_segment)
        elif (
            event == "StageProgressed"
            and row["stage"] == "features"
            and open_segment
            and row["done"] == row["total"]
        ):
            open_segment.update(end=t, images=row["total"])
            open_segment = None
        elif event == "RunStarted":
            marks["run_started"] = t
        elif event == "EpochEnded":
            marks["last_epoch"] = t
    return marks


def engine_phases(result: dict[str, Any]) -> list[tuple[str, float]]:
    """Consecutive stages of one engine run and the seconds each took."""
    marks = engine_marks(result["timeline"])
    segments = [s for s in marks["segments"] if s["end"] is not None]
    points = [("scan + split (decode + hash every file)", marks.get("scan_end", 0.0))]
    if segments:
        points.append(("splits.json, model build, loaders", segments[0]["start"]))
        for i, seg in enumerate(segments):
            points.append((f"feature extraction #{i + 1} ({seg['images']} images)", seg["end"]))
            nxt = segments[i + 1]["start"] if i + 1 < len(segments) else None
            if nxt is not None:
                points.append(("feature cache write, next loader", nxt))
        points.append(("feature cache write, optimizer", marks["run_started"]))
    else:
        points.append(("model build, feature cache load", marks["run_started"]))
    points.append(("head training (all epochs)", marks.get("last_epoch", marks["run_started"])))
    points.append(("checkpoints, summary, return", result["seconds"]))
    phases, last = [], 0.0
    for name, t in points:
        phases.append((name, t - last))
        last = t
    return phases


def engine_feature_rate(result: dict[str, Any]) -> float | None:
    segments = [s for s in engine_marks(result["timeline"])["segments"] if s["end"] is not None]
    seconds = sum(s["end"] - s["start"] for s in segments)
    return sum(s["images"] for s in segments) / seconds if seconds else None


def run_engine(
    data: Path, workspace: Path, out: Path, args: argparse.Namespace, label: str
) -> Measured:
    cmd = [
        str(HERE / "engine_side.py"),
        "linear-probe",
        "--data",
        str(data),
        "--workspace",
        str(workspace),
        "--val-fraction",
        str(VAL_FRACTION),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
    ]
    measured = run_side(cmd, out=out, label=label)
    if measured.result["status"] != "completed":
        raise SystemExit(
            f"{label}: the run ended {measured.result['status']}: {measured.result['error']}"
        )
    return measured


def run_baseline(splits: Path, out: Path, engine_run: Measured) -> Measured:
    engine = engine_run.result
    cmd = [
        str(HERE / "plain_linear_probe.py"),
        "--splits",
        str(splits),
        "--epochs",
        str(engine["epochs"]),
        "--batch-size",
        str(engine["batch_size"]),
        "--workers",
        str(engine["workers"]),
    ]
    return run_side(cmd, out=out, label="plain PyTorch")


def results_table(cold: Measured, plain: Measured, warm: Measured) -> str:
    def row(name: str, m: Measured, rate: float | None) -> list[object]:
        r = m.result
        return [
            name,
            r["seconds"],
            rate,
            r["val_accuracy_best"],
            r["val_accuracy_last"],
            r["peak_rss_mib"],
            m.peak_tree_pss_mib,
            m.other_cores,
        ]

    plain_rate = plain.result["feature_images"] / plain.result["feature_seconds"]
    return table(
        [
            "side",
            "wall s",
            "features img/s",
            "val acc (best ep)",
            "val acc (last ep)",
            "peak RSS MiB",
            "peak PSS MiB (+workers)",
            "others' cores",
        ],
        [
            row("engine (fresh workspace)", cold, engine_feature_rate(cold.result)),
            row("plain PyTorch baseline", plain, plain_rate),
            row("engine, warm feature cache *", warm, engine_feature_rate(warm.result)),
        ],
    )


def fastest(runs: list[Measured]) -> Measured:
    return min(runs, key=lambda m: m.result["seconds"])


def verdict(cold: Measured, plain: Measured) -> list[str]:
    ratio = plain.result["seconds"] / cold.result["seconds"]
    acc_e, acc_p = cold.result["val_accuracy_best"], plain.result["val_accuracy_best"]
    met = ratio >= TARGET_RATIO and acc_e >= acc_p
    return [
        f"RATIO baseline_time / engine_time = {plain.result['seconds']:.1f} / "
        f"{cold.result['seconds']:.1f} = {ratio:.2f}x   (target >= {TARGET_RATIO}x)",
        f"accuracy: engine {acc_e:.3f} vs baseline {acc_p:.3f} "
        f"({'equal or better' if acc_e >= acc_p else 'WORSE'})",
        f"target {'MET' if met else 'NOT MET'}",
    ]


def rounds_line(colds: list[Measured], plains: list[Measured]) -> str:
    pairs = [
        f"{c.result['seconds']:.1f} / {p.result['seconds']:.1f} s "
        f"(others {c.other_cores:.2f} / {p.other_cores:.2f} cores)"
        for c, p in zip(colds, plains, strict=True)
    ]
    return "rounds, engine / baseline wall: " + "; ".join(pairs)


def print_report(
    data: Path, images: int, colds: list[Measured], plains: list[Measured], warm: Measured
) -> None:
    cold, plain = fastest(colds), fastest(plains)
    r = cold.result
    print()
    print(
        f"Linear probe on {data}: {r['train_size']} train + {r['val_size']} val images "
        f"({images} files), efficientnet_lite0, {r['epochs']} epochs, batch {r['batch_size']}, "
        f"{r['workers']} loader worker(s), {r['threads']} torch threads"
    )
    for line in machine_lines():
        print(f"  {line}")
    print()
    print(results_table(cold, plain, warm))
    print(
        "* warm: another engine run in a workspace that already holds the features, which it "
        "loads from the cache; not used for the ratio."
    )
    if len(colds) > 1:
        print(f"fastest of {len(colds)} rounds per side; {rounds_line(colds, plains)}")
    print()
    for line in verdict(cold, plain):
        print(line)
    print()
    print("engine (fresh workspace), where the time goes:")
    print(table(["stage", "s"], engine_phases(r)))
    print()
    print("plain PyTorch baseline, where the time goes:")
    print(table(["stage", "s"], list(plain.result["phases"].items())))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from engine.config import ScheduleConfig

    defaults = ScheduleConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a labeled folder (default: generated photos)")
    parser.add_argument("--per-class", type=int, default=200, help="generated photos per class")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of engine + baseline")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated photos")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE.parent))  # engine.config for the defaults
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="refit-bench-lp-"))
    try:
        data = args.data or generate(tmp / "photos", per_class=args.per_class, seed=args.seed)
        images = sum(1 for p in Path(data).rglob("*") if p.is_file())
        warm_file_cache(Path(data))
        warn_if_busy()
        colds, plains = [], []
        for i in range(args.repeat):
            cold = run_engine(
                Path(data), tmp / f"workspace-{i}", tmp / f"engine-{i}.json", args, "engine, fresh"
            )
            plains.append(run_baseline(Path(cold.result["splits"]), tmp / f"plain-{i}.json", cold))
            colds.append(cold)
        warm = run_engine(
            Path(data), tmp / "workspace-0", tmp / "engine-warm.json", args, "engine, warm cache"
        )
        print_report(Path(data), images, colds, plains, warm)
    finally:
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
