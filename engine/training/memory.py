"""Before launch: how much memory one training step will need, and how much the device has.

Parameters, gradients and optimizer state are counted; the activations saved for backward are
measured, not guessed: one forward pass on random inputs of one and of two examples records
every tensor autograd saves (deduplicated by storage), which gives a per-example and a fixed
part. A run whose backbone is frozen only computes features, so its peak is the backbone's
inference activations (the largest input plus output of any layer) at the extraction batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.config import Method, Optimizer, RunConfig
from engine.modalities import modality_of
from engine.models.classifier import Classifier
from engine.training.devices import Placement, resolve_placement

#: Part of the free memory a run may plan to use; the rest covers the allocator's
#: fragmentation, library workspaces and backward's transient gradients.
HEADROOM = 0.85
_GB = 1e9
_DEVICE_WORDS = {"cuda": "the CUDA GPU", "mps": "the Apple GPU", "cpu": "the CPU"}


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one training step (or of feature extraction) and the device's memory."""

    device_type: str  # cuda, mps or cpu
    batch_size: int  # training batch, or the feature-extraction batch when ``cached``
    parameters: int
    gradients: int
    optimizer: int
    fixed_activations: int  # saved tensors that do not grow with the batch
    per_example: int  # saved activation bytes per example (image or text)
    available: int | None  # bytes the run may use on the device; None when unknown
    cached: bool = False

    @property
    def peak(self) -> int:
        return self.peak_for(self.batch_size)

    def peak_for(self, batch: int) -> int:
        """Peak bytes with ``batch`` examples per step."""
        state = self.parameters + self.gradients + self.optimizer + self.fixed_activations
        return state + self.per_example * batch

    @property
    def fits(self) -> bool:
        return self.available is None or self.peak <= HEADROOM * self.available

    def largest_batch(self) -> int:
        """The largest power of two that likely fits (0: not even one example); the batch
        itself when nothing is known about the device."""
        if self.available is None:
            return self.batch_size
        room = HEADROOM * self.available - self.peak_for(0)
        if room < self.per_example:
            return 0
        most = int(room // max(1, self.per_example))
        return 1 << (most.bit_length() - 1)

    def sentence(self) -> str:
        where = _DEVICE_WORDS.get(self.device_type, self.device_type)
        what = (
            f"while computing features in batches of {self.batch_size},"
            if self.cached
            else f"for batch {self.batch_size}"
        )
        head = f"Peak memory about {_gb(self.peak)} {what}"
        if self.available is None:
            return f"{head} on {where}."
        free = "available" if self.device_type == "cpu" else "free"
        head = f"{head} of the {_gb(self.available)} {free} on {where}"
        if self.fits:
            return head + "."
        largest = self.largest_batch()
        if largest == 0:
            return (
                f"{head}: even one example likely does not fit; choose a smaller model or image "
                "size, or another device."
            )
        return f"{head}: batch {self.batch_size} likely does not fit; {largest} would."


def estimate_peak_memory(
    model: Classifier,
    config: RunConfig,
    frozen: list[str] | None,
    *,
    placement: Placement | None = None,
    text_tokens: int | None = None,
) -> MemoryEstimate:
    """Estimate the peak memory of one training step of ``config`` with ``model``.

    With ``frozen`` (a freeze plan; ignored with method lora, which inserts the adapters) a
    copy of the model is adapted and measured on the run's device. With ``frozen=None`` the
    model is taken as already adapted and placed (the trainer's own model): it is measured in
    place, and its buffers (BatchNorm statistics) and the random state are left as they were.
    Texts are ``text_tokens`` tokens long (default ``data.max_length``: batches pad to it).
    """
    placement = placement or resolve_placement(config.device)
    device = placement.device
    if frozen is not None:
        model = _adapted_copy(model, config, frozen)
        model.to(device)
    cached = not any(p.requires_grad for p in model.backbone.parameters())
    channels_last = config.device.channels_last and getattr(model.entry, "is_convnet", False)
    if channels_last and frozen is not None:
        model.to(memory_format=torch.channels_last)

    def inputs(batch: int) -> Any:
        return _random_inputs(model, config, batch, device, channels_last, text_tokens)

    trainable = [p for p in model.parameters() if p.requires_grad]
    grads = sum(p.numel() * p.element_size() for p in trainable)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    batch = config.schedule.batch_size
    if cached:
        batch = max(64, batch)  # the feature pipeline's extraction batch
        grads = 0  # the head trains on cached features: tiny next to the backbone
    measure = _inference_bytes if cached else _saved_bytes
    with _untouched(model):
        fixed, per_example = _fit_line(lambda n: measure(model, inputs(n), placement))
    return MemoryEstimate(
        device_type=device.type,
        batch_size=batch,
        parameters=params,
        gradients=grads,
        optimizer=0 if cached else grads * _optimizer_states(config),
        fixed_activations=fixed,
        per_example=per_example,
        available=available_memory(device),
        cached=cached,
    )


def available_memory(device: torch.device) -> int | None:
    """Bytes a run may use on ``device``: free GPU memory plus what this process already holds
    (the model it placed there), MPS's recommended working set, or the computer's free RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device))
    if device.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        return int(recommended()) if recommended is not None else None
    import psutil

    return int(psutil.virtual_memory().available)


def _adapted_copy(model: Classifier, config: RunConfig, frozen: list[str]) -> Classifier:
    from engine.models import apply_freeze

    model = copy.deepcopy(model)
    if Method(config.adapt.method) is Method.LORA:
        from engine.models.lora import apply_lora

        apply_lora(model, config.adapt)
    else:
        apply_freeze(model, frozen)
    return model


def _optimizer_states(config: RunConfig) -> int:
    """Tensors of state per trainable parameter: AdamW two moments, SGD one momentum buffer."""
    if Optimizer(config.optim.optimizer) is Optimizer.SGD:
        return 1 if config.optim.momentum > 0 else 0
    return 2


def _random_inputs(
    model: Any,
    config: RunConfig,
    batch: int,
    device: torch.device,
    channels_last: bool,
    tokens: int | None,
) -> Any:
    return modality_of(model).random_batch(
        model,
        batch,
        tokens=tokens or config.data.max_length,
        device=device,
        channels_last=channels_last,
    )


def _saved_bytes(model: Classifier, x: Any, placement: Placement) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward, plus the input,
    plus the largest layer's input and output that are not saved (the working set of a frozen
    prefix, and about what backward's gradients of one layer hold). Storages are counted once,
    parameters not at all (they are counted apart)."""
    own = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = _storages(x)
    transient = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (a subclass)
            return t
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    def hook(_module: nn.Module, args: tuple, output: Any) -> None:
        # Counted now, while every storage in ``saved`` is alive: a freed tensor's address is
        # reused later, so comparing after the pass would mix up different tensors.
        held = {**_storages(args), **_storages(output)}
        extra = sum(n for ptr, n in held.items() if ptr not in saved and ptr not in own)
        transient[0] = max(transient[0], extra)

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), placement.autocast():
            out = model(x)
        del out  # the graph goes with it; no backward runs, so no gradient is touched
    finally:
        for h in handles:
            h.remove()
    return sum(saved.values()) + transient[0]


@torch.inference_mode()
def _inference_bytes(model: Classifier, x: Any, placement: Placement) -> int:
    """The input batch plus the largest input and output of any layer of the backbone in eval
    mode, storages counted once (a view is no new memory): what inference holds at its peak,
    since earlier activations are freed as it goes."""
    batch = _storages(x)
    peak = [sum(batch.values())]

    def hook(_module: nn.Module, args: tuple, output: Any) -> None:
        held = {**batch, **_storages(args), **_storages(output)}
        peak[0] = max(peak[0], sum(held.values()))

    leaves = [m for m in model.backbone.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    model.eval()
    try:
        with placement.autocast():
            model.backbone(x)
    finally:
        for h in handles:
            h.remove()
    return peak[0]


def _storages(value: Any, depth: int = 0) -> dict[int, int]:
    """Storage address to bytes of every tensor in ``value`` (tensors, dicts, sequences,
    model-output objects; a few levels deep, so odd objects cannot recurse forever)."""
    if isinstance(value, torch.Tensor):
        try:
            storage = value.untyped_storage()
        except (RuntimeError, NotImplementedError):  # sparse or nested tensors: no one storage
            return {}
        return {storage.data_ptr(): storage.nbytes()}
    if depth > 3 or isinstance(value, nn.Module):
        return {}
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = list(vars(value).values()) if hasattr(value, "__dict__") else []
    found: dict[int, int] = {}
    for item in items:
        found.update(_storages(item, depth + 1))
    return found


def _fit_line(measure: Callable[[int], int]) -> tuple[int, int]:
    """(fixed, per example) bytes from measurements at one and two examples; at two and four
    when one example cannot be measured (BatchNorm on pooled features needs two)."""
    try:
        one, two = measure(1), measure(2)
        small = 1
    except ValueError:
        one, two = measure(2), measure(4)
        small = 2
    per_example = max(0, (two - one) // small)
    return max(0, one - per_example * small), per_example


class _untouched:
    """Leave a measured model as it was: buffers (BatchNorm statistics), train/eval mode, and
    the random state (dropout draws would shift the run's random stream)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.training = self.model.training
        self.buffers = [b.detach().clone() for b in self.model.buffers()]
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        self.rng = torch.random.fork_rng(devices=devices)
        self.rng.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.rng.__exit__(*exc)
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), self.buffers, strict=True):
                b.copy_(saved)
        self.model.train(self.training)


def _gb(n: int) -> str:
    if n < 0.95 * _GB:
        return f"{n / 1e6:.0f} MB"
    return f"{n / _GB:.1f} GB"
