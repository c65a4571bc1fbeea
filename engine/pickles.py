"""Torch pickle files (.pt, .pth, .bin): loaded as weights only, refused with one sentence when
they hold anything that could run code.

A pickle can name any Python callable to run while it loads; ``torch.load(weights_only=True)``
allows only tensors, numbers and containers. Libraries that load such files for the engine
(timm, transformers, peft) use the same restricted loader and raise their own errors; the
engine recognises those by the ``pickle.UnpicklingError`` they come from.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any


def load_weights_only(path: str | Path) -> Any:
    """The contents of a torch pickle file, on the CPU; tensors, numbers and containers only.
    Raises pickle.UnpicklingError for anything else (see :func:`is_refused_pickle`)."""
    import torch

    from engine.safe_read import WEIGHTS_LIMIT, open_capped

    # torch.load would open a pipe or /dev/zero and wait or read forever: open it here, checked.
    with open_capped(path, WEIGHTS_LIMIT, what="weights file") as fh:
        return torch.load(fh, map_location="cpu", weights_only=True)


def is_refused_pickle(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is the weights-only loader refusing
    a pickle that holds more than weights."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, pickle.UnpicklingError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def refusal(path: str | Path, what_to_do: str) -> str:
    """The sentence for a refused pickle: which file, why, and ``what_to_do`` instead."""
    return (
        f"{Path(path).name} holds Python objects besides weights, and loading them could run "
        f"code, so Refit Studio does not load it ({path}); {what_to_do}"
    )
