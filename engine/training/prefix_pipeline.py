"""Last-n with a cached frozen prefix: the frozen layers run once, the rest trains on the cache.

With ``adapt.cache_prefix`` the activations after the last frozen group are computed once, for
each training image's clean view and ``augment.cache_views - 1`` augmented views (and for the
validation images), and every epoch runs only the trainable layers on them. The activations
stay in memory (half precision); a resumed run computes them again. A run whose recipe came from
the Recommended method reuses the advisor's recording instead of a second pass.

In a job of several processes each rank computes every world-th image's activations and every
rank gets all of them back (in dataset order); each trains on its rows of each global batch, the
rows :class:`engine.training.loaders.ShardedBatches` would give it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from engine.advice.record import Recording, record
from engine.advice.split import Boundary, dummy_input, suffix_only, verified_boundaries
from engine.data import ImageDataset, build_transform
from engine.frozen.taps import run_taps
from engine.modalities import Modality
from engine.task import counting
from engine.training.context import RunContext
from engine.training.inputs import image_samples
from engine.training.loaders import batches_of, epoch_permutation
from engine.training.pipeline import Batch, Pipeline


def prefix_cut(ctx: RunContext, model: Any, frozen: list[str]) -> tuple[Boundary, dict] | None:
    """The verified boundary after the frozen groups, when they are a prefix of the backbone."""
    body = [g.name for g in model.groups if g.name != "head"]
    k = len(frozen)
    if k == 0 or k >= len(body) or set(frozen) != set(body[:k]):  # in any order
        return None
    eval_t = build_transform(model.preprocess, train=False)
    ds = ImageDataset(image_samples(ctx.data.train[:2]), eval_t, seed=ctx.config.seed)
    images = torch.stack([ds[i][0] for i in range(len(ds))]).to(ctx.placement.device)
    bounds, shapes = verified_boundaries(model, images)
    for b in bounds:
        if b.index == k - 1:
            return b, shapes
    return None


def uncached(method: str, model: Any, frozen: list[str], modality: Modality) -> str:
    """Why ``adapt.cache_prefix`` caches nothing for this run (the warning the run logs)."""
    end = "; every epoch runs the whole network."
    if not modality.caches_prefix:
        return (
            f"adapt.cache_prefix applies to images only; every epoch runs the whole "
            f"{modality.name} model."
        )
    if str(method) == "lora":
        return (
            "adapt.cache_prefix is ignored with lora: the adapters sit inside the frozen layers"
            + end
        )
    if not frozen:
        return f"adapt.cache_prefix is ignored: method {method} freezes no layers" + end
    body = [g.name for g in model.groups if g.name != "head"]
    if set(frozen) != set(body[: len(frozen)]):
        return (
            "adapt.cache_prefix needs the frozen layer groups to come first in the network "
            f"(frozen here: {', '.join(frozen)})" + end
        )
    return "The frozen layers of this backbone cannot be cut from the rest and cached" + end


class PrefixPipeline(Pipeline):
    """Trains the layers after ``cut`` on cached activations of the frozen layers before it."""

    frozen_compute = True

    def __init__(self, ctx: RunContext, cut: Boundary, shapes: dict) -> None:
        super().__init__(ctx)
        self.cut, self.shapes = cut, shapes

    def prepare(self) -> None:
        t = self.ctx
        views = max(1, self.config.augment.cache_views)
        rec: Recording | None = t.advice_recording
        if rec is None or self.cut.module not in rec.activations or rec.views != views:
            what = f"the frozen layers (up to {self.cut.group})"
            t.log(
                f"Computing the frozen layers (up to {self.cut.group}) once for {views} view(s) "
                f"of {len(self.data.train)} training images; the layers after them then train "
                "on the cached result."
            )
            rec = record(
                self.model,
                list(self.data.train),
                list(self.data.val),
                transforms=(self.eval_transform, self.train_transform),
                boundaries=[],
                cuts=[self.cut],
                views=views,
                seed=self.config.seed,
                placement=self.placement,
                channels_last=t.channels_last,
                workers=self.workers,
                task=counting(t.task, None),  # the pass reports no progress
                taps=run_taps(  # onnxruntime runs only the frozen layers, up to the cut
                    t, self.model, full=[self.cut.module], pooled=[], what=what, features=False
                ),
                shard=t.dist,
            )
        else:
            t.log("Frozen layers' activations reused from the recipe advisor's pass.")
        self.views = rec.views
        self.train_acts = rec.activations[self.cut.module]
        self.val_acts = rec.val_activations[self.cut.module]
        self.train_labels = torch.tensor([s.label for s in self.data.train])
        self.val_labels = torch.tensor([s.label for s in self.data.val])
        t.advice_recording = None  # the run holds only what it trains on

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        n = len(self.data.train)
        seed = self.config.seed
        order = epoch_permutation(n, seed, epoch)
        g = torch.Generator().manual_seed(seed * 7919 + epoch)
        view = torch.randint(self.views, (n,), generator=g)
        dist = self.ctx.dist
        for idx in batches_of(order, self.batch_size)[start_step:]:
            if dist.active:  # this rank's rows of the global batch, as ShardedBatches cuts them
                idx = idx[dist.rank :: dist.world] or idx[:1]
            i = torch.tensor(idx)
            # indexing drops the channels-last layout; _to_device restores it (several times
            # faster convolutions on the CPU)
            yield self._to_device(self.train_acts[view[i], i].float(), self.train_labels[i])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._suffix(self.model if self.wrapped is None else self.wrapped, x)

    def _suffix(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """``model`` (the classifier, or DDP around it) run on activations ``x`` at the cut."""
        with suffix_only(self.model, self.cut, x, self.shapes):
            return model(dummy_input(len(x), 8, self.device))

    @torch.inference_mode()
    def validation_logits(self) -> Batch:
        self.ctx.dist.sync_buffers(self.model)  # several processes: rank 0's statistics
        self.model.eval()
        logits = []
        for i in range(0, len(self.val_acts), 64):
            x, _ = self._to_device(self.val_acts[i : i + 64].float(), self.val_labels[:0])
            with self.placement.autocast():
                logits.append(self._suffix(self.model, x).float().cpu())
        self.model.train()
        return torch.cat(logits), self.val_labels
