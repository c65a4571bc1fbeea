"""Word influence for text runs: integrated gradients on the token embeddings (captum).

The baseline text keeps the special tokens ([CLS], [SEP], <s>, ...) and the attention mask and
puts the padding token everywhere else, so an attribution says what each real token adds over an
empty text of the same length. Scores are on the log-probability of the target class, so a
positive word pushes toward it and a negative word away from it. Sub-word tokens are summed back
into the whitespace-separated words of the original text through the fast tokenizer's offsets.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from engine.modalities import modality_of
from engine.models.classifier import Classifier
from engine.task import Task, as_task

# captum imports matplotlib.pyplot; a headless backend keeps it away from the app's Qt (and from
# a display on a server). Set before captum is first imported; a user's own choice wins.
os.environ.setdefault("MPLBACKEND", "Agg")

if TYPE_CHECKING:
    from engine.evaluation.predict import Predictor

N_STEPS = 32  # integration steps: attributions settle well before this on sentence encoders
_INTERNAL_BATCH = 16  # bounds memory: at most this many interpolated copies of the text at once


class ExplainError(ValueError):
    """A prediction that cannot be explained; the message is one sentence for the user."""


@dataclass(frozen=True)
class TokenInfluence:
    """How much each word of a text pushed the model toward ``target`` (integrated gradients)."""

    text: str
    target: str
    probability: float  # the model's probability of ``target`` for this text
    words: list[tuple[str, float]]  # every word in order, signed, scaled so max |score| = 1
    method: str


@contextmanager
def explain_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with gradients on (also inside an inference_mode caller); the previous
    train/eval mode comes back afterwards. Weights and requires_grad flags are not touched."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        model.train(was_training)


def text_problem(predictor: Predictor) -> str:
    """An empty string when :func:`token_influence` works for this run, else one sentence."""
    tokenizer = predictor.model.tokenizer
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        return (
            "Word influence needs a fast (Rust) tokenizer to map tokens back to words, and this "
            "model's folder has none (add its tokenizer.json)."
        )
    if _embeddings(predictor.model) is None:
        return f"{predictor.model.entry.display_name} has no token embedding layer to explain."
    return ""


def token_influence(
    predictor: Predictor,
    text: str,
    *,
    target: int | None = None,
    n_steps: int = N_STEPS,
    task: Task | None = None,
) -> TokenInfluence:
    """Signed influence of each word of ``text`` on class index ``target`` (None: predicted).

    Words past the model's token limit are not read and score 0. Raises ExplainError with one
    sentence for an image run, an empty text or a model that cannot be explained. ``task`` is
    checked before the text is read (raising Cancelled) and gets ``(1, 1)`` when it is done.
    """
    from captum.attr import LayerIntegratedGradients

    task = as_task(task)
    task.check_cancelled()

    modality = modality_of(predictor)
    if not modality.word_influence:
        raise ExplainError(f"Word influence explains text runs; this run reads {modality.noun}.")
    if not text.strip():
        raise ExplainError("The text is empty; type or paste a text to explain.")
    if target is not None and not 0 <= target < len(predictor.classes):
        raise ExplainError(
            f"There is no class number {target}; the run has {len(predictor.classes)}."
        )
    problem = text_problem(predictor)
    if problem:
        raise ExplainError(problem)
    model, tokenizer = predictor.model, predictor.model.tokenizer
    enc = tokenizer(
        text,
        truncation=True,
        max_length=predictor.max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    device = predictor.device
    ids = torch.tensor([enc["input_ids"]], device=device)
    mask = torch.tensor([enc["attention_mask"]], device=device)
    special = enc["special_tokens_mask"]
    baseline = torch.tensor(
        [
            [
                t if s else _blank_id(tokenizer)
                for t, s in zip(enc["input_ids"], special, strict=True)
            ]
        ],
        device=device,
    )

    def log_probs(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = model({"input_ids": input_ids, "attention_mask": attention_mask})
        return logits.float().log_softmax(dim=1)

    with explain_mode(model):
        ids, mask, baseline = ids.clone(), mask.clone(), baseline.clone()
        with torch.no_grad():
            probs = log_probs(ids, mask).exp()[0]
        chosen = int(probs.argmax()) if target is None else target
        lig = LayerIntegratedGradients(log_probs, _embeddings(model))
        attributions = lig.attribute(
            ids,
            baselines=baseline,
            additional_forward_args=(mask,),
            target=chosen,
            n_steps=n_steps,
            internal_batch_size=_INTERNAL_BATCH,
        )
    scores = attributions.detach().float().sum(dim=-1)[0].cpu().tolist()
    words = _words(text, enc["offset_mapping"], special, scores)
    task.report(1, 1)
    return TokenInfluence(
        text=text,
        target=predictor.classes[chosen],
        probability=float(probs[chosen]),
        words=words,
        method=_method(n_steps, tokenizer, text, len(enc["input_ids"]), predictor.max_length),
    )


def _words(
    text: str, offsets: list[tuple[int, int]], special: list[int], scores: list[float]
) -> list[tuple[str, float]]:
    """Token scores summed into the whitespace-separated words of ``text``, max |score| = 1."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    starts = [s for s, _ in spans]
    totals = [0.0] * len(spans)
    for (start, end), is_special, score in zip(offsets, special, scores, strict=True):
        while start < end and text[start].isspace():  # byte-level BPE may count the space
            start += 1
        if is_special or start >= end:
            continue
        word = bisect.bisect_right(starts, start) - 1
        if word >= 0:
            totals[word] += score
    peak = max((abs(t) for t in totals), default=0.0)
    if peak > 0:
        totals = [t / peak for t in totals]
    return [(text[s:e], t) for (s, e), t in zip(spans, totals, strict=True)]


def _blank_id(tokenizer: Any) -> int:
    for token_id in (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.unk_token_id):
        if token_id is not None:
            return int(token_id)
    return 0


def _embeddings(model: Classifier) -> nn.Module | None:
    """The token (word) embedding layer of a text backbone, inside a LoRA wrapper too."""
    inner = getattr(model.backbone, "model", None)
    getter = getattr(inner, "get_input_embeddings", None)
    if callable(getter):
        try:
            layer = getter()
        # transformers' PreTrainedModel.get_input_embeddings raises NotImplementedError for
        # models that do not declare their embeddings; the module scan below finds them then.
        except (NotImplementedError, AttributeError):
            layer = None
        if isinstance(layer, nn.Module):
            return layer
    vocab = len(model.tokenizer) if model.tokenizer is not None else -1
    return next(
        (
            m
            for m in model.backbone.modules()
            if isinstance(m, nn.Embedding) and m.num_embeddings >= vocab
        ),
        None,
    )


def _method(n_steps: int, tokenizer: Any, text: str, used: int, limit: int) -> str:
    blank = tokenizer.pad_token or tokenizer.mask_token or "padding"
    method = (
        f"Integrated gradients (captum LayerIntegratedGradients on the token embeddings, "
        f"{n_steps} steps, {blank} baseline)"
    )
    if used >= limit and len(tokenizer(text, truncation=False)["input_ids"]) > limit:
        method += f"; only the first {limit} tokens are read"
    return method
