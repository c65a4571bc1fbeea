"""What an exported folder holds: the formats, their results, and refit_model.json."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from engine.modalities import MODALITIES, modality_of
from engine.models.errors import ModelError

MANIFEST = "refit_model.json"
MODEL_CARD = "MODEL_CARD.md"
SAFETENSORS_FILE = "model.safetensors"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
HF_DIR = "hf"
BACKBONE_DIR = "backbone"  # Hugging Face backbones: config.json and tokenizer, no weights
MANIFEST_VERSION = 1

OUTPUT = "logits"


class ExportError(ModelError):
    """A run that cannot be exported, or an exported folder that cannot be used."""


class ExportFormat(StrEnum):
    """The files a run can be exported to."""

    SAFETENSORS = "safetensors"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    HF = "hf"


@dataclass(frozen=True)
class ExportResult:
    """The files one format wrote and the check done on them."""

    format: ExportFormat
    files: tuple[Path, ...]
    check: str  # one sentence, e.g. the ONNX vs PyTorch max difference
    max_diff: float | None


def parse_formats(names: list[str] | tuple[str, ...]) -> list[ExportFormat]:
    """Formats from names ("all" means every format); raises ExportError for an unknown one."""
    out: list[ExportFormat] = []
    for name in names:
        key = str(name).strip().lower()
        if key == "all":
            wanted = list(ExportFormat)
        else:
            try:
                wanted = [ExportFormat(key)]
            except ValueError:
                known = ", ".join(f.value for f in ExportFormat)
                raise ExportError(
                    f"The export format {name!r} is not known; choose {known} or all."
                ) from None
        out.extend(f for f in wanted if f not in out)
    return out


def software_versions() -> dict[str, str | None]:
    """Versions of the libraries an exported folder depends on."""
    versions: dict[str, str | None] = {}
    for name in ("refit-studio", "torch", "transformers", "timm", "onnx", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_manifest(
    *,
    run_id: str,
    checkpoint: str,
    classes: list[str],
    config: dict[str, Any],
    model: Any,
    max_length: int | None,
    lora_merged: bool,
    hf_backbone: bool,
) -> dict[str, Any]:
    """The contents of refit_model.json for a loaded Classifier ``model``."""
    entry = model.entry
    manifest: dict[str, Any] = {
        "format_version": MANIFEST_VERSION,
        "run_id": run_id,
        "checkpoint": checkpoint,
        "exported": datetime.now().isoformat(timespec="seconds"),
        "classes": list(classes),
        "modality": model.modality,
        "backbone": config["model"]["backbone"],
        "backbone_name": entry.display_name,
        "backbone_family": entry.family,
        "backbone_folder": BACKBONE_DIR if hf_backbone else None,
        "num_features": int(model.num_features),
        "method": str(config["adapt"]["method"]),
        "lora_merged": lora_merged,
        "outputs": {"name": OUTPUT, "meaning": "class logits; softmax gives probabilities"},
        "config": config,
        "versions": software_versions(),
    }
    manifest.update(_input_facts(model, max_length))
    return manifest


def _input_facts(model: Any, max_length: int | None) -> dict[str, Any]:
    """What the model reads: tokenizer facts for texts, the preprocessing for images."""
    return modality_of(model).input_facts(model, max_length)


MANIFEST_BYTES = 16 * 1024 * 1024  # refit_model.json is a few KB; a bound on memory


def read_manifest(folder: Path) -> dict[str, Any]:
    """refit_model.json of an exported folder, its types checked (classes a list of names,
    modality image or text, format_version a whole number, config/text/preprocess objects...);
    raises ExportError with one sentence naming the file."""
    from engine.files import UnreadableFileError, read_json_object

    path = folder / MANIFEST
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder; choose a folder written by refit export.")
    try:
        data = read_json_object(path, max_bytes=MANIFEST_BYTES)
    except FileNotFoundError:
        raise ExportError(
            f"{folder} has no {MANIFEST}, so it is not an exported model; export a run into it "
            "with refit export (or the Export dialog)."
        ) from None
    except UnreadableFileError as exc:
        why = str(exc) if str(exc).startswith("cannot") else f"cannot be read: it {exc}"
        raise ExportError(f"{path} {why}; export the run again.") from exc
    problem = manifest_problem(data)
    if problem == _NEWER:
        raise ExportError(
            f"{path} was written by a newer Refit Studio; update Refit Studio to use it."
        )
    if problem:
        raise ExportError(f"{path} does not describe a model ({problem}); export the run again.")
    return data


_NEWER = "newer"
_OBJECTS = ("config", "text", "preprocess")
_TEXTS = ("backbone", "backbone_name", "backbone_folder", "run_id")


def manifest_problem(data: dict[str, Any]) -> str:
    """ "" when the values refit_model.json's readers use have their types, else what is wrong
    (or "newer" for a format this version cannot read)."""
    version = data.get("format_version", 0)
    if not _whole(version) or version < 0:
        return "its format_version is not a whole number"
    if version > MANIFEST_VERSION:
        return _NEWER
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "its classes are not a list of names"
    if data.get("modality") not in MODALITIES:
        return "its modality is neither image nor text"
    wrong = [k for k in _OBJECTS if not isinstance(data.get(k, {}), dict | None)]
    if wrong:  # the checks below look inside these objects
        return f"{', '.join(wrong)} {'has' if len(wrong) == 1 else 'have'} the wrong type"
    wrong += [k for k in _TEXTS if not isinstance(data.get(k), str | None)]
    formats = data.get("formats")
    if formats is not None and not (
        isinstance(formats, list) and all(isinstance(f, str) for f in formats)
    ):
        wrong.append("formats")
    model = (data.get("config") or {}).get("model")
    if not isinstance(model, dict | None):
        wrong.append("config.model")
    wrong += modality_of(data["modality"]).manifest_problems(data)
    if wrong:
        return f"{', '.join(wrong)} {'has' if len(wrong) == 1 else 'have'} the wrong type"
    return ""


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
