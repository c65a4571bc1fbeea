"""One pass over the training images that records what the recipe advisor needs.

For each training image, its clean view and ``views - 1`` augmented views go through the frozen
network once (the same datasets, in the same order, as the linear probe's feature cache, so a
probe chosen afterwards trains on these features without a second pass). Forward hooks keep:
the pooled activation at every layer-group boundary of the clean view (how well each depth
separates the classes), the backbone's output for every view (the probe's features), and the
full activation at a few candidate cut points for every view (the frozen prefix of a partial
fine-tune, so that trials run only the layers after it). Validation images are passed once, for
the final run's caches only: nothing the advisor chooses looks at them.

The pass runs in a :class:`engine.frozen.taps.TapForward`: torch with those hooks, or, when the
caller hands one that chose onnxruntime, one exported graph whose outputs are all of them.

In a job of several processes (``shard``, an :class:`engine.distributed.Dist`) each rank runs
every world-th item of each pass and every rank gets all of them back in dataset order: the
recording a 1-process pass makes, row for row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Subset

from engine.advice.split import Boundary, pool
from engine.data import ImageDataset
from engine.distributed import SINGLE, Dist
from engine.frozen.taps import TapForward
from engine.task import Task, counting
from engine.training.devices import Placement
from engine.training.features import FeedTiming, extract_features

#: Activations of the cut points are kept in half precision on the CPU; this caps their size.
ACTIVATION_BUDGET_BYTES = 1_500_000_000


@dataclass
class Recording:
    """What one recording pass kept; tensors are on the CPU."""

    views: int
    labels: torch.Tensor  # [n] training labels
    pooled: dict[str, torch.Tensor]  # boundary module -> [n, C] clean view, pooled
    features: torch.Tensor  # [views * n, F] backbone output, view-major (the probe's cache)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)  # cut -> [views, n, ...]
    val_features: torch.Tensor | None = None  # [n_val, F]
    val_activations: dict[str, torch.Tensor] = field(default_factory=dict)  # cut -> [n_val, ...]


def activation_bytes(shapes: dict[str, tuple[int, ...]], module: str, images: int) -> int:
    """Bytes of ``images`` half-precision activations of ``module``."""
    size = 1
    for d in shapes[module]:
        size *= int(d)
    return 2 * size * images


class _Collector:
    """Moves what the hooks recorded after each forward pass into per-module lists.

    A loader batch that ran out of memory is run again in smaller pieces; what the failed try
    kept of it is dropped (``retry``), so each image is recorded once and in order. The pieces of
    a batch are held apart until they cover the whole batch (``batch`` rows, the last batch
    ``total`` minus the rows before it)."""

    def __init__(
        self, rec: TapForward, pooled: list[str], full: list[str], n: int, total: int, batch: int
    ) -> None:
        self.rec, self.pooled_names, self.full_names, self.n = rec, pooled, full, n
        self.total, self.batch = total, batch
        self.seen = 0  # rows committed
        self.pooled: dict[str, list[torch.Tensor]] = {m: [] for m in pooled}
        self.full: dict[str, list[torch.Tensor]] = {m: [] for m in full}
        self.staged: list[tuple[int, dict, dict]] = []

    def __call__(self) -> None:
        out = self.rec.outputs
        rows = len(next(iter(out.values()))) if out else 0
        start = self.seen + sum(r for r, _, _ in self.staged)
        clean = max(0, min(rows, self.n - start))  # rows of this piece in the clean view
        pooled = {m: pool(out[m][:clean]).cpu() for m in self.pooled_names if clean}
        full = {m: out[m].to("cpu", torch.float16) for m in self.full_names}
        self.staged.append((rows, pooled, full))
        if start + rows >= min(self.total, self.seen + self.batch):
            self._commit()

    def retry(self) -> None:
        """The batch under way runs again in smaller pieces: forget its pieces so far."""
        self.staged.clear()

    def _commit(self) -> None:
        for rows, pooled, full in self.staged:
            for m, t in pooled.items():
                self.pooled[m].append(t)
            for m, t in full.items():
                self.full[m].append(t)
            self.seen += rows
        self.staged.clear()


def _runner(
    model: Any,
    taps: TapForward | None,
    full: list[str],
    pooled: list[str],
    placement: Placement,
    channels_last: bool,
) -> TapForward:
    """``taps`` when given (it must record what is asked), else torch with forward hooks."""
    if taps is None:
        return TapForward(
            model, full=full, pooled=pooled, placement=placement, channels_last=channels_last
        )
    if not taps.covers(full, pooled):
        raise ValueError("the TapForward given does not record every module the pass needs")
    return taps


def record(
    model: Any,
    train: list,
    val: list,
    *,
    transforms: tuple[Callable, Callable],
    boundaries: list[Boundary],
    cuts: list[Boundary],
    views: int,
    seed: int,
    placement: Placement,
    channels_last: bool,
    workers: int,
    batch_size: int = 64,
    task: Task | None = None,
    taps: TapForward | None = None,
    timing: FeedTiming | None = None,
    shard: Dist = SINGLE,
) -> Recording:
    """Record the training images' clean and augmented views (and the validation images).

    ``taps``: the forward pass to use (see :func:`engine.frozen.taps.run_taps`; it must tap the
    ``boundaries`` and keep the ``cuts`` whole); torch with forward hooks when None. ``timing``,
    when given, adds up where the pass spent its time. ``task`` gets ``(done, total)`` images
    of both passes together, and a pause or cancel holds or stops them (see
    :func:`engine.training.features.extract_features`). ``shard``: this process's share of a
    job's passes, all of them gathered (every rank must call this with the same data)."""
    eval_t, train_t = transforms
    n = len(train)
    parts: list[Any] = [ImageDataset(train, eval_t, seed=seed)]
    if views > 1:
        parts.append(ImageDataset(train, train_t, seed=seed, views=views - 1))
    pooled_names = [b.module for b in boundaries]
    cut_names = [c.module for c in cuts]
    run = _runner(model, taps, cut_names, pooled_names, placement, channels_last)
    total = n * views + len(val)

    def progress(offset: int, dist: Dist) -> Task:
        report = task.report if task is not None else None
        if report is None or not dist.active:
            return counting(task, report, offset=offset, total=total)
        return counting(task, lambda done, _: report(min(total, offset + done * dist.world), total))

    common = _pass_settings(placement, batch_size, workers, timing)
    train_dist = _sharding(shard, n * views)
    mine = train_dist.shard(n * views)
    clean = len(train_dist.shard(n))  # the clean view's rows come first in every shard
    collect = _Collector(run, pooled_names, cut_names, clean, len(mine), batch_size)
    features = extract_features(
        run,
        _part(ConcatDataset(parts), mine, train_dist),
        task=progress(0, train_dist),
        after_batch=collect,
        on_retry=collect.retry,
        **common,
    )
    val_dist = _sharding(shard, len(val))
    val_mine = val_dist.shard(len(val))
    val_collect = _Collector(run, [], cut_names, len(val_mine), len(val_mine), batch_size)
    val_features = extract_features(
        run,
        _part(ImageDataset(val, eval_t, seed=seed), val_mine, val_dist),
        task=progress(n * views, val_dist),
        after_batch=val_collect,
        on_retry=val_collect.retry,
        **common,
    )
    labels = torch.tensor([s.label for s in train])
    gather = train_dist.gather_rows
    return Recording(
        views=views,
        labels=labels,
        pooled={m: gather(torch.cat(v), n) for m, v in collect.pooled.items()},
        features=gather(features, n * views),
        activations={
            m: gather(torch.cat(v), n * views).view(views, n, *v[0].shape[1:])
            for m, v in collect.full.items()
        },
        val_features=val_dist.gather_rows(val_features, len(val)),
        val_activations={
            m: val_dist.gather_rows(torch.cat(v), len(val))
            for m, v in val_collect.full.items()
            if v
        },
    )


def _sharding(dist: Dist, rows: int) -> Dist:
    """``dist`` when each of its ranks has at least one of ``rows`` (a pass every rank can
    share), else a 1-process Dist: every rank then runs the whole (short) pass itself."""
    return dist if dist.active and rows >= dist.world else SINGLE


def _scaled(task: Task, total: int, world: int) -> Task:
    """``task`` told of a share of a pass of ``total`` items as of the whole pass (each of the
    ``world`` ranks runs about as many)."""
    return counting(task, lambda done, _: task.report(min(total, done * world), total))


def _part(dataset: Any, mine: list[int], dist: Dist) -> Any:
    """This rank's items of ``dataset`` (all of them on one process)."""
    return Subset(dataset, mine) if dist.active else dataset


def _pass_settings(
    placement: Placement,
    batch_size: int,
    workers: int,
    timing: FeedTiming | None,
) -> dict[str, Any]:
    """The extract_features arguments every recording pass shares."""
    return {
        "placement": placement,
        "channels_last": False,  # the runner lays the batch out for its runtime
        "batch_size": batch_size,
        "workers": workers,
        "timing": timing,
    }


def add_views(
    model: Any,
    clean: Recording,
    train: list,
    *,
    train_transform: Callable,
    cuts: list[Boundary],
    views: int,
    seed: int,
    placement: Placement,
    channels_last: bool,
    workers: int,
    batch_size: int = 64,
    task: Task | None = None,
    taps: TapForward | None = None,
    timing: FeedTiming | None = None,
    shard: Dist = SINGLE,
) -> Recording:
    """``clean`` (a one-view recording holding the ``cuts``) with ``views - 1`` augmented views
    of each training image added. Only the new views run through the network (in ``taps`` when
    given, the runner that recorded ``clean``); the result is the recording :func:`record`
    would make with ``views`` (the same datasets and draws). ``task`` gets ``(done, total)`` of
    the new views only. ``shard``: as for :func:`record`."""
    n = len(train)
    names = [c.module for c in cuts]
    run = _runner(model, taps, names, [], placement, channels_last)
    added = n * (views - 1)
    dist = _sharding(shard, added)
    mine = dist.shard(added)
    collect = _Collector(run, [], names, 0, len(mine), batch_size)
    new = ImageDataset(train, train_transform, seed=seed, views=views - 1)
    features = extract_features(
        run,
        _part(new, mine, dist),
        task=task if task is None or not dist.active else _scaled(task, added, dist.world),
        after_batch=collect,
        on_retry=collect.retry,
        **_pass_settings(placement, batch_size, workers, timing),
    )
    features = dist.gather_rows(features, added)
    activations = {}
    for m in names:
        first = clean.activations[m].reshape(n, *clean.activations[m].shape[2:])
        both = torch.cat([first, dist.gather_rows(torch.cat(collect.full[m]), added)])
        activations[m] = both.view(views, n, *first.shape[1:])
    return Recording(
        views=views,
        labels=clean.labels,
        pooled=clean.pooled,
        features=torch.cat([clean.features, features]),
        activations=activations,
        val_features=clean.val_features,
        val_activations=clean.val_activations,
    )
