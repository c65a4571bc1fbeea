"""The evaluation a run leaves when it finishes, from the validation logits training computed.

Training already predicts every validation example at each epoch; the logits of the best epoch
are the predictions of the best checkpoint. Saving them as ``evaluate_run`` would (the
predictions file tied to the best checkpoint file, and evaluation/val.json) spares the second
pass over the validation split that Evaluate would make. Validation only: the test split stays
locked until the user unlocks it.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.evaluation.predictions import (
    PredictionError,
    predictions_path,
    split_data,
    split_predictions,
)
from engine.evaluation.report import Evaluation, save_evaluation
from engine.runs import RunDir
from engine.training.checkpoint_files import BEST

SPLIT = "val"


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax of ``logits`` as float32 rows, computed as prediction computes them."""
    return logits.detach().float().cpu().softmax(dim=1).numpy()


def save_best_evaluation(run: RunDir, logits: torch.Tensor) -> Evaluation | None:
    """Save ``logits`` (the best epoch's, in splits.json's validation order) as the run's
    validation predictions and evaluation; None when the run has no best checkpoint.

    Raises PredictionError when the logits do not fit the run's validation split.
    """
    weights = run.checkpoints / BEST
    if not weights.is_file():
        return None
    data = split_data(run)
    if len(logits) != len(data.val) or not data.val:
        raise PredictionError(
            f"The run {run.run_id} kept {len(logits)} validation predictions for "
            f"{len(data.val)} validation examples."
        )
    preds = split_predictions(run, data, SPLIT, probabilities(logits), weights)
    preds.save(predictions_path(run, SPLIT))
    return save_evaluation(run, preds)
