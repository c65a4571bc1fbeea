"""TorchScript and ONNX files of a classifier, each checked against PyTorch before it is kept."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.export.checks import CheckBatch, compare, softmax, trace_inputs
from engine.export.manifest import OUTPUT, ExportError
from engine.export.runtimes import OnnxRuntime, TorchScriptRuntime, input_names
from engine.files import write_atomic
from engine.modalities import modality_of

OPSET = 18
_ONNX_LIMIT = 1.9e9  # bytes of weights one ONNX file can hold (protobuf's 2 GB limit)


class ImageLogits(nn.Module):
    """``pixel_values [B, 3, H, W] -> logits [B, C]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values)


class TextLogits(nn.Module):
    """``(input_ids, attention_mask) [B, T] -> logits [B, C]``: two tensors instead of the
    classifier's dict, as TorchScript and ONNX want."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model({"input_ids": input_ids, "attention_mask": attention_mask})


def logits_module(model: Any) -> nn.Module:
    """The classifier behind a tensors-in, logits-out forward, in eval mode on the CPU."""
    wrapper = modality_of(model).logits_module(model)
    return wrapper.cpu().eval()


def _pad_id(model: Any) -> int:
    pad = getattr(model.tokenizer, "pad_token_id", None) if model.tokenizer is not None else None
    return int(pad) if pad is not None else 0


def export_torchscript(model: Any, batch: CheckBatch, path: Path) -> tuple[float, str]:
    """Trace the classifier, save it, load it back and check it; (max diff, check sentence)."""
    wrapper = logits_module(model)
    example = trace_inputs(batch, _pad_id(model))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notes the user cannot act on
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    result: list[tuple[float, str]] = []

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(traced, str(tmp))
        probs = softmax(TorchScriptRuntime(tmp).logits(batch.inputs))
        result.append(compare(probs, batch, "TorchScript"))

    write_atomic(path, write)
    return result[0]


def export_onnx(model: Any, batch: CheckBatch, path: Path) -> tuple[float, str, dict[str, Any]]:
    """Export to ONNX (dynamic batch, and sequence for texts), check it with onnxruntime on the
    batch; the torch.export-based exporter first, the TorchScript-based one if that fails.
    Returns (max diff, check sentence, facts for refit_model.json)."""
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if weight_bytes > _ONNX_LIMIT:
        raise ExportError(
            "The model is too large for one ONNX file (over 2 GB of weights); export it as "
            "safetensors or torchscript instead."
        )
    wrapper = logits_module(model)
    example = trace_inputs(batch, _pad_id(model))
    names = input_names(model.modality)
    errors: list[Exception] = []
    for dynamo in (True, False):
        result: list[tuple[float, str]] = []

        def write(tmp: Path, dynamo: bool = dynamo, result: list = result) -> None:
            _torch_onnx_export(wrapper, example, tmp, names, dynamo=dynamo)
            probs = softmax(OnnxRuntime(tmp, model.modality).logits(batch.inputs))
            result.append(compare(probs, batch, "ONNX (onnxruntime)"))

        try:
            write_atomic(path, write)
            exporter = "torch.export (dynamo)" if dynamo else "TorchScript-based (dynamo=False)"
            facts = {"opset": OPSET, "exporter": exporter, "inputs": list(names)}
            return (*result[0], facts)
        except Exception as exc:
            errors.append(exc)
    checked = [e for e in errors if isinstance(e, ExportError)]
    if checked:
        raise checked[-1]
    first, last = (str(e).strip().splitlines()[0] if str(e).strip() else repr(e) for e in errors)
    raise ExportError(
        f"torch could not export the model to ONNX ({last}; with torch.export: {first}); "
        "export it as safetensors or torchscript instead."
    ) from errors[-1]


def _torch_onnx_export(
    wrapper: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[str, ...],
    *,
    dynamo: bool,
) -> None:
    axes = {0: "batch", 1: "sequence"} if len(names) == 2 else {0: "batch"}
    kwargs: dict[str, Any] = {}
    if dynamo:
        dims = {i: torch.export.Dim(label) for i, label in axes.items()}
        kwargs["dynamic_shapes"] = {name: dims for name in names}
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = {**{name: axes for name in names}, OUTPUT: {0: "batch"}}
    # verbose=False keeps the exporter from printing its stages; its warnings are about
    # things the user cannot change.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            input_names=list(names),
            output_names=[OUTPUT],
            opset_version=OPSET,
            dynamo=dynamo,
            verbose=False,
            **kwargs,
        )
