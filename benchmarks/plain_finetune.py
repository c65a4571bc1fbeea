"""Plain PyTorch full fine-tune: the training loop a practitioner writes without Refit Studio.

EfficientNet-Lite0 (starter ImageNet weights, timm) with a new 2-class classifier, every layer
trained with AdamW (backbone at a tenth of the head's learning rate) and a cosine schedule,
torchvision v2 augmentation (random resized crop 70-100 %, horizontal flip), ImageFolder-style
loading of the given train/val file lists, a validation pass after each epoch.

    python benchmarks/plain_finetune.py --splits RUN/splits.json --out result.json

Writes the time at which every optimisation step ended, so that the caller can compute the
steady-state throughput the same way for both sides.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path

import torch
from starter_model import FileList, efficientnet_lite0
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode, v2

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BICUBIC = InterpolationMode.BICUBIC


def transforms(train: bool) -> v2.Compose:
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    if train:
        head = [
            v2.RandomResizedCrop(224, scale=(0.7, 1.0), interpolation=BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    else:
        head = [v2.Resize(256, interpolation=BICUBIC, antialias=True), v2.CenterCrop(224)]
    return v2.Compose([*head, *tail])


def optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    head = list(model.get_classifier().parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return torch.optim.AdamW(
        [{"params": backbone, "lr": lr * 0.1}, {"params": head, "lr": lr}], weight_decay=0.01
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = seen = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        seen += len(y)
    model.train()
    return correct / max(1, seen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plain PyTorch full fine-tune (baseline).")
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=min(8, (os.cpu_count() or 1) - 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    splits = json.loads(args.splits.read_text())
    model = efficientnet_lite0(num_classes=len(splits["classes"])).train()
    train_loader = DataLoader(
        FileList(splits["train"], transforms(train=True)),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
    )
    val_loader = DataLoader(
        FileList(splits["val"], transforms(train=False)),
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    opt = optimizer(model, args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=args.epochs * math.ceil(len(splits["train"]) / args.batch_size)
    )
    loss_fn = nn.CrossEntropyLoss()
    steps, accuracies = [], []
    for epoch in range(args.epochs):
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss.item()
            steps.append({"epoch": epoch, "n": len(y), "t": time.perf_counter() - t0})
        accuracies.append(evaluate(model, val_loader))
    result = {
        "seconds": time.perf_counter() - t0,
        "steps": steps,
        "val_accuracy_last": accuracies[-1],
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
