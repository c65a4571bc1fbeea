"""Using trained runs: prediction, evaluation reports, comparisons and explanations."""

from __future__ import annotations

from engine.evaluation.base import base_config, find_base_run, train_base
from engine.evaluation.compare import Comparison, compare_predictions, compare_runs
from engine.evaluation.predict import Prediction, Predictor
from engine.evaluation.predictions import SplitPredictions, TestSplitLocked, predict_split
from engine.evaluation.report import (
    Evaluation,
    evaluate,
    evaluate_run,
    examples_in_cell,
    load_evaluation,
    load_predictions,
    operating_point,
)

__all__ = [
    "Comparison",
    "Evaluation",
    "Prediction",
    "Predictor",
    "SplitPredictions",
    "TestSplitLocked",
    "base_config",
    "compare_predictions",
    "compare_runs",
    "evaluate",
    "evaluate_run",
    "examples_in_cell",
    "find_base_run",
    "load_evaluation",
    "load_predictions",
    "operating_point",
    "predict_split",
    "train_base",
]
