"""Where training batches come from: images through the network, or cached features."""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import ConcatDataset, Subset

from engine.config import AugmentPreset
from engine.data import ImageDataset, prefetch
from engine.events import StageProgressed
from engine.frozen import FrozenForward
from engine.frozen.forward import CHECK_ROWS
from engine.frozen.keys import backbone_parts, cache_key, weights_stamp
from engine.modalities import modality_of
from engine.task import counting
from engine.training.context import RunContext
from engine.training.features import (
    FeedTiming,
    extract_features,
    fitting,
    load_cached,
    store_cached,
)
from engine.training.inputs import image_samples
from engine.training.loaders import (
    auto_workers,
    batches_of,
    decode_threads,
    epoch_permutation,
    feeder_text,
    make_loader,
)
from engine.training.oom import MicroBatcher, inference_shrink_sentence

Batch = tuple[torch.Tensor, torch.Tensor]


class Pipeline(ABC):
    """Feeds the trainer: ``train_batches``, ``forward`` and ``validation_logits``."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.model = ctx.model
        self.placement = ctx.placement
        self.device = ctx.placement.device
        self.data = ctx.data
        self.batch_size = self.config.schedule.batch_size
        self.workers = auto_workers(self.config.data.num_workers)
        self.inference = MicroBatcher(
            self.device, what="validation", on_shrink=self._on_inference_shrink
        )
        self.wrapped: Any = None  # the DDP-wrapped model a job of several processes trains
        transforms = modality_of(self.model).transforms(self.model.preprocess, self.config.augment)
        if transforms is not None:
            self.eval_transform, self.train_transform = transforms

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.data.train) / self.batch_size))

    @abstractmethod
    def prepare(self) -> None:
        """Build loaders or compute features; called once before training."""

    @abstractmethod
    def train_batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        """Implemented by each pipeline."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Implemented by each pipeline."""

    @abstractmethod
    def validation_logits(self) -> Batch:
        """Implemented by each pipeline."""

    def no_sync(self) -> contextlib.AbstractContextManager[Any]:
        """Around the forward and backward of every micro-batch but a step's last: DDP then
        all-reduces the gradients once per step, however many micro-batches this rank runs
        (after an out-of-memory on its GPU alone)."""
        return self.wrapped.no_sync() if self.wrapped is not None else contextlib.nullcontext()

    def _on_inference_shrink(self, rows: int, size: int) -> None:
        sentence = inference_shrink_sentence(self.device, "validation", rows, size)
        self.ctx.log(sentence, level="warning")

    #: What one training sample is, for log lines and speed labels.
    unit = "images"
    #: Whether frozen layers run once over the data (where onnxruntime can run them).
    frozen_compute = False

    def _to_device(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        x = x.to(self.device, non_blocking=True)
        if self.ctx.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)


class ImagePipeline(Pipeline):
    """Images are decoded, augmented and passed through the (partly trainable) network."""

    def prepare(self) -> None:
        pin = self.device.type == "cuda"
        seed = self.config.seed
        train_ds = ImageDataset(image_samples(self.data.train), self.train_transform, seed=seed)
        val_ds: Any = ImageDataset(image_samples(self.data.val), self.eval_transform, seed=seed)
        dist = self.ctx.dist
        if dist.active:  # validation: each rank its interleaved share, gathered back in order
            val_ds = Subset(val_ds, dist.shard(len(val_ds)))
        self.train_loader, self.train_sampler = make_loader(
            train_ds,
            batch_size=self.batch_size,
            seed=seed,
            shuffle=True,
            workers=self.workers,
            pin=pin,
            shard=(dist.rank, dist.world) if dist.active else None,
        )
        self.val_loader, _ = make_loader(
            val_ds,
            batch_size=self.batch_size,
            seed=seed,
            shuffle=False,
            workers=self.workers,
            pin=pin,
        )

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        self.train_sampler.set_position(epoch, start_step * self.batch_size)
        for x, y in self.train_loader:
            yield self._to_device(x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.model if self.wrapped is None else self.wrapped)(x)

    def _eval_forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.placement.autocast():
            return self.model(x).float().cpu()

    @torch.inference_mode()
    def validation_logits(self) -> Batch:
        self.ctx.dist.sync_buffers(self.model)  # several processes: rank 0's statistics
        self.model.eval()
        logits, targets = [], []
        dist, n = self.ctx.dist, len(self.data.val)
        try:
            for x, y in self.val_loader:
                x, y = self._to_device(x, y)
                logits.append(self.inference.map(self._eval_forward, x))
                targets.append(y.cpu())
        except Exception as exc:
            if not dist.active:
                raise
            # This rank's share failed (a corrupt image): every rank stops with its sentence
            # instead of waiting for its rows.
            dist.agree(self.ctx.rank_failure(exc), self.device, exc)
        self.model.train()
        if dist.active:
            dist.agree("", self.device)
            return dist.gather_rows(torch.cat(logits), n), dist.gather_rows(torch.cat(targets), n)
        return torch.cat(logits), torch.cat(targets)


class FeaturePipeline(Pipeline):
    """The backbone is frozen: its features are computed once (clean view plus K-1 augmented
    views of each training image), cached on disk, and the head trains on them."""

    frozen_compute = True

    def prepare(self) -> None:
        t = self.ctx
        seed = self.config.seed
        extra_views = _augmented_views(self.config)
        clean = ImageDataset(image_samples(self.data.train), self.eval_transform, seed=seed)
        parts: list[Any] = [clean]
        if extra_views:
            parts.append(
                ImageDataset(
                    image_samples(self.data.train),
                    self.train_transform,
                    seed=seed,
                    views=extra_views,
                )
            )
        self.views = 1 + extra_views
        n = len(self.data.train)
        key = self._key(extra_views)
        cache_dir = t.workspace.cache_root / "features"
        paths = (cache_dir / f"{key}-train.safetensors", cache_dir / f"{key}-val.safetensors")
        # The Recommended method's pass over the same images and views already holds them.
        rec = t.advice_recording  # gathered on every rank of a job of several processes
        t.advice_recording = None
        if rec is not None and rec.views == self.views and rec.val_features is not None:
            train, val = rec.features, rec.val_features
            if t.dist.is_main:
                store_cached(paths[0], train)
                store_cached(paths[1], val)
        else:
            val_ds = ImageDataset(image_samples(self.data.val), self.eval_transform, seed=seed)
            if clean.view is not None and prefetch.computing_features(
                clean.view, clean.dicom_window
            ):
                _import_head_libraries()  # while the prefetching child runs the backbone
            train, val = self._features(paths, (ConcatDataset(parts), val_ds))
        self.train_features = train.view(self.views, n, -1).to(self.device)
        self.train_labels = torch.tensor([s.label for s in self.data.train], device=self.device)
        self.val_features = val.to(self.device)
        self.val_labels = torch.tensor([s.label for s in self.data.val])

    def _features(self, paths: tuple[Path, ...], datasets: tuple[Any, ...]) -> list[torch.Tensor]:
        """The cached features of each dataset; the missing ones computed in one pass (one set of
        loader workers), then cached."""
        width = self.model.num_features  # a file of another network's width is not used
        dist = self.ctx.dist
        found = [
            fitting(load_cached(p), len(d), width) if dist.is_main else None
            for p, d in zip(paths, datasets, strict=True)
        ]
        found = dist.broadcast(found)  # several processes: what rank 0 found in the cache
        missing = [i for i, tensor in enumerate(found) if tensor is None]
        if not missing:
            self.ctx.log("Backbone features loaded from the cache; training only the head.")
            return [t for t in found if t is not None]
        together = self._extract(ConcatDataset([datasets[i] for i in missing]))
        sizes = [len(datasets[i]) for i in missing]
        for i, part in zip(missing, together.split(sizes), strict=True):
            if dist.is_main:
                store_cached(paths[i], part)
            found[i] = part
        return [t for t in found if t is not None]

    def _extract(self, dataset: Any) -> torch.Tensor:
        t = self.ctx
        t.log(
            f"Computing backbone features of {len(dataset)} images once "
            f"({self.device.type}); the head then trains on them."
        )

        def progress(done: int, total: int) -> None:
            t.emit(StageProgressed(stage="features", done=done, total=total))

        forward = FrozenForward(
            self.model.backbone,
            placement=self.placement,
            runtime=self.config.device.runtime,
            cache_dir=t.workspace.cache_root / "onnx",
            key_parts=backbone_parts(self.config, self.model.preprocess.input_size),
            log=lambda text, level: t.log(text, level=level),
            what="the frozen backbone",
            channels_last=t.channels_last,
        )
        if t.dist.active:  # each rank its interleaved share, all gathered in dataset order
            return self._extract_shard(forward, dataset, progress)
        items = _item_paths(dataset)
        view = _one_view(items)  # the prefetching child's views, when every item is one
        made = _export_for_the_child(forward, items, view)
        if view is not None:  # the child runs the backbone: it finishes, on this run's threads
            prefetch.finish_features(
                *view,
                threads=torch.get_num_threads(),
                accept=forward.accepts,
                progress=lambda done: progress(min(done, len(dataset)), len(dataset)),
                check=t.task.check,
                found_s=prefetch.FOUND_S if made else 0.0,
                paths={path for made_by, path in items if made_by is not None},
            )
        early = _early_rows(forward, items, view, self.model.num_features)
        rest = [i for i in range(len(dataset)) if i not in early]
        if not rest:
            progress(len(dataset), len(dataset))
            return torch.stack([early[i] for i in range(len(dataset))])
        ready = _ready_rows(items, view, rest)  # normalised by the child while it waited
        if not early and not ready:
            return self._pass(forward, dataset, progress)
        if ready:
            self.ctx.log(
                f"The second process had made the network's input of {len(ready)} more images "
                "while it waited for the export; only the network runs on them here."
            )
        unready = [i for i in rest if i not in ready]
        order = [*ready, *unready]
        parts: list[Any] = [ReadyRows([ready[i] for i in ready])] if ready else []
        if unready:
            parts.append(Subset(dataset, unready))
        computed = self._pass(
            forward,
            ConcatDataset(parts),
            lambda done, total: progress(done + len(early), len(dataset)),
        )
        features = torch.empty(len(dataset), computed.shape[1], dtype=computed.dtype)
        features[order] = computed
        if early:
            features[list(early)] = torch.stack(list(early.values())).to(computed.dtype)
        return features

    def _extract_shard(self, forward: FrozenForward, dataset: Any, progress: Any) -> torch.Tensor:
        """A job of several processes: this rank's rows of ``dataset`` through the backbone,
        then every rank's rows gathered back in dataset order (the same features a 1-process
        pass computes, row for row)."""
        dist, n = self.ctx.dist, len(dataset)
        part = Subset(dataset, dist.shard(n))
        computed = self._pass(
            forward, part, lambda done, total: progress(min(n, done * dist.world), n), said=False
        )
        whole = dist.gather_rows(computed, n)
        progress(n, n)
        return whole

    def _pass(
        self, forward: FrozenForward, part: Any, progress: Any, *, said: bool = True
    ) -> torch.Tensor:
        """``part``'s features through ``forward``, fed by threads or loader workers, its
        progress to ``progress(done, total)``; ``said``: the pass's feeding goes in the log."""
        t = self.ctx
        timing = FeedTiming()
        threads = decode_threads(self.device, part)
        computed = extract_features(
            forward,
            part,
            placement=self.placement,
            channels_last=False,
            batch_size=max(64, self.batch_size),
            workers=self.workers,
            task=counting(t.task, progress),
            on_log=lambda text: t.log(text, level="warning"),
            timing=timing,
            decode_threads=threads,
        )
        if said:
            t.log(timing.sentence(forward.name, feeder_text(threads, self.workers)))
        return computed

    def _key(self, extra_views: int) -> str:
        cfg = self.config
        return cache_key(
            {
                "v": 1,
                "backbone": cfg.model.backbone,
                "pretrained": cfg.model.pretrained,
                "weights": weights_stamp(cfg),
                "preprocess": repr(self.model.preprocess),
                "augment": [
                    str(cfg.augment.preset),
                    cfg.augment.hflip,
                    cfg.augment.vflip,
                    extra_views,
                    cfg.seed,
                ],
                "channels_last": self.ctx.channels_last,
                "precision": str(self.placement.precision),
                "runtime": str(cfg.device.runtime),
                "train": [s.digest for s in self.data.train],
                "val": [s.digest for s in self.data.val],
                "torch": torch.__version__,
            }
        )

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        n = len(self.data.train)
        seed = self.config.seed
        order = epoch_permutation(n, seed, epoch)
        g = torch.Generator().manual_seed(seed * 7919 + epoch)
        view = torch.randint(self.views, (n,), generator=g).to(self.device)
        for idx in batches_of(order, self.batch_size)[start_step:]:
            i = torch.tensor(idx, device=self.device)
            yield self.train_features[view[i], i], self.train_labels[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.head(x)

    @torch.inference_mode()
    def validation_logits(self) -> Batch:
        head = self.model.head
        head.eval()
        logits = head(self.val_features).float().cpu()
        head.train()
        return logits, self.val_labels


def _import_head_libraries() -> None:
    """The head's fit and its metrics need scikit-learn (about a second to import on one core):
    imported while the prefetching child still runs the backbone on the other, not after it."""
    import sklearn.metrics
    import sklearn.model_selection  # noqa: F401


Items = list[tuple[ImageDataset | None, str]]  # per item of a pass: see _item_paths
View = tuple[Any, str] | None  # (view, DICOM window) of them all: see _one_view


def _export_for_the_child(forward: FrozenForward, items: Items, view: View) -> bool:
    """On a backbone's first run, export and check it now (on the pass's first images): the
    prefetching child, which waits for that export, then runs it over its views on one core while
    this process imports the head's libraries on the other. Whether it made one."""
    if view is None or not prefetch.waiting_for_export(*view):
        return False
    first = []
    for made_by, path in items[:CHECK_ROWS]:  # looked at, not taken: the child goes on
        image = prefetch.peek_view(path, *view) if made_by is not None else None
        if made_by is None or image is None:
            return False
        first.append(cast(Any, made_by.transform).finish(image))  # an evaluation transform
    forward.open_session(torch.stack(first))
    if forward.session is None:
        return False
    _import_head_libraries()
    return True


def _one_view(items: Items) -> View:
    """The (view, DICOM window) every view-made item of a pass shares, or None."""
    views = {(d.view, d.dicom_window) for d, _ in items if d is not None}
    return views.pop() if len(views) == 1 else None


def _early_rows(
    forward: FrozenForward, items: Items, view: View, width: int
) -> dict[int, torch.Tensor]:
    """The features `refit train`'s prefetching child computed for ``items`` (engine/frozen/
    early.py), by item, when ``forward`` accepts the export it ran; {} otherwise (then the pass
    computes every item)."""
    if view is None:
        return {}
    taken = prefetch.take_features(*view)
    if taken is None:
        return {}
    export, rows = taken
    usable = {p: r for p, r in rows.items() if r.shape == (width,)}
    found = {
        i: torch.from_numpy(usable[path])
        for i, (d, path) in enumerate(items)
        if d is not None and path in usable
    }
    if not found or not forward.accept_early(export, len(found)):
        return {}
    return found


class ReadyRows(torch.utils.data.Dataset):
    """Rows that are already the network's input (normalised views the prefetching child made),
    as a deterministic dataset of (row, 0) items for a feature pass."""

    random = False  # engine.training.loaders.deterministic: threads may take items at once

    def __init__(self, rows: list[torch.Tensor]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.rows[i], 0


def _ready_rows(items: Items, view: View, rest: list[int]) -> dict[int, torch.Tensor]:
    """The normalised rows the prefetching child made ahead for ``items[i]``, i in ``rest``
    (engine/data/prefetch.py ``take_normalised``), by item; {} when it made none or when one of
    them is not, bit for bit, what the item's own transform makes of its view (then the pass
    makes every item itself)."""
    if view is None:
        return {}
    wanted: dict[str, list[int]] = {}
    for i in rest:
        made_by, path = items[i]
        if made_by is not None:
            wanted.setdefault(path, []).append(i)
    if not wanted:
        return {}
    probe = next(iter(wanted))
    image = prefetch.peek_view(probe, *view)  # before the rows are taken with their views
    rows = prefetch.take_normalised(list(wanted), *view)
    if image is None or probe not in rows:
        return {}
    made_by = cast(Any, items[wanted[probe][0]][0]).transform
    if not torch.equal(made_by.finish(image), torch.from_numpy(rows[probe])):
        return {}
    ready = {path: torch.from_numpy(row) for path, row in rows.items()}
    return {i: ready[path] for path, at in wanted.items() if path in ready for i in at}


def _item_paths(dataset: Any) -> Items:
    """Per item of ``dataset`` (ImageDatasets, nested in ConcatDatasets): the ImageDataset that
    makes it and its image's path when the item is the evaluation view of that image, else
    (None, "")."""
    parts = getattr(dataset, "datasets", None)
    if parts is not None:
        return [item for part in parts for item in _item_paths(part)]
    if isinstance(dataset, ImageDataset) and not dataset.random and dataset.view is not None:
        made: Items = [(dataset, s.path) for s in dataset.samples]
        return made * dataset.views
    return [(None, "")] * len(dataset)


def _augmented_views(config: Any) -> int:
    if config.augment.preset is AugmentPreset.NONE:
        return 0
    return max(0, config.augment.cache_views - 1)
