"""A fixed fastai ``fine_tune``-style recipe as a plain PyTorch loop (not the engine).

What ``learn.fine_tune(8)`` does with fastai's defaults, written out:

1. freeze the body; one epoch of ``fit_one_cycle`` on the head at ``base_lr`` 2e-3
   (``pct_start`` 0.99, ``div`` 25). fastai's ``train_bn`` keeps the BatchNorm layers of the
   frozen body trainable (``slice(base_lr)``: at ``base_lr / 10``); so does this loop;
2. unfreeze; ``epochs`` (8) of ``fit_one_cycle`` at ``base_lr / 2`` with discriminative rates
   ``slice(base_lr / 2 / 100, base_lr / 2)`` (``pct_start`` 0.3, ``div`` 5). fastai's default
   splitter for a timm body gives two groups: the body at the low rate, the head at the high one;
3. one-cycle: cosine warm-up from ``lr / div`` then cosine down to ``lr / 1e5``, Adam's beta1
   cycled 0.95 -> 0.85 -> 0.95; AdamW, weight decay 0.01, eps 1e-5 (fastai's Adam).

Same starter weights as the engine (``starter_model.efficientnet_lite0``), the engine run's
``splits.json``, the engine's intensity stretch when that run used it (``--intensity
percentile``), light augmentation (random resized crop 70-100 % + horizontal flip), batch 16.
Validation accuracy and macro F1 after every epoch; the caller reports the last and the best.

    python benchmarks/plain_fastai.py --splits RUN/splits.json --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from starter_model import FileList, efficientnet_lite0
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode, v2

from engine.data.intensity import IntensityStretch

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BICUBIC = InterpolationMode.BICUBIC
DIV_FINAL = 1e5  # fastai fit_one_cycle: the last learning rate is lr_max / 1e5


def transforms(train: bool, stretch: bool) -> v2.Compose:
    head = [IntensityStretch()] if stretch else []
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    if train:
        crop = [
            v2.RandomResizedCrop(224, scale=(0.7, 1.0), interpolation=BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    else:
        crop = [v2.Resize(256, interpolation=BICUBIC, antialias=True), v2.CenterCrop(224)]
    return v2.Compose([*head, *crop, *tail])


def param_groups(model: nn.Module, frozen: bool) -> list[list[nn.Parameter]]:
    """[body, head]; a frozen body contributes only its BatchNorm parameters (fastai train_bn)."""
    head = list(model.get_classifier().parameters())
    head_ids = {id(p) for p in head}
    if frozen:
        bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        body = [p for m in bn for p in m.parameters() if id(p) not in head_ids]
    else:
        body = [p for p in model.parameters() if id(p) not in head_ids]
    trainable = {id(p) for p in body + head}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    return [body, head]


def one_cycle(
    groups: list[list[nn.Parameter]], lrs: list[float], steps: int, pct_start: float, div: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    opt = torch.optim.AdamW(
        [{"params": g, "lr": lr} for g, lr in zip(groups, lrs, strict=True)],
        betas=(0.95, 0.99),
        eps=1e-5,
        weight_decay=0.01,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=lrs,
        total_steps=max(1, steps),
        pct_start=pct_start,
        div_factor=div,
        final_div_factor=DIV_FINAL / div,  # torch divides the start rate (lr / div) by it
        base_momentum=0.85,
        max_momentum=0.95,
    )
    return opt, sched


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, classes: int) -> dict[str, float]:
    """Validation accuracy and macro F1 (classes absent from both truth and prediction: F1 0)."""
    model.eval()
    truth, pred = [], []
    for x, y in loader:
        pred.append(model(x).argmax(1))
        truth.append(y)
    model.train()
    t, p = torch.cat(truth), torch.cat(pred)
    f1s = []
    for c in range(classes):
        tp = int(((p == c) & (t == c)).sum())
        denom = int((p == c).sum()) + int((t == c).sum())
        f1s.append(2 * tp / denom if denom else 0.0)
    return {"acc": float((p == t).float().mean()), "f1": sum(f1s) / max(1, classes)}


def fit(model, loader, val_loader, groups, lrs, epochs, pct_start, div, classes) -> list[dict]:
    """``fit_one_cycle``: one schedule over ``epochs``; the validation metrics of each epoch."""
    opt, sched = one_cycle(groups, lrs, epochs * len(loader), pct_start, div)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for _ in range(epochs):
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        history.append(evaluate(model, val_loader, classes))
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="fastai fine_tune-style plain PyTorch loop.")
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8, help="epochs after unfreezing")
    parser.add_argument("--freeze-epochs", type=int, default=1)
    parser.add_argument("--base-lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--intensity", choices=["off", "percentile"], default="off")
    parser.add_argument("--workers", type=int, default=min(8, (os.cpu_count() or 1) - 1))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    splits = json.loads(args.splits.read_text())
    classes = len(splits["classes"])
    stretch = args.intensity == "percentile"
    model = efficientnet_lite0(num_classes=classes).train()
    loader = DataLoader(
        FileList(splits["train"], transforms(True, stretch)),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=len(splits["train"]) > args.batch_size,  # fastai drops the last train batch
        num_workers=args.workers,
    )
    val_loader = DataLoader(
        FileList(splits["val"], transforms(False, stretch)),
        batch_size=args.batch_size * 2,
        num_workers=args.workers,
    )
    lr = args.base_lr
    history = fit(
        model, loader, val_loader, param_groups(model, True), [lr / 10, lr], args.freeze_epochs,
        0.99, 25.0, classes,
    )  # fmt: skip
    lr /= 2
    history += fit(
        model, loader, val_loader, param_groups(model, False), [lr / 100, lr], args.epochs,
        0.3, 5.0, classes,
    )  # fmt: skip
    best = max(range(len(history)), key=lambda i: history[i]["acc"])
    result = {
        "seconds": time.perf_counter() - t0,
        "history": history,
        "last": history[-1],
        "best": {**history[best], "epoch": best + 1},
        "threads": torch.get_num_threads(),
        "workers": args.workers,
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
