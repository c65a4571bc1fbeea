"""The plain extract-once linear probe a practitioner writes: ImageFolder-style loading with 2
workers, frozen EfficientNet-Lite0 (starter weights, timm), the ImageNet evaluation transform,
features once under no_grad, scikit-learn's LogisticRegression as the head.

    python benchmarks/plain_probe_script.py --splits RUN/splits.json --out result.json

``--splits``: a Refit Studio splits.json, so that both sides see the same train/val images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression
from starter_model import FileList, efficientnet_lite0
from torch.utils.data import DataLoader
from torchvision import transforms

TF = transforms.Compose(
    [
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ]
)


@torch.no_grad()
def features(model, rows, workers):
    xs, ys = [], []
    for x, y in DataLoader(FileList(rows, TF), batch_size=32, num_workers=workers):
        xs.append(model(x))
        ys.append(y)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--splits", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    splits = json.loads(a.splits.read_text())
    model = efficientnet_lite0(num_classes=0).eval()
    xt, yt = features(model, splits["train"], a.workers)
    xv, yv = features(model, splits["val"], a.workers)
    head = LogisticRegression(max_iter=2000).fit(xt, yt)
    a.out.write_text(json.dumps({"val_accuracy": head.score(xv, yv), "t": time.time()}))


if __name__ == "__main__":
    main()
