"""What the status bar says about compute devices (imports torch: call it off the start path)."""

from __future__ import annotations

from pathlib import Path


def describe_devices() -> str:
    """'NVIDIA RTX 4090 (CUDA)', 'Apple GPU (MPS)' or 'CPU (N threads)'."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads){_gpu_needs_other_edition()}"


def _gpu_needs_other_edition() -> str:
    """A hint when the CPU/Apple edition runs on a machine with an NVIDIA driver loaded."""
    from engine import EDITIONS, current_edition

    if current_edition() == EDITIONS["cpu"] and Path("/proc/driver/nvidia/version").exists():
        return "; this computer has an NVIDIA GPU: the NVIDIA GPU edition would use it"
    return ""
