"""The Refit Studio side of the benchmarks: one ``engine.training.trainer.train`` call, timed.

Run by ``linear_probe.py`` and ``finetune_throughput.py`` in a process of its own; writes what it
measured as JSON to ``--out``. Libraries (torch, timm, the engine) are imported before the clock
starts, as the baseline scripts import theirs; everything the call does is timed.

    python benchmarks/engine_side.py linear-probe --data DIR --workspace WS --out result.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import timm  # noqa: F401  (libraries load before the clock starts, as in the baselines)
import torch

import engine.data
import engine.models  # noqa: F401
from engine.config import (
    AdaptConfig,
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.events import (
    CheckpointSaved,
    EpochEnded,
    Event,
    LogMessage,
    RunEnded,
    RunStarted,
    StageProgressed,
    StepEnded,
)
from engine.training.loaders import auto_workers
from engine.training.trainer import train


class Timeline:
    """Every engine event with the time it arrived, seconds after ``start``."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.rows: list[dict[str, Any]] = []

    def __call__(self, event: Event) -> None:
        row = {"t": time.perf_counter() - self.start, "event": type(event).__name__}
        row.update(_payload(event))
        self.rows.append(row)


def _payload(event: Event) -> dict[str, Any]:
    if isinstance(event, StageProgressed):
        return {"stage": event.stage, "done": event.done, "total": event.total}
    if isinstance(event, StepEnded):
        return {"step": event.step, "epoch": event.epoch, "samples_per_sec": event.samples_per_sec}
    if isinstance(event, EpochEnded):
        return {
            "epoch": event.epoch,
            "seconds": event.seconds,
            "val_accuracy": event.metrics.get("val_accuracy"),
        }
    if isinstance(event, LogMessage):
        return {"text": event.text}
    if isinstance(event, CheckpointSaved):
        return {"kind": event.kind}
    if isinstance(event, RunStarted):
        return {
            "steps_per_epoch": event.steps_per_epoch,
            "device": event.device,
            "feature_cache": event.feature_cache,
            "train_size": event.train_size,
        }
    if isinstance(event, RunEnded):
        return {"status": str(event.status), "error": event.error}
    return {}


def linear_probe_config(args: argparse.Namespace) -> RunConfig:
    base = RunConfig()
    return RunConfig(
        data=DataConfig(path=str(args.data), val_fraction=args.val_fraction, num_workers=-1),
        model=ModelConfig(backbone="efficientnet_lite0"),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
        schedule=ScheduleConfig(
            epochs=args.epochs or base.schedule.epochs,
            batch_size=args.batch_size or base.schedule.batch_size,
        ),
    )


def finetune_config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        data=DataConfig(path=str(args.data), val_fraction=args.val_fraction, num_workers=-1),
        model=ModelConfig(backbone="efficientnet_lite0"),
        adapt=AdaptConfig(method=Method.FULL),
        schedule=ScheduleConfig(epochs=args.epochs or 2, batch_size=args.batch_size or 16),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT),
    )


def run(config: RunConfig, workspace: Path) -> dict[str, Any]:
    """Call ``train`` once; the clock covers the call and nothing else."""
    timeline = Timeline()
    t0 = time.perf_counter()
    timeline.start = t0
    result = train(config, workspace=workspace, on_event=timeline)
    seconds = time.perf_counter() - t0
    summary = json.loads((result.run_dir / "summary.json").read_text())
    return {
        "seconds": seconds,
        "status": str(result.status),
        "error": result.error,
        "run_dir": str(result.run_dir),
        "splits": str(result.run_dir / "splits.json"),
        "val_accuracy_best": result.best_metrics.get("val_accuracy"),
        "val_accuracy_last": summary.get("last", {}).get("val_accuracy"),
        "train_size": summary.get("train_size"),
        "val_size": summary.get("val_size"),
        "epochs": config.schedule.epochs,
        "batch_size": config.schedule.batch_size,
        "workers": auto_workers(config.data.num_workers),
        "threads": torch.get_num_threads(),
        "timeline": timeline.rows,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time one Refit Studio training run.")
    parser.add_argument("mode", choices=["linear-probe", "finetune"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    build = linear_probe_config if args.mode == "linear-probe" else finetune_config
    config = build(args).validate()
    args.out.write_text(json.dumps(run(config, args.workspace), indent=2))


if __name__ == "__main__":
    main()
