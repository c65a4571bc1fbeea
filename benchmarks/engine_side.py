"""The Refit Studio side of the benchmarks: one ``engine.training.trainer.train`` call, timed.

Run by ``linear_probe.py``, ``finetune_throughput.py`` and ``text_lora.py`` in a process of its
own; writes what it measured as JSON to ``--out``. Libraries (torch, timm, the engine) are
imported before the clock starts, as the baseline scripts import theirs; everything the call does
is timed.

    python benchmarks/engine_side.py linear-probe --data DIR --workspace WS --out result.json
    python benchmarks/engine_side.py text --data FILE.tsv --method lora --workspace WS --out r.json
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
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
from engine.training.callbacks import Callback
from engine.training.loaders import auto_workers
from engine.training.trainer import train

if TYPE_CHECKING:
    from engine.training.context import RunContext

MIB = 2**20
TEXT_STARTER = "all-MiniLM-L6-v2"


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
            "metrics": dict(event.metrics),
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
            "trainable_params": event.trainable_params,
            "total_params": event.total_params,
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


def text_config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        seed=args.seed,
        data=DataConfig(
            path=str(args.data),
            text_column=args.text_column,
            label_column=args.label_column,
            val_fraction=args.val_fraction,
            max_length=args.max_length,
            length_bucketing=not args.no_bucketing,
        ),
        model=ModelConfig(backbone=TEXT_STARTER),
        adapt=AdaptConfig(method=Method(args.method)),
        schedule=ScheduleConfig(epochs=args.epochs or 3, batch_size=args.batch_size or 32),
    )


class TextBatches(Callback):
    """The token batches a text run trains on, read from its pipeline when the run starts: the
    texts in each step and the token positions (real and padding) each epoch feeds the model."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, Any]] = []
        self.lengths: dict[str, int] = {}

    def on_run_started(self, event: RunStarted, ctx: RunContext) -> None:
        pipeline = ctx.pipeline
        tokens = getattr(pipeline, "train_tokens", None)
        if tokens is None:  # a frozen backbone: cached features, no token batches
            return
        lengths = sorted(tokens.lengths)
        self.lengths = {
            "median": lengths[len(lengths) // 2],
            "p90": lengths[int(len(lengths) * 0.9)],
            "max": lengths[-1],
            "limit": ctx.max_length,
        }
        for epoch in range(event.epochs):
            batches = pipeline._order(epoch)  # the engine's own batches, bucketed or not
            self.epochs.append(
                {
                    "sizes": [len(b) for b in batches],
                    "real_tokens": sum(tokens.lengths[i] for b in batches for i in b),
                    "padded_tokens": tokens.padded_tokens(batches),
                }
            )


def run(config: RunConfig, workspace: Path) -> dict[str, Any]:
    """Call ``train`` once; the clock covers the call and nothing else."""
    timeline = Timeline()
    batches = TextBatches()
    rss_before = psutil.Process().memory_info().rss / MIB
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    timeline.start = t0
    result = train(config, workspace=workspace, on_event=timeline, callbacks=[batches])
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
        "text_batches": batches.epochs,
        "token_lengths": batches.lengths,
        "rss_before_mib": rss_before,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mib": (
            torch.cuda.max_memory_allocated() / MIB if torch.cuda.is_available() else None
        ),
    }


CONFIGS = {"linear-probe": linear_probe_config, "finetune": finetune_config, "text": text_config}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Time one Refit Studio training run.")
    parser.add_argument("mode", choices=sorted(CONFIGS))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--out", type=Path, required=True)
    text = parser.add_argument_group("text mode")
    text.add_argument("--method", default="lora", help="lora, full, linear-probe, last-N")
    text.add_argument("--no-bucketing", action="store_true", help="length_bucketing off")
    text.add_argument("--text-column", default="")
    text.add_argument("--label-column", default="")
    text.add_argument("--max-length", type=int, default=DataConfig().max_length)
    text.add_argument("--seed", type=int, default=0, help="RunConfig.seed")
    args = parser.parse_args(argv)
    config = CONFIGS[args.mode](args).validate()
    args.out.write_text(json.dumps(run(config, args.workspace), indent=2))


if __name__ == "__main__":
    main()
