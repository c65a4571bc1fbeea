"""The checkpoints' callback: best weights when the monitored metric improves, the last state
(everything a resume needs) every epoch, and the run's final checkpoints and LoRA adapter."""

from __future__ import annotations

import copy
from typing import Any

import torch

from engine.events import CheckpointSaved, EpochEnded, RunStatus
from engine.training.callbacks import Callback
from engine.training.checkpoint import (
    NonFiniteWeightsError,
    commit_last,
    load_weights,
    rng_state,
    save_weights,
)
from engine.training.checkpoint_files import BEST
from engine.training.context import RunContext
from engine.training.divergence import Diverged


def training_state(ctx: RunContext) -> dict[str, Any]:
    """What a resumable checkpoint holds besides the weights: optimizer, scheduler, scaler, RNG,
    divergence reference, loop position and best epoch; plain tensors and numbers only."""
    state: dict[str, Any] = {
        **ctx.optimization.state_dict(),
        "rng": rng_state(),
        "divergence": ctx.divergence.state_dict(),
        **ctx.loop.state_dict(),
        **ctx.best.state_dict(),
    }
    state["micro_batch"] = ctx.micro.size  # 0: whole batches; else the out-of-memory split
    return state


class Checkpointer(Callback):
    """Saves the best weights when the monitored metric improves, and the last state every epoch.

    With cached features an epoch takes milliseconds, so writing the whole network every epoch
    would dominate; the head (all that changes: the backbone never runs) is snapshotted in
    memory and written when the run ends.
    """

    order = 10

    def __init__(self) -> None:
        self.best_snapshot: dict[str, torch.Tensor] | None = None
        self.finishing = False  # the run is ending: a cached-feature run writes its last state

    def on_epoch_ended(self, event: EpochEnded, ctx: RunContext) -> None:
        if event.is_best:
            self.save(ctx, "best")
        self.save(ctx, "last")

    def save(self, ctx: RunContext, kind: str) -> None:
        """``best``: weights; ``last``: weights plus everything needed to resume."""
        if ctx.feature_cache and kind == "best":
            self.best_snapshot = copy.deepcopy(ctx.model.head.state_dict())
            return
        if ctx.feature_cache and kind == "last" and not self.finishing:
            return
        self.write(ctx, kind)

    def write(self, ctx: RunContext, kind: str) -> None:
        if not ctx.dist.is_main:  # several processes: rank 0 alone writes the run folder
            return
        ckpt, loop = ctx.run.checkpoints, ctx.loop
        try:
            if kind == "last":
                state = training_state(ctx)
                path = commit_last(
                    ckpt, ctx.model, state, epoch=loop.epoch, global_step=loop.global_step
                ).weights
            else:
                metadata = {"epoch": str(loop.epoch), "kind": kind}
                path = save_weights(ctx.model, ckpt / f"{kind}.safetensors", metadata=metadata)
        except NonFiniteWeightsError as exc:
            what = f"the weights became NaN or infinite by step {loop.global_step}"
            raise Diverged(what, ctx.optimization.lr) from exc
        ctx.emit(CheckpointSaved(path=str(path), kind=kind, epoch=loop.epoch))

    def finish(self, ctx: RunContext, status: RunStatus) -> None:
        """The in-memory best of a cached-feature run, the last state (not after divergence:
        those weights are broken), and a LoRA run's adapter."""
        if self.best_snapshot is not None:
            head = ctx.model.head
            current = copy.deepcopy(head.state_dict())
            head.load_state_dict(self.best_snapshot)
            self.write(ctx, "best")
            head.load_state_dict(current)
        if status is not RunStatus.DIVERGED:
            self.write(ctx, "last")
        save_adapter(ctx)

    def load_best(self, ctx: RunContext, tensors: dict[str, torch.Tensor]) -> None:
        """A resumed cached-feature run: its in-memory best is the best checkpoint's head."""
        if ctx.feature_cache:
            device = ctx.placement.device
            self.best_snapshot = {
                k.removeprefix("head."): v.to(device)
                for k, v in tensors.items()
                if k.startswith("head.")
            }


def save_adapter(ctx: RunContext) -> None:
    """A LoRA run also leaves its best adapter in peft's format (and the merged model)."""
    from engine.models.lora import ADAPTER_DIR, MERGED_DIR, is_lora, save_merged
    from engine.models.lora import save_adapter as save_peft_adapter

    if not is_lora(ctx.model) or not ctx.dist.is_main:
        return
    best = ctx.run.checkpoints / BEST
    model = copy.deepcopy(ctx.model).cpu()
    if best.is_file():
        load_weights(model, best)
    classes = list(ctx.data.classes)
    folder = save_peft_adapter(model, ctx.run.path / ADAPTER_DIR, classes)
    ctx.log(f"LoRA adapter saved in peft's format: {folder}")
    if ctx.config.adapt.lora_save_merged:
        merged = save_merged(model, ctx.run.path / MERGED_DIR)
        ctx.log(f"Model with the adapter merged into its weights saved: {merged}")
