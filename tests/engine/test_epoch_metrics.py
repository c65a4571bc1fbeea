"""The per-epoch validation metrics (scikit-learn) equal torchmetrics' on random cases."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_recall,
)

from engine.training.metrics import classification_metrics

NAMES = tuple("abcdef")


@pytest.mark.parametrize("seed", range(40))
def test_epoch_metrics_equal_torchmetrics(seed):
    g = torch.Generator().manual_seed(seed)
    c = int(torch.randint(2, 7, (1,), generator=g))
    n = int(torch.randint(1, 40, (1,), generator=g))
    logits = torch.randn(n, c, generator=g) * 3
    # Some cases leave the last classes out of the targets: macro F1 must skip what is absent.
    present = c - int(torch.randint(0, c - 1, (1,), generator=g))
    targets = torch.randint(0, present, (n,), generator=g)
    got = classification_metrics(logits, targets, NAMES[:c])
    preds = logits.argmax(1)
    kw = {"num_classes": c}
    assert got["val_accuracy"] == pytest.approx(
        multiclass_accuracy(preds, targets, average="micro", **kw).item(), abs=1e-6
    )
    assert got["val_macro_f1"] == pytest.approx(
        multiclass_f1_score(preds, targets, average="macro", **kw).item(), abs=1e-6
    )
    recall = multiclass_recall(preds, targets, average="none", **kw).tolist()
    assert [got[f"val_recall/{k}"] for k in NAMES[:c]] == pytest.approx(recall, abs=1e-6)
    assert got["val_loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, targets).item()
    )
