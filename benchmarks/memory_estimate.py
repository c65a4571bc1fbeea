"""Peak-memory estimate (engine/training/memory.py) against the measured peak of a real step.

Each case runs in a fresh process: once to estimate, once to train two AdamW steps on random
images and read the process's peak resident memory (ru_maxrss) above what it held before the
first step, plus the parameters and the input batch it already held. On a CPU that peak also
holds allocator slack and the kernels loaded on the first backward, so it is an upper bound.
On a CUDA machine pass ``--device cuda``: the peak is then torch.cuda.max_memory_allocated().

    python benchmarks/memory_estimate.py
    python benchmarks/memory_estimate.py --device cuda --batches 32 128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("timm:resnet18", "full"),
    ("timm:resnet18", "last-3"),
    ("timm:vit_tiny_patch16_224", "full"),
    ("timm:vit_tiny_patch16_224", "last-3"),
]


def one(backbone: str, method: str, batch: int, device: str, what: str) -> dict:
    """Runs in the child process: the estimate or the measured peak, in bytes."""
    import resource

    import psutil
    import torch

    from engine.config import (
        DataConfig,
        Device,
        DeviceConfig,
        ModelConfig,
        RunConfig,
        ScheduleConfig,
    )
    from engine.models import apply_freeze, build_model
    from engine.training.memory import estimate_peak_memory

    torch.set_num_threads(1)
    model = build_model(ModelConfig(backbone=backbone, pretrained=False), 10)
    groups = [g.name for g in model.groups]
    apply_freeze(model, [] if method == "full" else groups[:-3])
    model.to(device)
    cfg = RunConfig(
        data=DataConfig(path="unused"),
        model=ModelConfig(backbone=backbone, pretrained=False),
        schedule=ScheduleConfig(batch_size=batch),
        device=DeviceConfig(device=Device(device)),
    )
    if what == "estimate":
        return {"bytes": estimate_peak_memory(model, cfg, None).peak}
    size = model.preprocess.input_size
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    held = sum(p.numel() * p.element_size() for p in model.parameters()) + x.numel() * 4
    base = psutil.Process().memory_info().rss
    for _ in range(2):  # the second step holds the optimizer state too
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        return {"bytes": torch.cuda.max_memory_allocated()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"bytes": peak - base + held}


def child(args: list[str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    code = (
        f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import memory_estimate as m; print(json.dumps(m.one(*{args!r})))"
    )
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["bytes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64])
    args = parser.parse_args()
    print("| model | trained | batch | estimate | measured | estimate / measured |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for backbone, method in CASES:
        for batch in args.batches:
            est = child([backbone, method, batch, args.device, "estimate"])
            real = child([backbone, method, batch, args.device, "measure"])
            name = backbone.split(":")[1]
            sizes = f"{est / 1e6:.0f} MB | {real / 1e6:.0f} MB | {est / real:.2f}"
            print(f"| {name} | {method} | {batch} | {sizes} |")


if __name__ == "__main__":
    main()
