"""A backbone's features and its activations at chosen inner modules, in one forward pass:
onnxruntime on the CPU (one exported graph whose outputs are all of them), else torch with hooks.

The recipe advisor records, for every image, the pooled activation after each layer-group
boundary and the full activation at a few cut points (engine/advice/record.py). In torch those
come from forward hooks. For onnxruntime the same hooks run while the network is exported, so
each recorded tensor becomes an output of the graph (the pooled ones are pooled inside it). Every
output is checked against torch on the first real batch (``TOLERANCE`` of that output's scale)
when the graph is first used (engine/frozen/cache.py says when a cached one is checked again); a
failed export or check leaves torch with its hooks in use, with one log line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from engine.advice.split import Recorder, pool
from engine.config import Runtime
from engine.frozen.forward import CHECK_ROWS, OnnxChoice
from engine.frozen.onnx import (
    OUTPUT,
    OnnxSession,
    OnnxUnavailable,
    compare,
    export,
)
from engine.training.devices import Placement

if TYPE_CHECKING:
    from engine.preprocess import Preprocess


def _backbone(model: nn.Module) -> nn.Module:
    """``model.backbone``: a Classifier's backbone."""
    return cast(nn.Module, model.backbone)


class _Tapped(nn.Module):
    """The backbone's features, then the pooled and the full activations of the tapped modules."""

    def __init__(
        self, model: nn.Module, pooled: list[str], full: list[str], features: bool
    ) -> None:
        super().__init__()
        self.model, self.pooled, self.full, self.features = model, pooled, full, features

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with Recorder(self.model, sorted({*self.pooled, *self.full})) as rec:
            features = _backbone(self.model)(x)
        out = rec.outputs
        # Without the features, the exporter drops the layers after the last tap from the graph.
        return (
            *((features.float(),) if self.features else ()),
            *(pool(out[m]) for m in self.pooled),
            *(out[m].float() for m in self.full),
        )


class TapForward(OnnxChoice):
    """Calls ``model.backbone`` (frozen) on batches; returns its float32 CPU features and leaves
    what the tapped modules produced in ``outputs`` (name -> tensor, like Recorder.outputs).

    ``full``: modules whose whole activation is kept; ``pooled``: modules only their pooled
    activation is needed of (onnxruntime returns it pooled, torch whole: :func:`pool` of either
    gives the same). ``features=False``: the taps only (the call returns ``[B, 0]``), so
    onnxruntime runs no layer after the last tap. ``key_parts`` must name what the network's
    output depends on (see :func:`engine.frozen.keys.backbone_parts`); the tapped modules are
    added to it. Without a ``cache_dir``, or when ``runtime`` does not choose onnxruntime, torch
    runs.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        full: list[str],
        pooled: list[str],
        placement: Placement,
        channels_last: bool = False,
        runtime: Runtime | str = Runtime.TORCH,
        cache_dir: Path | None = None,
        key_parts: dict[str, Any] | None = None,
        log: Callable[[str, str], None] | None = None,
        what: str = "the frozen network",
        features: bool = True,
    ) -> None:
        super().__init__(
            placement=placement, runtime=runtime, cache_dir=cache_dir, log=log, what=what
        )
        self.model, self.channels_last = model, channels_last
        self.features = features
        self.full = list(dict.fromkeys(full))
        self.pooled = [m for m in dict.fromkeys(pooled) if m not in self.full]
        taps = {"pooled": self.pooled, "full": self.full, "features": features}
        self.key_parts = {**(key_parts or {}), "taps": taps}
        self.outputs: dict[str, torch.Tensor] = {}

    def covers(self, full: list[str], pooled: list[str]) -> bool:
        """Whether this records what a pass needing ``full`` and ``pooled`` modules needs."""
        return set(full) <= set(self.full) and set(pooled) <= {*self.full, *self.pooled}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.decided:
            self._prepare(x)
        if self.session is None:
            features, self.outputs = self._torch(x)
            return features
        got = self.session.run_all(x)
        if not self.features:
            got.insert(0, torch.empty(len(x), 0))
        self.outputs = dict(zip([*self.pooled, *self.full], got[1:], strict=True))
        return got[0]

    def _torch(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        was_training = self.model.training
        self.model.eval()
        names = sorted({*self.pooled, *self.full})
        autocast = self.placement.autocast()
        try:
            with Recorder(self.model, names) as rec, torch.inference_mode(), autocast:
                features = _backbone(self.model)(x).float().cpu()
        finally:
            self.model.train(was_training)
        if not self.features:
            features = torch.empty(len(x), 0)
        return features, dict(rec.outputs)

    def _prepare(self, x: torch.Tensor) -> None:
        names = (
            *((OUTPUT,) if self.features else ()),
            *(f"pooled:{m}" for m in self.pooled),
            *(f"full:{m}" for m in self.full),
        )
        rows = x[:CHECK_ROWS].cpu()

        def make(target: Path) -> str:
            tapped = _Tapped(self.model, self.pooled, self.full, self.features)
            return export(tapped, x[:1].cpu(), target, outputs=names)

        self._open(
            self.key_parts,
            make=make,
            check=lambda session: self._check(session, rows, names),
            weights=getattr(self.model, "backbone", self.model),
            rows=len(rows),
            outputs=f"its {len(names)} outputs ",
        )

    def _check(self, session: OnnxSession, x: torch.Tensor, names: tuple[str, ...]) -> float:
        """The largest difference of any output from torch's, relative to that output's scale;
        raises OnnxUnavailable above TOLERANCE (or on a shape or count that differs)."""
        features, acts = self._torch(x)
        expected = [
            *((features,) if self.features else ()),
            *(pool(acts[m]).cpu() for m in self.pooled),
            *(acts[m].float().cpu() for m in self.full),
        ]
        got = session.run_all(x)
        if len(got) != len(expected):
            raise OnnxUnavailable(
                f"the exported graph has {len(got)} outputs where {len(expected)} are recorded"
            )
        worst = 0.0
        for name, want, have in zip(names, expected, got, strict=True):
            worst = max(worst, compare(have, want, what=name))
        return worst


def run_taps(
    ctx: Any,
    model: nn.Module,
    *,
    full: list[str],
    pooled: list[str],
    what: str,
    features: bool = True,
) -> TapForward:
    """A TapForward for a run or analysis context ``ctx`` (a Trainer or the advisor's context:
    config, workspace, placement, channels_last, log), its ``device.runtime`` deciding."""
    from engine.frozen.keys import backbone_parts

    config = ctx.config
    preprocess = cast("Preprocess", model.preprocess)  # a Classifier's
    parts = backbone_parts(config, preprocess.input_size)
    return TapForward(
        model,
        full=full,
        pooled=pooled,
        placement=ctx.placement,
        channels_last=ctx.channels_last,
        runtime=config.device.runtime,
        cache_dir=ctx.workspace.cache_root / "onnx",
        key_parts=parts,
        log=lambda text, level: ctx.log(text, level=level),
        what=what,
        features=features,
    )
