"""Cutting a classifier at a layer-group boundary: record activations there, run only what follows.

A boundary is the output of the last top-level module of a backbone group. The frozen *prefix*
before it runs once per image (and augmented view) and its activations are kept; each trial of a
partial fine-tune then runs only the trainable *suffix* on them. The suffix is the backbone itself
with every prefix module stubbed: a stub returns zeros of the shape that module produced when the
activations were recorded, and the boundary's stub returns the recorded activation. Whatever
parameterless glue sits between modules still runs, on zeros, so no architecture-specific code is
needed; :func:`verified_boundaries` keeps only the boundaries where the stubbed suffix reproduces
the full network's output (a skip connection across the boundary, for example, fails the check).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from engine.models.classifier import Classifier


@dataclass(frozen=True)
class Boundary:
    """The output of backbone group ``index`` (0-based, forward order): freezing groups
    ``0..index`` and training the rest caches the activation of ``module``."""

    index: int
    group: str  # the last frozen group
    module: str  # name of the module whose output is the activation (inside ``model``)
    prefix_modules: tuple[str, ...]  # top-level modules of groups 0..index, forward order


def _top_level(names: tuple[str, ...]) -> list[str]:
    inside = set(names)
    return [n for n in names if n.rpartition(".")[0] not in inside]


def boundaries(model: Classifier) -> list[Boundary]:
    """Every backbone group boundary in forward order (the head's input is the last)."""
    body = [g for g in model.groups if g.name != "head"]
    out: list[Boundary] = []
    prefix: list[str] = []
    for index, group in enumerate(body):
        tops = _top_level(group.module_names)
        if not tops:
            return out  # a group of loose parameters (a class token): no module to cut after
        prefix.extend(tops)
        out.append(Boundary(index, group.name, tops[-1], tuple(prefix)))
    return out


def pool(activation: torch.Tensor) -> torch.Tensor:
    """Global average of an activation: over space for ``[B, C, H, W]`` maps, over tokens for
    ``[B, N, C]`` sequences; ``[B, C]`` stays."""
    if activation.ndim == 4:
        return activation.float().mean(dim=(2, 3))
    if activation.ndim == 3:
        return activation.float().mean(dim=1)
    return activation.float().reshape(len(activation), -1)


class Recorder:
    """Forward hooks that keep the output of chosen modules (and every prefix module's shape)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        self.model = model
        self.names = names
        self.outputs: dict[str, torch.Tensor] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._handles: list = []

    def __enter__(self) -> Recorder:
        modules = dict(self.model.named_modules())
        for name in self.names:
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, args: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                self.outputs[name] = output.detach()
                self.shapes[name] = tuple(output.shape[1:])

        return hook


@contextlib.contextmanager
def suffix_only(
    model: nn.Module, boundary: Boundary, activation: torch.Tensor, shapes: dict[str, tuple]
) -> Iterator[None]:
    """While active, ``model``'s prefix modules are stubs and the boundary module returns
    ``activation``; call the model (or its backbone) on :func:`dummy_input` of the same batch."""
    modules = dict(model.named_modules())
    batch = len(activation)

    def stub(shape: tuple[int, ...]):
        def forward(*args: object, **kwargs: object) -> torch.Tensor:
            return activation.new_zeros((batch, *shape))

        return forward

    def inject(*args: object, **kwargs: object) -> torch.Tensor:
        return activation

    patched = []
    try:
        for name in boundary.prefix_modules:
            module = modules[name]
            module.forward = inject if name == boundary.module else stub(shapes[name])
            patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward


def dummy_input(batch: int, size: int, device: torch.device) -> torch.Tensor:
    """The image batch handed to a stubbed model: only its batch size matters."""
    return torch.zeros(batch, 3, size, size, device=device)


@torch.inference_mode()
def verified_boundaries(model: Classifier, images: torch.Tensor) -> tuple[list[Boundary], dict]:
    """The boundaries where the stubbed suffix reproduces the full backbone on ``images``
    (eval mode), with the output shape of every prefix module for building stubs."""
    was_training = model.training
    model.eval()
    candidates = boundaries(model)
    names = sorted({m for b in candidates for m in b.prefix_modules})
    try:
        with Recorder(model, names) as rec:
            reference = model.forward_features(images).float()
        good = []
        for b in candidates:
            act = rec.outputs.get(b.module)
            if act is None or any(m not in rec.shapes for m in b.prefix_modules):
                continue
            try:
                with suffix_only(model, b, act, rec.shapes):
                    got = model.forward_features(
                        dummy_input(len(act), images.shape[-1], act.device)
                    )
            except Exception:
                continue
            if got.shape == reference.shape and torch.allclose(
                got.float(), reference, rtol=1e-3, atol=1e-4
            ):
                good.append(b)
        return good, dict(rec.shapes)
    finally:
        model.train(was_training)
