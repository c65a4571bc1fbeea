"""Taking a trained run out of the app: safetensors, TorchScript, ONNX and Hugging Face files,
each checked against the run, with refit_model.json and a model card; and using them again."""

from __future__ import annotations

from engine.export.card import write_model_card
from engine.export.exported import ExportedModel
from engine.export.exporter import available_formats, export_run
from engine.export.manifest import (
    MANIFEST,
    ExportError,
    ExportFormat,
    ExportResult,
    parse_formats,
    read_manifest,
)
from engine.export.target import ExportConflict

__all__ = [
    "MANIFEST",
    "ExportConflict",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "ExportedModel",
    "available_formats",
    "export_run",
    "parse_formats",
    "read_manifest",
    "write_model_card",
]
