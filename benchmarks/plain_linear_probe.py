"""Plain PyTorch linear probe: the script a competent practitioner writes without Refit Studio.

Frozen EfficientNet-Lite0 (starter ImageNet weights, timm), ImageFolder-style loading of the
given train/val file lists, the standard ImageNet evaluation transform, features extracted once
under ``torch.no_grad()``, then a linear head trained with AdamW and a cosine schedule.

    python benchmarks/plain_linear_probe.py --splits RUN/splits.json --out result.json

``--splits`` is a Refit Studio ``splits.json`` (``{"classes", "train", "val"}`` with rows of
``[path, label, digest]``), so that both sides see exactly the same images.
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
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def eval_transform() -> transforms.Compose:
    return transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


@torch.no_grad()
def extract(model: nn.Module, dataset: Dataset, batch_size: int, workers: int):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    feats, labels = [], []
    for x, y in loader:
        feats.append(model(x))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (head(x).argmax(1) == y).float().mean().item()


def train_head(
    train: tuple, val: tuple, classes: int, epochs: int, batch_size: int, seed: int
) -> list[float]:
    """AdamW + cosine over all steps; returns the validation accuracy after each epoch."""
    torch.manual_seed(seed)
    x, y = train
    head = nn.Linear(x.shape[1], classes)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch_size):
            loss = loss_fn(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        history.append(accuracy(head, *val))
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plain PyTorch linear probe (baseline).")
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(8, (os.cpu_count() or 1) - 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    splits = json.loads(args.splits.read_text())
    model = efficientnet_lite0(num_classes=0).eval()
    t_model = time.perf_counter()
    tfm = eval_transform()
    train = extract(model, FileList(splits["train"], tfm), args.batch_size, args.workers)
    t_train_feats = time.perf_counter()
    val = extract(model, FileList(splits["val"], tfm), args.batch_size, args.workers)
    t_feats = time.perf_counter()
    history = train_head(
        train, val, len(splits["classes"]), args.epochs, args.batch_size, args.seed
    )
    t_end = time.perf_counter()

    images = len(splits["train"]) + len(splits["val"])
    result = {
        "seconds": t_end - t0,
        "phases": {
            "model": t_model - t0,
            "features_train": t_train_feats - t_model,
            "features_val": t_feats - t_train_feats,
            "head": t_end - t_feats,
        },
        "feature_images": images,
        "feature_seconds": t_feats - t_model,
        "val_accuracy_best": max(history),
        "val_accuracy_last": history[-1],
        "workers": args.workers,
        "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
