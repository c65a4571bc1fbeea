"""Texts as token ids: tokenized once, padded per batch, and batched by length.

Padding every batch to its own longest text (dynamic padding) and putting texts of similar length
in the same batch (length bucketing) means short texts do not pay for long ones.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from engine.data.text import TextSample
from engine.task import Task

# Texts are sorted by length within windows of this many batches, then the batches are shuffled:
# batches stay random from epoch to epoch while their texts have similar lengths.
BUCKET_WINDOW = 50
_CHUNK = 1024  # texts per tokenizer call, for progress reports


class TokenizedTexts:
    """Token ids (no padding) and labels of some texts, made once."""

    def __init__(
        self,
        samples: Sequence[TextSample],
        tokenizer: Any,
        max_length: int,
        *,
        task: Task | None = None,
    ) -> None:
        self.ids: list[list[int]] = []
        total = len(samples)
        for start in range(0, total, _CHUNK):
            chunk = [s.text for s in samples[start : start + _CHUNK]]
            encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=False)
            self.ids.extend(list(map(list, encoded["input_ids"])))
            if task is not None:
                task.report(min(start + _CHUNK, total), total)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self.lengths = [len(i) for i in self.ids]
        self.labels = torch.tensor([s.label for s in samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, indices: Sequence[int]) -> TokenizedTexts:
        """The texts at ``indices``, in that order (no tokenizing again)."""
        part = object.__new__(TokenizedTexts)
        part.ids = [self.ids[i] for i in indices]
        part.pad_id = self.pad_id
        part.lengths = [self.lengths[i] for i in indices]
        part.labels = self.labels[list(indices)]
        return part

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` [B, longest text of the batch]."""
        width = max(self.lengths[i] for i in indices)
        ids = torch.full((len(indices), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            n = self.lengths[i]
            ids[row, :n] = torch.tensor(self.ids[i], dtype=torch.long)
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def padded_tokens(self, batches: Sequence[Sequence[int]]) -> int:
        """Token positions (real plus padding) that ``batches`` feed to the model."""
        return sum(len(b) * max(self.lengths[i] for i in b) for b in batches)


def length_batches(
    order: Sequence[int],
    lengths: Sequence[int],
    batch_size: int,
    *,
    bucketing: bool,
    seed: int = 0,
) -> list[list[int]]:
    """Cut ``order`` into batches; with ``bucketing``, texts of similar length share a batch.

    Bucketing sorts each window of ``BUCKET_WINDOW`` batches by length and shuffles the batches
    with ``seed``; the number of batches is the same as without it.
    """
    order = list(order)
    if not bucketing:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * BUCKET_WINDOW
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    random.Random(seed).shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Every index once, longest first, for inference (order does not matter there)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
