"""Training batches for text models: tokenized once, dynamically padded, bucketed by length."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from engine.data.tokens import TokenizedTexts, length_batches, sorted_batches
from engine.distributed import SINGLE, Dist
from engine.events import StageProgressed
from engine.frozen.keys import cache_key
from engine.task import counting
from engine.training.features import fitting, load_cached, store_cached
from engine.training.inputs import text_samples
from engine.training.loaders import epoch_permutation
from engine.training.pipeline import Batch, FeaturePipeline, Pipeline

_INFERENCE_BATCH = 64

# Default epochs of a text run: enough passes over the training set to see about this many texts,
# within [MIN, MAX]. Short messages converge in 2-3 passes over a few thousand texts (measured in
# docs/benchmarks.md, "Texts"); small sets need more passes to take enough optimisation steps.
TEXT_TEXTS_SEEN = 12_000
MIN_TEXT_EPOCHS = 2
MAX_TEXT_EPOCHS = 10


def text_epochs(n_train: int) -> int:
    """Default epochs of a text run (LoRA, fine-tuning or a probe) with ``n_train`` training
    texts: ceil(12,000 / n_train), at least 2 and at most 10; 5,500 messages give 3."""
    if n_train <= 0:
        return MAX_TEXT_EPOCHS
    wanted = -(-TEXT_TEXTS_SEEN // n_train)
    return max(MIN_TEXT_EPOCHS, min(MAX_TEXT_EPOCHS, wanted))


class TextPipeline(Pipeline):
    """Texts through the (partly trainable or LoRA-adapted) transformer, batch by batch."""

    unit = "texts"

    def prepare(self) -> None:
        self.train_tokens, self.val_tokens = tokenize_splits(self)

    def _order(self, epoch: int) -> list[list[int]]:
        seed = self.config.seed
        order = epoch_permutation(len(self.train_tokens), seed, epoch)
        return length_batches(
            order,
            self.train_tokens.lengths,
            self.batch_size,
            bucketing=self.config.data.length_bucketing,
            seed=seed * 7919 + epoch,
        )

    def train_batches(self, epoch: int, start_step: int) -> Iterator[Batch]:
        dist = self.ctx.dist
        for idx in self._order(epoch)[start_step:]:
            if dist.active:  # this rank's rows of the global batch, as ShardedBatches cuts them
                idx = idx[dist.rank :: dist.world] or idx[:1]
            yield self._batch(self.train_tokens, idx)

    def forward(self, x: Any) -> torch.Tensor:
        return (self.model if self.wrapped is None else self.wrapped)(x)

    @torch.inference_mode()
    def validation_logits(self) -> Batch:
        self.model.eval()
        classes = len(self.data.classes)
        logits = in_shards(self, self.model, self.val_tokens, self.ctx.dist, width=classes)
        self.model.train()
        return logits, self.val_tokens.labels

    def _batch(self, tokens: TokenizedTexts, idx: list[int]) -> Batch:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in tokens.batch(idx).items()}
        return batch, tokens.labels[idx].to(self.device, non_blocking=True)  # type: ignore[return-value]


class TextFeaturePipeline(FeaturePipeline):
    """The text backbone is frozen: each text's pooled features are computed once and cached."""

    unit = "texts"

    def __init__(self, ctx: Any, *, alone: bool = False) -> None:
        super().__init__(ctx)
        #: ``alone``: this process computes every feature itself, with no collective (the
        #: advisor runs on rank 0 alone); else a job's ranks each compute their share.
        self.dist: Dist = SINGLE if alone else ctx.dist

    def prepare(self) -> None:
        t, dist = self.ctx, self.dist
        self.views = 1
        key = self._text_key()
        cache_dir = t.workspace.cache_root / "features"
        paths = (cache_dir / f"{key}-train.safetensors", cache_dir / f"{key}-val.safetensors")
        rows = (len(self.data.train), len(self.data.val))
        width = self.model.num_features  # a file of another network's width is not used
        found = [
            fitting(load_cached(p), n, width) if dist.is_main else None
            for p, n in zip(paths, rows, strict=True)
        ]
        found = dist.broadcast(found)  # several processes: what rank 0 found in the cache
        if all(f is not None for f in found):
            t.log("Backbone features loaded from the cache; training only the head.")
        else:
            tokens = dict(zip(("train", "val"), tokenize_splits(self), strict=True))
            encoder = self._shared_encoder(tokens["train"])
            for i, split in enumerate(("train", "val")):
                if found[i] is not None:
                    continue
                t.log(
                    f"Computing backbone features of {rows[i]} {_SPLIT_WORD[split]} texts "
                    f"once ({self.device.type}); the head then trains on them."
                )
                found[i] = in_shards(
                    self, encoder, tokens[split], dist, width=width, stage="features"
                )
                if dist.is_main:
                    store_cached(paths[i], found[i])
        train, val = found
        assert train is not None and val is not None
        self.train_features = train.view(1, rows[0], -1).to(self.device)
        self.train_labels = torch.tensor([s.label for s in self.data.train], device=self.device)
        self.val_features = val.to(self.device)
        self.val_labels = torch.tensor([s.label for s in self.data.val])

    def _shared_encoder(self, tokens: TokenizedTexts) -> torch.nn.Module:
        """The frozen encoder; in a job, rank 0 makes (exports and checks) it first, so that the
        other ranks find its export in the workspace cache instead of exporting it again."""
        if not self.dist.is_main:
            self.dist.barrier()
        encoder = self._frozen_encoder(tokens)
        if self.dist.is_main:
            self.dist.barrier()
        return encoder

    def _frozen_encoder(self, tokens: TokenizedTexts) -> torch.nn.Module:
        """The backbone in onnxruntime where that is allowed, possible and checked; else torch."""
        from engine.frozen.text import ort_text_encoder, text_runtime_enabled

        backbone, cfg = self.model.backbone, self.config
        cpu_fp32 = self.device.type == "cpu" and "32" in str(self.placement.precision)
        if not (cpu_fp32 and cfg.model.pretrained and len(tokens) and text_runtime_enabled(cfg)):
            return backbone
        key = self._encoder_key()
        if key is None:
            return backbone
        # The check batch: real training texts, the longest and the shortest of the set.
        order = sorted(range(len(tokens)), key=lambda i: -tokens.lengths[i])
        sample = tokens.batch(order[:8] + order[-8:] if len(order) > 16 else order)
        cache_dir = self.ctx.workspace.cache_root / "onnx"
        encoder = ort_text_encoder(backbone, cache_dir, key, sample, self.ctx.log)
        return encoder if encoder is not None else backbone

    def _encoder_key(self) -> str | None:
        from engine.frozen.text import probe_encoder_key

        return probe_encoder_key(
            self.model.entry, weights=self.config.model.weights, max_length=self.ctx.max_length
        )

    def _text_key(self) -> str:
        from engine.models import weights_status

        cfg = self.config
        return cache_key(
            {
                "v": 1,
                "kind": "text",
                "backbone": cfg.model.backbone,
                "pretrained": cfg.model.pretrained,
                "weights": weights_status(cfg.model.backbone, cfg.model.weights).source,
                "max_length": self.ctx.max_length,
                "precision": str(self.placement.precision),
                "train": [s.digest for s in self.data.train],
                "val": [s.digest for s in self.data.val],
                "torch": torch.__version__,
            }
        )


_SPLIT_WORD = {"train": "training", "val": "validation"}


def tokenize_splits(pipeline: Pipeline) -> tuple[TokenizedTexts, TokenizedTexts]:
    """Token ids of the training and validation texts, with progress events."""
    t = pipeline.ctx
    tokenizer, limit = pipeline.model.tokenizer, t.max_length
    n_train = len(pipeline.data.train)
    total = n_train + len(pipeline.data.val)

    def progress(done: int, total: int) -> None:
        t.emit(StageProgressed(stage="tokenize", done=done, total=total))

    train = TokenizedTexts(
        text_samples(pipeline.data.train),
        tokenizer,
        limit,
        task=counting(t.task, progress, total=total),
    )
    val = TokenizedTexts(
        text_samples(pipeline.data.val),
        tokenizer,
        limit,
        task=counting(t.task, progress, offset=n_train, total=total),
    )
    cut = sum(1 for n in train.lengths + val.lengths if n >= limit)
    if cut:
        t.log(f"{cut} of {total} texts are longer than {limit} tokens and were cut to that length.")
    return train, val


def in_shards(
    pipeline: Pipeline,
    module: torch.nn.Module,
    tokens: TokenizedTexts,
    dist: Dist,
    *,
    width: int,
    stage: str = "",
) -> torch.Tensor:
    """:func:`run_in_order` over every text (``width`` outputs each); in a job, each rank runs
    its interleaved share and every rank gets all the rows back in the texts' order."""
    if not dist.active:
        return run_in_order(pipeline, module, tokens, stage)
    n = len(tokens)
    part = run_in_order(pipeline, module, tokens.subset(dist.shard(n)), stage)
    if part.ndim != 2:  # a rank without texts (fewer texts than ranks)
        part = torch.empty(0, width)
    return dist.gather_rows(part, n)


@torch.inference_mode()
def run_in_order(
    pipeline: Pipeline, module: torch.nn.Module, tokens: TokenizedTexts, stage: str = ""
) -> torch.Tensor:
    """``module`` over every text (longest first, in eval mode), returned in the texts' order."""
    was_training = module.training
    module.eval()
    task, device = pipeline.ctx.task, pipeline.device
    outputs: list[torch.Tensor] = []
    order: list[int] = []
    done = 0

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with pipeline.placement.autocast():
            return module(batch).float().cpu()

    try:
        for idx in sorted_batches(tokens.lengths, max(_INFERENCE_BATCH, pipeline.batch_size)):
            task.check()
            batch = {k: v.to(device) for k, v in tokens.batch(idx).items()}
            outputs.append(pipeline.inference.map(forward, batch))
            order.extend(idx)
            done += len(idx)
            if stage:
                pipeline.ctx.emit(StageProgressed(stage=stage, done=done, total=len(tokens)))
    finally:
        module.train(was_training)
    if not outputs:
        return torch.empty(0)
    stacked = torch.cat(outputs)
    result = torch.empty_like(stacked)
    result[torch.tensor(order)] = stacked
    return result
