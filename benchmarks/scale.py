"""Training throughput on 1 process and on several (torchrun + DDP), side by side.

The same RunConfig (EfficientNet-Lite0 starter weights, every layer trained, the same global
batch) on a generated photo folder, run by `refit train` with 1 process and with `--nproc N`.
Images per second count the training steps after each epoch's first step (whose interval holds
the validation pass and, in the first epoch, the start-up), from the arrival times of rank 0's
StepEnded events (`--events-jsonl`).

On the CPU (N = 2 by default, Gloo) this documents the overhead: the processes share the same
cores, so 2 processes are not faster than 1. On a machine with GPUs (NCCL), it compares 1 GPU
with all of them (N = the number of GPUs) and prints the scaling efficiency: images/s on N
divided by N times images/s on 1.

    python benchmarks/scale.py                        # 128 small photos, 2 epochs, CPU
    python benchmarks/scale.py --per-class 400 --epochs 3 --batch 64     # on a GPU machine
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
from typing import Any

from make_photos import generate
from report import machine_lines, table, warn_if_busy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def config_file(data: Path, folder: Path, args: argparse.Namespace, device: str) -> Path:
    """The run's config.json: the one file both sides train."""
    sys.path.insert(0, str(ROOT))
    from engine.config import (
        AdaptConfig,
        DataConfig,
        DeviceConfig,
        Method,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )

    cfg = RunConfig(
        seed=0,
        data=DataConfig(path=str(data), val_fraction=0.2, num_workers=args.workers),
        model=ModelConfig(backbone=args.backbone),
        adapt=AdaptConfig(method=Method.FULL),
        schedule=ScheduleConfig(epochs=args.epochs, batch_size=args.batch),
        device=DeviceConfig(device=device),
    ).validate()
    path = folder / "config.json"
    path.write_text(cfg.to_json(), encoding="utf-8")
    return path


def run(config: Path, workspace: Path, nproc: int) -> dict[str, Any]:
    """`refit train CONFIG --nproc N --events-jsonl`: the step events with arrival times."""
    cmd = [sys.executable, "-m", "engine", "train", str(config), "--workspace", str(workspace)]
    cmd += ["--nproc", str(nproc), "--events-jsonl"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    steps, started, ended = [], {}, {}
    for line in proc.stdout:
        t = time.perf_counter() - t0
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event")
        if kind == "StepEnded":
            steps.append((event["epoch"], t))
        elif kind == "RunStarted":
            started = event
        elif kind == "RunEnded":
            ended = event
    code = proc.wait()
    if code != 0 or ended.get("status") != "completed":
        raise SystemExit(f"{nproc} process(es): the run ended {ended.get('status')} ({code}).")
    return {
        "steps": steps,
        "train_size": started["train_size"],
        "seconds": time.perf_counter() - t0,
    }


def images_per_s(result: dict[str, Any], batch: int) -> float:
    """Images of the steps after each epoch's first, over their seconds."""
    images, seconds = 0, 0.0
    steps, n = result["steps"], result["train_size"]
    for i in range(1, len(steps)):
        (epoch, t), (prev_epoch, prev_t) = steps[i], steps[i - 1]
        if epoch == prev_epoch:
            position = sum(1 for e, _ in steps[:i] if e == epoch)
            images += min(batch, n - position * batch)
            seconds += t - prev_t
    return images / seconds if seconds else float("nan")


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=16, help="The global batch (both sides).")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--nproc", type=int, default=0, help="0: every GPU, or 2 on the CPU.")
    p.add_argument("--keep", action="store_true", help="Keep the generated folder and runs.")
    args = p.parse_args()
    gpus = torch.cuda.device_count()
    nproc = args.nproc or (gpus if gpus > 1 else 2)
    device = "cuda" if gpus else "cpu"
    warn_if_busy()
    folder = Path(tempfile.mkdtemp(prefix="refit-scale-"))
    try:
        data = generate(folder / "photos", per_class=args.per_class, seed=0, sizes="small")
        config = config_file(data, folder, args, device)
        rows, speeds = [], {}
        for n in (1, nproc):
            result = run(config, folder / f"ws{n}", n)
            speeds[n] = images_per_s(result, args.batch)
            rows.append([f"{n} process{'es' if n > 1 else ''}", speeds[n], result["seconds"]])
        print("\n".join(machine_lines()))
        print(f"{args.backbone}, global batch {args.batch}, {device}")
        print(table(["", "images/s", "wall s"], rows))
        efficiency = speeds[nproc] / (nproc * speeds[1])
        what = "scaling efficiency" if device == "cuda" else "relative to 1 process per core"
        print(f"{what}: {efficiency:.0%} (images/s on {nproc} / ({nproc} x images/s on 1))")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
