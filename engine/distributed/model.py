"""The model of a job of several processes: DDP around the run's model for the training
forward pass (the unwrapped model stays ``ctx.model``: checkpoints, validation and export see
it), with SyncBatchNorm when the config asks for it. A text run's LoRA model is wrapped the same
way: DDP reduces the gradients of the parameters that train (adapters and head) and skips the
frozen ones, so it needs no ``find_unused_parameters``."""

from __future__ import annotations

from typing import Any

from torch import nn


class DistributedUnsupported(ValueError):
    """This run's kind cannot train on several processes (yet)."""


def wrap_for_training(ctx: Any, pipeline: Any) -> None:
    """Wrap ``ctx.model`` in DDP for ``pipeline``'s training forward pass. A linear probe on
    cached features is not wrapped: its features are computed in shards and gathered, and the
    probe's deterministic fit runs the same on every rank (rank 0's result is the one kept).
    A run on a cached frozen prefix is wrapped like one through the network: its activations
    are computed in shards and gathered, and each rank trains on its rows of each batch."""
    from torch.nn.parallel import DistributedDataParallel

    from engine.training.pipeline import FeaturePipeline, ImagePipeline
    from engine.training.prefix_pipeline import PrefixPipeline
    from engine.training.text_pipeline import TextPipeline

    if isinstance(pipeline, FeaturePipeline):
        return
    if type(pipeline) not in (ImagePipeline, PrefixPipeline, TextPipeline):
        raise DistributedUnsupported(
            f"Training on several processes supports image runs (through the network, on a "
            f"cached frozen prefix, or linear probes) and text runs; this run's "
            f"{type(pipeline).__name__} trains on one process, so start it without --nproc."
        )
    model: nn.Module = ctx.model
    device = ctx.placement.device
    if ctx.config.device.sync_batchnorm:
        if device.type == "cuda":
            nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ctx.log("SyncBatchNorm: batch-norm statistics are computed over every process.")
        else:
            ctx.log(
                "SyncBatchNorm needs CUDA; on the CPU each process keeps its own batch-norm "
                "statistics.",
                level="warning",
            )
    ids = [device.index if device.index is not None else ctx.dist.local_rank]
    # No buffer broadcast before each forward: rank 0's buffers (the ones it saves, and that
    # validation broadcasts) are the same without it, and a forward that ran out of memory on
    # one rank alone would have broadcast once more than the others, desynchronising the job.
    pipeline.wrapped = DistributedDataParallel(
        model, device_ids=ids if device.type == "cuda" else None, broadcast_buffers=False
    )
