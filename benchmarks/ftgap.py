"""Why the engine's full fine-tune trailed a plain PyTorch loop given the same recipe (issue 11).

Runs the engine (in-process, so that single factors can be switched by a local patch) and a plain
loop on the SAME split (the engine run's splits.json) and the same per-image intensity stretch,
and prints both validation accuracy curves.

    python benchmarks/ftgap.py DATA --seed 0                 # both sides, the engine first
    python benchmarks/ftgap.py DATA --side engine --factors warmup30,momentum --seed 0
    python benchmarks/ftgap.py DATA --side plain --splits RUN/splits.json --seed 0

Recipe on both sides: EfficientNet-Lite0 starter weights, AdamW lr 1e-3 on every layer, weight
decay 0.05, batch 16, one-cycle, light augmentation (random resized crop 70-100 % + flip).
The plain loop also rotates by up to 10 degrees and uses torch's OneCycleLR defaults (30 %
warm-up, AdamW beta1 cycled 0.85-0.95), decays every parameter and keeps timm's head init;
``--factors`` gives the engine these one at a time (``plain`` = all of them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode, v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_finetune import evaluate as accuracy
from starter_model import FileList, efficientnet_lite0

from engine.data.intensity import IntensityStretch

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BICUBIC = InterpolationMode.BICUBIC
# warmup30 = the engine after the fix; without it, the engine as before (5 % one-cycle rise).
ENGINE_FACTORS = ("warmup30", "momentum", "decay_all", "rotate", "timm_head", "no_cl", "nondet")


# ---------------------------------------------------------------- plain loop


def plain_transform(train: bool, *, rotate: bool, stretch: bool) -> v2.Compose:
    head = [IntensityStretch()] if stretch else []
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    if not train:
        resize = v2.Resize(256, interpolation=BICUBIC, antialias=True)
        return v2.Compose([*head, resize, v2.CenterCrop(224), *tail])
    aug = [
        v2.RandomResizedCrop(224, scale=(0.7, 1.0), interpolation=BICUBIC, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if rotate:
        aug.append(v2.RandomRotation(10, interpolation=InterpolationMode.BILINEAR))
    return v2.Compose([*head, *aug, *tail])


def run_plain(args: argparse.Namespace) -> list[float]:
    """The loop a practitioner writes; returns the validation accuracy after every epoch."""
    torch.manual_seed(args.seed)
    splits = json.loads(args.splits.read_text())
    rows = [[r["path"], r["label"]] if isinstance(r, dict) else r for r in splits["train"]]
    val_rows = [[r["path"], r["label"]] if isinstance(r, dict) else r for r in splits["val"]]
    factors = set(args.plain_factors)
    stretch = "nostretch" not in factors
    model = efficientnet_lite0(num_classes=len(splits["classes"])).train()
    rotate = "norotate" not in factors
    train_set = FileList(rows, plain_transform(True, rotate=rotate, stretch=stretch))
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val = DataLoader(
        FileList(val_rows, plain_transform(False, rotate=False, stretch=stretch)),
        batch_size=args.batch_size,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=args.lr,
        total_steps=args.epochs * math.ceil(len(rows) / args.batch_size),
        pct_start=0.05 if "warmup05" in factors else 0.3,
        cycle_momentum="nomomentum" not in factors,
    )
    loss_fn = nn.CrossEntropyLoss()
    curve = []
    for _ in range(args.epochs):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        curve.append(accuracy(model, val))
        print(f"plain epoch {len(curve)}: val {curve[-1]:.3f}", flush=True)
    return curve


# ---------------------------------------------------------------- engine with single factors


def _patch_engine(factors: set[str]) -> None:
    """Local, in-process patches: each gives the engine one property of the plain loop."""
    import engine.models as models
    import engine.training.pipeline as pipeline
    import engine.training.trainer as trainer
    from engine.training import optim

    if "momentum" in factors:
        real_scheduler = optim.build_scheduler

        def with_momentum(opt, cfg, total):
            sched = real_scheduler(opt, cfg, total)
            sched.cycle_momentum, sched.use_beta1 = True, True
            for group in opt.param_groups:  # what OneCycleLR(cycle_momentum=True) sets up
                group["max_momentum"], group["base_momentum"] = 0.95, 0.85
                group["betas"] = (0.95, *group["betas"][1:])
            return sched

        trainer.build_scheduler = with_momentum
    if "decay_all" in factors:
        real_groups = optim.param_groups

        def decay_all(model, head, cfg):
            groups = real_groups(model, head, cfg)
            for g in groups:
                g["weight_decay"] = cfg.weight_decay
            return groups

        trainer.param_groups = decay_all
    if "rotate" in factors:
        real_transform = pipeline.build_transform

        def rotating(pre, *, train, **kw):
            t = real_transform(pre, train=train, **kw)
            if train:
                steps = t.pipeline.transforms
                at = next(i for i, s in enumerate(steps) if isinstance(s, v2.ToImage))
                steps.insert(at, v2.RandomRotation(10, interpolation=InterpolationMode.BILINEAR))
            return t

        pipeline.build_transform = rotating
    if "timm_head" in factors:
        real_build = models.build_model

        def timm_head(config, num_classes, **kw):
            model = real_build(config, num_classes, **kw)
            linear = model.head[-1]
            bound = 1.0 / math.sqrt(linear.out_features)  # timm's _init_weight_goog for Linear
            nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(linear.bias)
            return model

        models.build_model = timm_head


def run_engine(args: argparse.Namespace) -> tuple[list[float], Path]:
    """One engine run with ``args.factors``; the validation accuracy curve and the run folder."""
    import dataclasses

    from engine.cli.config_flags import fresh_config
    from engine.training import optim
    from engine.training.trainer import train

    factors = set(args.factors)
    # The engine before issue 11's fix rose for warmup_fraction (0.05) of a one-cycle schedule;
    # "warmup30" is the engine after it (a rise of at least 30 %).
    optim.ONE_CYCLE_RISE = 0.3 if "warmup30" in factors else 0.01
    _patch_engine(factors)
    cfg = fresh_config(args.data)
    cfg = dataclasses.replace(
        cfg,
        seed=args.seed,
        name="ftgap " + (",".join(sorted(factors)) or "engine"),
        data=dataclasses.replace(cfg.data, num_workers=0, intensity=args.intensity),
        adapt=dataclasses.replace(cfg.adapt, method="full"),
        optim=dataclasses.replace(cfg.optim, lr=args.lr, backbone_lr_scale=1.0, weight_decay=0.05),
        schedule=dataclasses.replace(
            cfg.schedule,
            epochs=args.epochs,
            batch_size=args.batch_size,
            schedule="one-cycle",
            warmup_fraction=0.3 if "warmup30" in factors else cfg.schedule.warmup_fraction,
        ),
        device=dataclasses.replace(
            cfg.device,
            channels_last="no_cl" not in factors,
            deterministic="nondet" not in factors,
        ),
    )
    cfg = type(cfg).from_dict(cfg.to_dict())  # re-validates the enums given as text
    result = train(cfg, workspace=args.workspace)
    from engine.runs import RunDir

    records = RunDir(result.run_dir).metrics()
    curve = [r["val_accuracy"] for r in records if "val_accuracy" in r]
    return curve, result.run_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--side", choices=("engine", "plain", "both"), default="both")
    parser.add_argument("--factors", default="", help="engine, comma-separated: see the doc")
    parser.add_argument(
        "--plain-factors", default="", help="plain loop: norotate,warmup05,nomomentum,nostretch"
    )
    parser.add_argument("--splits", type=Path, help="plain: the engine run's splits.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--intensity", default="auto")
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/ftgap/ws"))
    parser.add_argument("--out", type=Path, help="append one JSON line with the result")
    args = parser.parse_args(argv)
    args.factors = [f for f in args.factors.split(",") if f]
    args.plain_factors = [f for f in args.plain_factors.split(",") if f]
    if "plain" in args.factors:
        args.factors = list(ENGINE_FACTORS[:5])
    torch.set_num_threads(1)
    sides = ("engine", "plain") if args.side == "both" else (args.side,)
    for side in sides:
        t0 = time.perf_counter()
        run_dir = None
        if side == "engine":
            curve, run_dir = run_engine(args)
            args.splits = run_dir / "splits.json"  # the plain loop trains on the same split
        else:
            curve = run_plain(args)
        report(args, side, curve, run_dir, time.perf_counter() - t0)


def report(
    args: argparse.Namespace, side: str, curve: list[float], run_dir: Path | None, seconds: float
) -> None:
    """Print one JSON line per side (and append it to ``--out``)."""
    line = {
        "side": side,
        "factors": args.factors if side == "engine" else args.plain_factors,
        "seed": args.seed,
        "data": str(args.data),
        "curve": [round(a, 4) for a in curve],
        "best": round(max(curve), 4),
        "last": round(curve[-1], 4),
        "seconds": round(seconds),
        "run_dir": str(run_dir) if run_dir else None,
    }
    print(json.dumps(line), flush=True)
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
