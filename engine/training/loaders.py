"""DataLoaders whose order and augmentation depend only on (seed, epoch, position)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def auto_workers(requested: int) -> int:
    """-1: one worker per spare core (max 8). A frozen (PyInstaller) app off Linux keeps 0:
    there workers start by spawn, which re-runs the executable, never tried on those systems
    (on Linux they fork; scripts/build_bundle.py trains with workers in the bundle)."""
    if getattr(sys, "frozen", False) and sys.platform != "linux":
        return 0
    if requested >= 0:
        return requested
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields (epoch, index) pairs: shuffled per epoch from the seed, starting at ``start``."""

    def __init__(self, n: int, *, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else range(self.n)
        for i in list(order)[self.start :]:
            yield self.epoch, i

    def __len__(self) -> int:
        return max(0, self.n - self.start)


class ShardedBatches(Sampler[list[tuple[int, int]]]):
    """One rank's part of each global batch: the batches of a 1-process run (the same epoch
    permutation, cut in ``batch_size`` pieces from ``start``), every ``world``-th row of each
    from ``rank``. So the global batches stay the very batches of a 1-process run whatever the
    world size, and a position is a global sample count (a resume may change the world size).

    torch's DistributedSampler would shard a different permutation; this keeps the data order
    of 1-process runs. A rank whose part of a short last batch is empty gets that batch's first
    row (counted once more in the average; see docs/scale-out.md)."""

    def __init__(
        self, n: int, *, seed: int, shuffle: bool, batch_size: int, rank: int, world: int
    ) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.batch_size, self.rank, self.world = batch_size, rank, world
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else range(self.n)
        for batch in batches_of(list(order)[self.start :], self.batch_size):
            part = batch[self.rank :: self.world] or batch[:1]
            yield [(self.epoch, i) for i in part]

    def __len__(self) -> int:
        return -(-max(0, self.n - self.start) // self.batch_size)


class EpochIndexed(Dataset):
    """Wraps a dataset with ``set_epoch``; the epoch travels with each index into the workers."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        return self.base[index]


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    workers: int,
    pin: bool,
    drop_last: bool = False,
    shard: tuple[int, int] | None = None,
) -> tuple[DataLoader, Any]:
    """A loader and its sampler (``set_position(epoch, start)``). ``shard`` (rank, world): this
    rank's rows of each global batch of ``batch_size`` (:class:`ShardedBatches`)."""
    sampler: Any
    if shard is not None:
        sampler = ShardedBatches(
            len(dataset),
            seed=seed,
            shuffle=shuffle,
            batch_size=batch_size,
            rank=shard[0],
            world=shard[1],
        )
        batching: dict[str, Any] = {"batch_sampler": sampler}
    else:
        sampler = EpochSampler(len(dataset), seed=seed, shuffle=shuffle)
        batching = {"batch_size": batch_size, "sampler": sampler, "drop_last": drop_last}
    loader = DataLoader(
        EpochIndexed(dataset),
        **batching,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        # A private generator: worker seeding must not consume the global RNG, or a resumed run
        # would draw different dropout masks than an uninterrupted one.
        generator=torch.Generator().manual_seed(seed),
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=ignore_sigint if workers > 0 else None,
    )
    return loader, sampler


def ignore_sigint(worker_id: int) -> None:
    """DataLoader workers ignore Ctrl+C: the terminal sends it to the whole process group, and
    the main process decides what it means (stop after this step); a worker that died of it
    would turn a clean stop into a failed run."""
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batches_of(indices: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]


#: Most threads that decode images for a pass on the CPU.
MAX_DECODE_THREADS = 8


def decode_threads(device: torch.device, dataset: Any) -> int:
    """Threads of this process that make a pass's items, or 0 for loader worker processes.

    On the CPU, threads keep onnxruntime (or torch) fed better than worker processes do: no
    process to start, no tensors to copy back (docs/benchmarks.md). GPUs keep their workers:
    the CPU is free to decode there. Datasets with random draws always use processes. Threads
    also work in the frozen app, where worker processes are off."""
    if device.type != "cpu" or not deterministic(dataset):
        return 0
    # One more than the cores: on 2 cores, 3 threads fed onnxruntime at 128 images/s, 2 at 117,
    # one loader worker process at 92 (benchmarks/frozen_forward.py, docs/benchmarks.md).
    return min(MAX_DECODE_THREADS, (os.cpu_count() or 1) + 1)


def feeder_text(threads: int, workers: int) -> str:
    """Who decodes the images, for log lines."""
    if threads:
        return f"{threads} decoding thread{'s' if threads != 1 else ''}"
    if workers:
        return f"{workers} loader worker{'s' if workers != 1 else ''}"
    return "decoding in the main process"


def deterministic(dataset: Any) -> bool:
    """Whether every item of ``dataset`` (an ImageDataset, or a ConcatDataset or Subset of them)
    is made without random draws, so that several threads may make items at once."""
    parts = getattr(dataset, "datasets", None)
    if parts is not None:
        return all(deterministic(p) for p in parts)
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):  # a Subset
        return deterministic(dataset.dataset)
    return getattr(dataset, "random", True) is False


AHEAD = 4  # batches decoded in advance (see threaded_batches)


def threaded_batches(
    dataset: Any, *, batch_size: int, threads: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``dataset`` in order, made by ``threads`` threads of this process, ``AHEAD``
    batches in advance. For deterministic datasets (see :func:`deterministic`) on the CPU:
    decoding and resizing release the GIL, and no worker process has to start, or send its
    tensors back. Four batches ahead: while the first one is exported to ONNX and checked (about
    1.5 s on a model's first run), the other cores decode the next ones."""
    from concurrent.futures import ThreadPoolExecutor

    order = batches_of(range(len(dataset)), batch_size)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="refit-decode")
    try:
        pending = [[pool.submit(dataset.__getitem__, i) for i in b] for b in order[:AHEAD]]
        for k in range(len(order)):
            if k + AHEAD < len(order):
                pending.append([pool.submit(dataset.__getitem__, i) for i in order[k + AHEAD]])
            items = [f.result() for f in pending[k]]
            pending[k] = []
            yield (
                torch.stack([x for x, _ in items]),
                torch.tensor([y for _, y in items], dtype=torch.long),
            )
    finally:
        # A pass stopped early (cancelled, failed) drops the batches queued ahead at once
        # instead of decoding them first.
        pool.shutdown(wait=False, cancel_futures=True)
