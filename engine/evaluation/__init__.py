"""Using trained runs: prediction now; evaluation reports and explanations later."""

from __future__ import annotations

from engine.evaluation.predict import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
