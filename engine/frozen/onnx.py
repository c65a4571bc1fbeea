"""A frozen network exported to ONNX once, checked against torch, and run by onnxruntime on the CPU.

On a CPU, onnxruntime runs a frozen convolutional network several times faster than eager
PyTorch (fused convolutions, no per-op dispatch): EfficientNet-Lite0 at batch 32 on 2 cores,
24 images/s eager, 40 channels-last, 158 in onnxruntime (docs/benchmarks.md).

- The TorchScript-based exporter is tried first (about 0.5 s for EfficientNet-Lite0), the
  torch.export-based one (several seconds) if it fails; files are written atomically.
- The file is read into memory and handed to onnxruntime as bytes: a file planted in the cache
  cannot point onnxruntime at other files through external-data references.
- :func:`check` and :func:`compare` hold onnxruntime's outputs against torch's; when a cached
  export is checked (on first use, and again whenever it or the weights change) is decided by
  engine/frozen/cache.py.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.files import write_atomic
from engine.frozen.ort import ONNX_LIMIT, OnnxUnavailable, cpu_session, ort_version
from engine.safe_read import read_capped

__all__ = [
    "ONNX_LIMIT",
    "OnnxSession",
    "OnnxUnavailable",
    "check",
    "compare",
    "export",
    "ort_version",
]

OPSET = 18
INPUT, OUTPUT = "pixels", "features"

#: Largest allowed difference between onnxruntime's and torch's outputs on the check inputs,
#: relative to the largest output of torch (at least 1): float32 kernels that sum in another
#: order differ by about 1e-6 of that.
TOLERANCE = 1e-3


def export(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: Path,
    *,
    outputs: tuple[str, ...] = (OUTPUT,),
    inputs: dict[str, dict[int, str]] | None = None,
) -> str:
    """Export ``module`` (eval mode) to ``path`` atomically; returns the exporter that worked.
    Raises OnnxUnavailable when neither exporter can. ``outputs``: the names of the module's
    outputs (a module with several returns a tuple of tensors). ``inputs``: the name and dynamic
    axes of each positional input (default: one image batch, ``{INPUT: {0: "batch"}}``)."""
    inputs = inputs or {INPUT: {0: "batch"}}
    args = example if isinstance(example, tuple) else (example,)
    errors: list[str] = []
    for dynamo in (False, True):
        try:
            write_atomic(
                path,
                partial(_export, module, args, dynamo=dynamo, inputs=inputs, outputs=outputs),
            )
            return "torch.export (dynamo)" if dynamo else "TorchScript-based"
        except Exception as exc:  # exporters raise many types on unsupported operators
            text = str(exc).strip()
            errors.append(text.splitlines()[0] if text else type(exc).__name__)
    raise OnnxUnavailable(f"torch could not export it to ONNX ({'; '.join(errors)})")


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    dynamo: bool,
    *,
    inputs: dict[str, dict[int, str]],
    outputs: tuple[str, ...],
) -> None:
    kwargs: dict[str, Any] = {}
    if dynamo:
        dims: dict[str, Any] = {}
        shapes = tuple(
            {axis: dims.setdefault(label, torch.export.Dim(label)) for axis, label in axes.items()}
            for axes in inputs.values()
        )
        kwargs["dynamic_shapes"] = {"args": shapes}  # _Plain.forward(*args)
        kwargs["external_data"] = False
        # torch.export treats a size of 1 as a constant: give it a batch of two.
        args = tuple(a.repeat(2, *[1] * (a.ndim - 1)) if len(a) == 1 else a for a in args)
    else:
        kwargs["dynamic_axes"] = {**inputs, **{name: {0: "batch"} for name in outputs}}
    skip = contextlib.nullcontext() if dynamo else _no_onnxscript_functions()
    # Each module's own mode is restored: a fresh wrapper's default (training) must not put the
    # wrapped network's dropout back on.
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    # The exporters' warnings and progress lines are about things the user cannot change.
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), skip:
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Plain(module),
                tuple(a.contiguous() for a in args),
                str(path),
                input_names=list(inputs),
                output_names=list(outputs),
                opset_version=OPSET,
                dynamo=dynamo,
                verbose=False,
                **kwargs,
            )
    finally:
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def _no_onnxscript_functions() -> Iterator[None]:
    """The TorchScript-based exporter re-reads every model with the onnx package, only to add the
    onnxscript functions of custom operators; importing onnx for that is 0.6 s of a first run's
    1 s export. No network exported here registers such operators, so the step is left out
    while exporting (where torch's internals differ, nothing is changed)."""
    try:
        from torch.onnx._internal.torchscript_exporter import onnx_proto_utils as proto_utils
    except ImportError:
        yield
        return
    original = getattr(proto_utils, "_add_onnxscript_fn", None)
    if original is None:
        yield
        return
    proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        proto_utils._add_onnxscript_fn = original


class _Plain(nn.Module):
    """``module``'s outputs as float32 tensors."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.module(*args)
        if isinstance(out, tuple):
            return tuple(t.float() for t in out)
        return out.float()


class OnnxSession:
    """An onnxruntime CPU session of one exported network: float32 NCHW in, float32 out."""

    def __init__(self, path: Path, *, threads: int, data: bytes | None = None) -> None:
        """``data``: the file's bytes, when the caller has read them already."""
        if data is None:
            try:
                data = read_capped(path, ONNX_LIMIT, what="ONNX model")
            except OSError as exc:
                raise OnnxUnavailable(f"onnxruntime could not load {path.name} ({exc})") from None
        self.session = cpu_session(data, threads=threads, path=path)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.input = self.inputs[0]
        self.output = self.session.get_outputs()[0].name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run([self.output], {self.input: array})[0])

    def run_feeds(self, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Every output for named inputs (tokens and masks of a text batch, say)."""
        arrays = {
            name: np.ascontiguousarray(feeds[name].detach().cpu().numpy()) for name in self.inputs
        }
        return [torch.from_numpy(a) for a in self.session.run(self.outputs, arrays)]

    def run_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every output of the network for ``x``, in the order of ``outputs``."""
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return [torch.from_numpy(a) for a in self.session.run(self.outputs, {self.input: array})]


def check(
    session: OnnxSession,
    module: nn.Module,
    x: torch.Tensor,
    *,
    argmax: bool,
    channels_last: bool = False,
) -> float:
    """Run ``x`` through both; returns the largest difference relative to torch's largest
    output. Raises OnnxUnavailable when it is above TOLERANCE, or, with ``argmax`` (outputs are
    class scores), when any row's top class differs. ``channels_last``: the module's layout."""
    was_training = module.training
    module.eval()
    layout = torch.channels_last if channels_last and x.ndim == 4 else torch.contiguous_format
    try:
        with torch.inference_mode():
            expected = module(x.contiguous(memory_format=layout)).float().cpu()
    finally:
        module.train(was_training)
    got = session(x)
    diff = compare(got, expected)
    if argmax and not torch.equal(got.argmax(1), expected.argmax(1)):
        raise OnnxUnavailable("onnxruntime's top class differs from torch's on a check image")
    return diff


def compare(
    got: torch.Tensor,
    want: torch.Tensor,
    *,
    what: str = "outputs",
    tolerance: float | None = None,
) -> float:
    """onnxruntime's ``got`` against torch's ``want``: the largest difference relative to the
    largest output of torch (at least 1). Raises OnnxUnavailable for another shape, or a
    difference above ``tolerance`` (default TOLERANCE; NaN included)."""
    tolerance = TOLERANCE if tolerance is None else tolerance
    if got.shape != want.shape:
        raise OnnxUnavailable(
            f"onnxruntime gave {what} of shape {tuple(got.shape)} where torch gives "
            f"{tuple(want.shape)}"
        )
    if not want.numel():
        return 0.0
    scale = max(1.0, float(want.abs().max()))
    diff = float((got - want).abs().max()) / scale
    if not diff <= tolerance:  # also catches NaN
        raise OnnxUnavailable(
            f"onnxruntime's {what} differ from torch's by {diff:.1e} (allowed {tolerance:.0e})"
        )
    return diff
