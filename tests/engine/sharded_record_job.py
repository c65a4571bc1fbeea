"""A torchrun job for test_distributed_shards.py: the recipe advisor's two recording passes
(record, then add_views) in shards over the ranks, each rank saving what it got back.

``python -m torch.distributed.run --standalone --nproc-per-node N sharded_record_job.py DATA OUT``
writes ``OUT/rank<r>.pt``; :func:`recordings` makes the same recordings on one process.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

TINY = "timm:test_efficientnet"


def recordings(data: Path, dist: Any) -> dict[str, torch.Tensor]:
    """The clean recording of the shapes in ``data`` with 2 augmented views added (3 validation
    images), through the tiny network whose weights seed 0 draws; flattened to named tensors."""
    from engine.advice.record import add_views, record
    from engine.advice.split import verified_boundaries
    from engine.config import Device, DeviceConfig, ModelConfig
    from engine.data import ImageDataset, build_transform
    from engine.data.scan import scan_folder
    from engine.models import build_model
    from engine.training.devices import resolve_placement

    train = list(scan_folder(data).samples)
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=TINY, pretrained=False), 2).eval()
    pre = model.preprocess
    transforms = (build_transform(pre, train=False), build_transform(pre, train=True))
    ds = ImageDataset(train[:2], transforms[0])
    bounds, _ = verified_boundaries(model, torch.stack([ds[i][0] for i in range(2)]))
    cut = bounds[-3]
    common: dict[str, Any] = {
        "seed": 1,
        "placement": resolve_placement(DeviceConfig(device=Device.CPU)),
        "channels_last": False,
        "workers": 0,
        "batch_size": 4,
        "shard": dist,
    }
    clean = record(
        model,
        train,
        train[:3],
        transforms=transforms,
        boundaries=bounds,
        cuts=[cut],
        views=1,
        **common,
    )
    added = add_views(
        model, clean, train, train_transform=transforms[1], cuts=[cut], views=3, **common
    )
    out = {
        "clean.features": clean.features,
        "features": added.features,
        "activations": added.activations[cut.module],
        "val_features": added.val_features,
        "val_activations": added.val_activations[cut.module],
        "labels": added.labels,
    }
    out.update({f"pooled.{m}": t for m, t in clean.pooled.items()})
    return out


def main(argv: list[str]) -> int:
    import torch.distributed as td

    from engine.advice import record
    from engine.distributed.worker import identity

    data, out = Path(argv[0]), Path(argv[1])
    dist = identity()
    td.init_process_group("gloo")
    ran = [0]  # the images this rank put through the network itself
    extract = record.extract_features

    def counted(run: Any, dataset: Any, **kw: Any) -> torch.Tensor:
        ran[0] += len(dataset)
        return extract(run, dataset, **kw)

    record.extract_features = counted  # type: ignore[assignment]
    try:
        saved = recordings(data, dist)
        saved["ran"] = torch.tensor(ran)
        torch.save(saved, out / f"rank{dist.rank}.pt")
    finally:
        td.destroy_process_group()
    return 0


if __name__ == "__main__":
    from engine.fast_exit import exit_now

    exit_now(main(sys.argv[1:]))  # as engine/distributed/__main__.py: no teardown after Gloo
