"""The frozen-backbone fast path: compute features once, cache them, train the head on them."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from engine.files import write_atomic
from engine.safe_read import WEIGHTS_LIMIT, check_capped
from engine.task import Task
from engine.training.devices import Placement
from engine.training.loaders import deterministic, make_loader, threaded_batches
from engine.training.oom import MicroBatcher, inference_shrink_sentence


@dataclass
class FeedTiming:
    """Where a pass over images spent its time: waiting for decoded batches, or computing."""

    rows: int = 0
    waited_s: float = 0.0
    computed_s: float = 0.0

    def sentence(self, runtime: str, feeder: str) -> str:
        """One log line: ``feeder`` says who decoded the images ("2 decoding threads")."""
        total = self.waited_s + self.computed_s
        rate = self.rows / total if total > 0 else 0.0
        share = self.waited_s / total if total > 0 else 0.0
        return (
            f"Features of {self.rows} images in {total:.1f} s ({rate:.0f} images/s, {runtime}); "
            f"the network waited {self.waited_s:.1f} s ({share:.0%}) for decoded images "
            f"({feeder})."
        )


@torch.inference_mode()
def extract_features(
    backbone: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    dataset: Any,
    *,
    placement: Placement,
    channels_last: bool,
    batch_size: int,
    workers: int,
    task: Task | None = None,
    on_log: Callable[[str], None] | None = None,
    after_batch: Callable[[], None] | None = None,
    on_retry: Callable[[], None] | None = None,
    timing: FeedTiming | None = None,
    decode_threads: int = 0,
) -> torch.Tensor:
    """Run ``backbone`` in eval mode over ``dataset``; returns float32 features on the CPU.

    ``backbone`` is a torch module, or a callable that returns float32 CPU outputs itself (a
    :class:`engine.frozen.FrozenForward`). ``timing``, when given, is filled in.
    ``decode_threads`` > 0: items are made by that many threads of this process instead of
    ``workers`` loader processes (only for datasets without random draws, see
    :func:`engine.training.loaders.deterministic`).

    ``task`` gets ``(done, total)`` images about ten times a second and at the end, and is
    checked before each batch: a pause holds the pass there, a cancel raises :class:`Cancelled`.

    On a CUDA or MPS out-of-memory the batch is run in halves (and ``on_log`` says so).
    ``after_batch`` is called after each forward pass that succeeded (to collect what forward
    hooks recorded, for example); ``on_retry`` before a batch is run again in smaller pieces
    after an out-of-memory, so that what ``after_batch`` kept of the failed try can be dropped."""
    module = backbone if isinstance(backbone, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    timing = timing if timing is not None else FeedTiming()
    if decode_threads > 0 and deterministic(dataset):
        loader: Any = threaded_batches(dataset, batch_size=batch_size, threads=decode_threads)
    else:
        loader, _ = make_loader(
            dataset,
            batch_size=batch_size,
            seed=0,
            shuffle=False,
            workers=workers,
            pin=placement.device.type == "cuda",
        )
    what = "feature extraction"

    def shrunk(rows: int, size: int) -> None:
        if on_log is not None:
            on_log(inference_shrink_sentence(placement.device, what, rows, size))

    batcher = MicroBatcher(placement.device, what=what, on_shrink=shrunk)

    def retry() -> None:
        if on_retry is not None:
            on_retry()
        gc.collect()

    def features_of(x: torch.Tensor) -> torch.Tensor:
        if module is None:
            out = backbone(x)
        else:
            with placement.autocast():
                out = module(x).float().cpu()
        if after_batch is not None:
            after_batch()
        return out

    chunks: list[torch.Tensor] = []
    done, total = 0, len(dataset)
    last_report = 0.0
    batches = iter(loader)
    try:
        while True:
            started = time.monotonic()
            batch = next(batches, None)
            if batch is None:
                break
            x = batch[0]
            timing.waited_s += time.monotonic() - started
            started = time.monotonic()
            if task is not None:
                task.check()
            x = x.to(placement.device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            chunks.append(batcher.map(features_of, x, retry))
            done += len(x)
            timing.rows += len(x)
            timing.computed_s += time.monotonic() - started
            now = time.monotonic()
            if task is not None and (now - last_report > 0.1 or done == total):
                task.report(done, total)
                last_report = now
    finally:
        if module is not None:
            module.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def cached(
    path: Path,
    compute: Callable[[], torch.Tensor],
    rows: int | None = None,
    width: int | None = None,
) -> tuple[torch.Tensor, bool]:
    """Load the tensor at ``path`` or compute and store it. Returns (tensor, was_cached).
    ``rows`` (and ``width``): a cached tensor that cannot be the features of that many examples
    (of that many features each) is not used."""
    tensor = load_cached(path)
    if rows is not None:
        tensor = fitting(tensor, rows, width)
    if tensor is not None:
        return tensor, True
    tensor = compute()
    store_cached(path, tensor)
    return tensor, False


def fitting(
    features: torch.Tensor | None, rows: int, width: int | None = None
) -> torch.Tensor | None:
    """``features`` when they can be the features of ``rows`` examples (of ``width`` features,
    the head's input, when given): a cache file that other code (or a person) left under this
    name with other rows, another network's width, or NaN, is not used."""
    if features is None or features.ndim != 2 or features.shape[0] != rows:
        return None
    if width is not None and features.shape[1] != width:
        return None
    if not features.is_floating_point() or not bool(torch.isfinite(features).all()):
        return None
    return features


def load_cached(path: Path) -> torch.Tensor | None:
    """The tensor stored at ``path``, or None (a damaged cache file is deleted, never trusted)."""
    if not path.is_file():
        return None
    try:
        check_capped(path, WEIGHTS_LIMIT)  # is_file() looked at the link, not what is opened
        return load_file(str(path))["features"]
    except Exception:
        path.unlink(missing_ok=True)
        return None


def store_cached(path: Path, tensor: torch.Tensor) -> None:
    """Write ``tensor`` to ``path`` atomically."""
    write_atomic(path, lambda tmp: save_file({"features": tensor.contiguous()}, str(tmp)))
