"""Choosing the device and the numeric precision of a run."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from engine.config import Device, DeviceConfig, Precision


class DeviceError(RuntimeError):
    """A device the user asked for is not present on this machine."""


@dataclass(frozen=True)
class Placement:
    """The resolved device and precision of a run."""

    device: torch.device
    precision: Precision  # fp32, bf16 or fp16 (never auto)
    description: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    @property
    def needs_grad_scaler(self) -> bool:
        return self.precision is Precision.FP16 and self.device.type == "cuda"


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def inference_device(name: str) -> torch.device:
    """The device of ``refit evaluate/predict --device``: ``auto`` picks CUDA, then MPS, then the
    CPU; a name torch does not know, or a device absent here, raises DeviceError (one sentence)."""
    if name == "auto":
        return torch.device(
            "cuda" if torch.cuda.is_available() else "mps" if mps_available() else "cpu"
        )
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(
            f"{name!r} is not a device; choose cpu, cuda, cuda:1, mps or auto."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("PyTorch sees no CUDA GPU on this machine; choose --device cpu.")
    if device.type == "mps" and not mps_available():
        raise DeviceError("Apple MPS is not available here; choose --device cpu.")
    return device


def resolve_placement(cfg: DeviceConfig) -> Placement:
    """Pick CUDA, then MPS, then CPU for ``auto``; fail with a sentence if a named one is absent."""
    want = cfg.device
    if want is Device.AUTO:
        want = (
            Device.CUDA
            if torch.cuda.is_available()
            else Device.MPS
            if mps_available()
            else Device.CPU
        )
    if want is Device.CUDA and not torch.cuda.is_available():
        raise DeviceError(
            "The run asks for a CUDA GPU, but PyTorch sees none on this machine; "
            "choose device 'auto' or 'cpu'."
        )
    if want is Device.MPS and not mps_available():
        raise DeviceError(
            "The run asks for Apple MPS, which is not available here; choose 'auto' or 'cpu'."
        )
    device = torch.device(want.value)
    precision = cfg.precision
    if precision is Precision.AUTO:
        if device.type == "cuda":
            precision = Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16
        else:
            precision = Precision.FP32
    if device.type == "cpu" and precision is Precision.FP16:
        raise DeviceError("fp16 is not supported on the CPU; choose fp32 or bf16.")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple GPU (MPS)"
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    return Placement(device=device, precision=precision, description=f"{name}, {precision}")
