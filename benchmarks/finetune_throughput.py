"""Full fine-tune step throughput: Refit Studio's training loop vs a plain PyTorch loop.

Same model (EfficientNet-Lite0 starter weights, every layer trained), same train/val images
(the engine's split is handed to the baseline), same batch size, the same augmentation (the
engine's "light" preset: random resized crop 70-100 % and horizontal flip, torchvision v2), AdamW
on both sides, one process each. Throughput counts the images of the optimisation steps after a
warm-up, leaving out each epoch's first step (its interval holds the validation pass).

    python benchmarks/finetune_throughput.py                  # 150 generated web-size photos
    python benchmarks/finetune_throughput.py --sizes mixed    # camera-size photos: decode-bound
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from make_photos import SIZE_MIXES, generate
from measure import Measured, run_side, warm_file_cache
from report import machine_lines, table, warn_if_busy

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 0.95


def engine_steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    """(epoch, images, end time) of each engine step, from its StepEnded events."""
    n, batch = result["train_size"], result["batch_size"]
    steps, position, epoch = [], 0, None
    for row in result["timeline"]:
        if row["event"] != "StepEnded":
            continue
        position = position + 1 if row["epoch"] == epoch else 0
        epoch = row["epoch"]
        steps.append({"epoch": epoch, "n": min(batch, n - position * batch), "t": row["t"]})
    return steps


def steady_intervals(steps: list[dict[str, Any]], skip: int) -> list[tuple[int, int, float]]:
    """(epoch, images, seconds) of every step after the first ``skip`` that follows a step of
    the same epoch."""
    out = []
    for i in range(max(1, skip), len(steps)):
        prev, cur = steps[i - 1], steps[i]
        if cur["epoch"] == prev["epoch"]:
            out.append((cur["epoch"], cur["n"], cur["t"] - prev["t"]))
    return out


def throughput(intervals: list[tuple[int, int, float]]) -> dict[str, Any]:
    images = sum(n for _, n, _ in intervals)
    seconds = sum(dt for _, _, dt in intervals)
    return {
        "steps": len(intervals),
        "images_per_s": images / seconds if seconds else float("nan"),
        "median_step_s": statistics.median(dt for _, _, dt in intervals) if intervals else None,
    }


def run_engine(data: Path, workspace: Path, out: Path, args: argparse.Namespace) -> Measured:
    cmd = [
        str(HERE / "engine_side.py"),
        "finetune",
        "--data",
        str(data),
        "--workspace",
        str(workspace),
        "--val-fraction",
        str(args.val_fraction),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
    ]
    measured = run_side(cmd, out=out, label="engine")
    if measured.result["status"] != "completed":
        raise SystemExit(
            f"engine: the run ended {measured.result['status']}: {measured.result['error']}"
        )
    return measured


def run_baseline(engine: dict[str, Any], out: Path, args: argparse.Namespace) -> Measured:
    cmd = [
        str(HERE / "plain_finetune.py"),
        "--splits",
        engine["splits"],
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(engine["workers"]),
    ]
    return run_side(cmd, out=out, label="plain PyTorch")


def side_rate(m: Measured, skip: int) -> dict[str, Any]:
    steps = engine_steps(m.result) if "timeline" in m.result else m.result["steps"]
    intervals = steady_intervals(steps, skip)
    rate = throughput(intervals)
    epochs = sorted({e for e, _, _ in intervals})
    by_epoch = [throughput([i for i in intervals if i[0] == e]) for e in epochs]
    rate["by_epoch"] = " / ".join(f"{r['images_per_s']:.1f}" for r in by_epoch)
    return rate


def best_round(runs: list[Measured], skip: int) -> tuple[Measured, dict[str, Any]]:
    rated = [(m, side_rate(m, skip)) for m in runs]
    return max(rated, key=lambda mr: mr[1]["images_per_s"])


def side_row(name: str, m: Measured, rate: dict[str, Any]) -> list[object]:
    return [
        name,
        rate["steps"],
        rate["images_per_s"],
        rate["by_epoch"],
        rate["median_step_s"],
        m.result["seconds"],
        m.result["val_accuracy_last"],
        m.result["peak_rss_mib"],
        m.peak_tree_pss_mib,
        m.other_cores,
    ]


HEADERS = [
    "side",
    "steps timed",
    "train img/s",
    "img/s by epoch",
    "median step s",
    "wall s",
    "val acc (last ep)",
    "peak RSS MiB",
    "peak PSS MiB (+workers)",
    "others' cores",
]


def print_report(
    args: argparse.Namespace, data: Path, engines: list[Measured], plains: list[Measured]
) -> None:
    engine, engine_rate = best_round(engines, args.skip)
    plain, plain_rate = best_round(plains, args.skip)
    r = engine.result
    print()
    print(
        f"Full fine-tune on {data}: {r['train_size']} train + {r['val_size']} val images, "
        f"efficientnet_lite0, {args.epochs} epochs, batch {args.batch_size}, AdamW, light "
        f"augmentation, {r['workers']} loader worker(s), {r['threads']} torch threads; "
        f"first {args.skip} steps and each epoch's first step not timed"
    )
    for line in machine_lines():
        print(f"  {line}")
    print()
    rows = [
        side_row("engine", engine, engine_rate),
        side_row("plain PyTorch loop", plain, plain_rate),
    ]
    print(table(HEADERS, rows))
    if len(engines) > 1:
        rounds = "; ".join(
            f"{side_rate(e, args.skip)['images_per_s']:.1f} / "
            f"{side_rate(p, args.skip)['images_per_s']:.1f}"
            for e, p in zip(engines, plains, strict=True)
        )
        print(f"best of {len(engines)} rounds per side; rounds, engine / baseline img/s: {rounds}")
    ratio = engine_rate["images_per_s"] / plain_rate["images_per_s"]
    print()
    print(
        f"RATIO engine / baseline throughput = {engine_rate['images_per_s']:.2f} / "
        f"{plain_rate['images_per_s']:.2f} = {ratio:.2f}x   (target >= {TARGET_RATIO}x: "
        f"{'MET' if ratio >= TARGET_RATIO else 'NOT MET'})"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a labeled folder (default: generated photos)")
    parser.add_argument("--per-class", type=int, default=75, help="generated photos per class")
    parser.add_argument(
        "--sizes",
        choices=sorted(SIZE_MIXES),
        default="web",
        help="size mix of the generated photos",
    )
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip", type=int, default=3, help="warm-up steps not timed")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of engine + baseline")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated photos")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="refit-bench-ft-"))
    try:
        data = args.data or generate(
            tmp / "photos", per_class=args.per_class, seed=args.seed, sizes=args.sizes
        )
        warm_file_cache(Path(data))
        warn_if_busy()
        engines, plains = [], []
        for i in range(args.repeat):
            engines.append(
                run_engine(Path(data), tmp / f"workspace-{i}", tmp / f"engine-{i}.json", args)
            )
            plains.append(run_baseline(engines[-1].result, tmp / f"plain-{i}.json", args))
        print_report(args, Path(data), engines, plains)
    finally:
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
