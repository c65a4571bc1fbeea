"""RunConfig: the one description of a run, shared by the GUI, the CLI and every run folder.

A tree of frozen dataclasses holding JSON types only. Limits and help text live in field metadata
so that the GUI can build its widgets from them and one ``validate()`` serves every front end.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class ConfigError(ValueError):
    """A RunConfig that cannot be used; the message names the field and what is allowed."""


class NewerFormatError(ConfigError):
    """A config written by a newer Refit Studio (its schema_version is higher than ours)."""


class Method(StrEnum):
    """How much of the pretrained model is trained."""

    AUTO = "auto"
    LINEAR_PROBE = "linear-probe"
    LAST_N = "last-n"
    FULL = "full"
    CUSTOM = "custom"
    LORA = "lora"


class Optimizer(StrEnum):
    ADAMW = "adamw"
    SGD = "sgd"


class Schedule(StrEnum):
    COSINE = "cosine"
    ONE_CYCLE = "one-cycle"
    CONSTANT = "constant"


class AugmentPreset(StrEnum):
    NONE = "none"
    LIGHT = "light"
    STANDARD = "standard"
    STRONG = "strong"


class ClassWeights(StrEnum):
    NONE = "none"
    BALANCED = "balanced"


class Intensity(StrEnum):
    """Per-image intensity normalisation before the backbone's own normalisation."""

    AUTO = "auto"
    OFF = "off"
    PERCENTILE = "percentile"


class DicomWindow(StrEnum):
    """Which band of DICOM values becomes grey (engine/data/dicom.py holds the numbers)."""

    FILE = "file"
    PERCENTILE = "percentile"
    BRAIN = "brain"
    SUBDURAL = "subdural"
    LUNG = "lung"
    BONE = "bone"
    SOFT_TISSUE = "soft-tissue"


class DicomFrames(StrEnum):
    """Which frames of a multi-frame DICOM file (a cine, a tomosynthesis stack) are samples."""

    MIDDLE = "middle"
    ALL = "all"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Runtime(StrEnum):
    """Where frozen layers run (the cached features, evaluation, prediction)."""

    AUTO = "auto"
    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"


class Precision(StrEnum):
    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class Monitor(StrEnum):
    VAL_ACCURACY = "val_accuracy"
    VAL_LOSS = "val_loss"
    VAL_MACRO_F1 = "val_macro_f1"


def _f(default: Any = dataclasses.MISSING, *, help: str, **limits: Any) -> Any:
    """A dataclass field carrying help text and limits (min, max) in its metadata."""
    meta = {"help": help, **limits}
    if isinstance(default, list):
        return field(default_factory=partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    path: str = _f(
        "",
        help="Labeled folder (one subfolder per class, or train/ val/ (test/)) of images or .txt "
        "files, or a .csv / .tsv / .jsonl file with a text and a label column.",
    )
    text_column: str = _f(
        "", help="Table files: the column holding the text; empty guesses it from the header."
    )
    label_column: str = _f(
        "", help="Table files: the column holding the label; empty guesses it from the header."
    )
    val_fraction: float = _f(
        0.2,
        help="Share of examples held out for validation when the data has no val/ split.",
        min=0.05,
        max=0.5,
    )
    test_fraction: float = _f(
        0.0,
        help="Share held out as a locked test set when the data has no test/ split.",
        min=0.0,
        max=0.5,
    )
    split_seed: int = _f(
        0, help="Seed of the stratified split; the same seed gives the same split.", min=0
    )
    min_per_class: int = _f(
        2,
        help="Classes with fewer usable examples than this are reported and left out.",
        min=1,
        max=1000,
    )
    num_workers: int = _f(
        -1,
        help="Data loading worker processes; -1 chooses from the number of CPU cores.",
        min=-1,
        max=64,
    )
    max_length: int = _f(
        128,
        help="Text models: texts are cut to this many tokens (the model's own limit caps it).",
        min=8,
        max=8192,
    )
    length_bucketing: bool = _f(
        True,
        help="Text models: batch texts of similar length together, so that short texts are not "
        "padded to the length of long ones.",
    )
    intensity: Intensity = _f(
        Intensity.AUTO,
        help="Images: percentile stretches each image's 0.5-99.5% brightness window to the full "
        "0-255 range (for exports that use a few grey levels, 12-bit data in 16-bit files, very "
        "dark or washed-out images); auto does so when the scan finds at least 20% of such "
        "images; off uses the pixels as they are.",
    )
    dicom_window: DicomWindow = _f(
        DicomWindow.FILE,
        help="DICOM images: the window that maps their values (e.g. Hounsfield units) to grey. "
        "file uses each file's own VOI LUT or window centre/width (percentile when it has none); "
        "percentile spans each image's 0.5-99.5% values; brain (40/80), subdural (75/215), lung "
        "(-600/1500), bone (400/1800) and soft-tissue (40/400) are the usual CT windows "
        "(centre/width in HU). Multi-frame files give their middle frame.",
    )
    dicom_frames: DicomFrames = _f(
        DicomFrames.MIDDLE,
        help="Multi-frame DICOM files: middle makes each file one sample (its middle frame); "
        "all makes every frame a sample (at most 512 a file, evenly spaced), all frames of a "
        "file kept on one side of the split (its patient's group, else the file). An exported "
        "model predicts a multi-frame file from its middle frame (middle) or as the mean of its "
        "frames' probabilities (all).",
    )
    group_by: str = _f(
        "",
        help="Images: what keeps images of one patient on one side of the split. '' none (a "
        "manifest's group column is still used); 'dicom' the PatientID (or StudyInstanceUID); "
        "'manifest' the group column of a manifest CSV (file,label[,group][,split]); "
        "'pattern:<regex>' the first capture group of a regex on the path below the dataset "
        "folder, e.g. pattern:(P\\d+)_. Keys are kept only as salted hashes.",
    )


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    backbone: str = _f(
        "efficientnet_lite0",
        help="Catalog name, 'timm:NAME', 'hf:ID' or a local Hugging Face folder.",
    )
    weights: str | None = _f(
        None,
        help="A checkpoint file (.safetensors, .pt, .pth) to start from instead of the catalog's "
        "pretrained weights.",
    )
    pretrained: bool = _f(True, help="Start from pretrained weights (off: random initialisation).")
    head_dropout: float = _f(0.0, help="Dropout before the classification head.", min=0.0, max=0.9)
    allow_remote_code: bool = _f(
        False,
        help="A record that code shipped with the model was asked for. It allows nothing by "
        "itself: only --allow-remote-code on the command, 'refit trust FOLDER' or the Model "
        "page's checkbox let such code run.",
    )


@dataclass(frozen=True, kw_only=True)
class AdaptConfig:
    method: Method = _f(
        Method.AUTO,
        help="auto (Recommended) looks at your training data first and chooses the method, "
        "freeze point, learning rate and epochs, and the run's config.json records the choice "
        "and why; linear-probe trains only the head; last-n also the last N layer groups; full "
        "trains everything; custom uses frozen_groups; lora freezes the backbone and trains "
        "small low-rank adapters in it (transformers only).",
    )
    last_n: int = _f(
        2, help="With last-n: how many layer groups before the head are trained.", min=0, max=1000
    )
    frozen_groups: list[str] = _f([], help="With custom: names of the layer groups to freeze.")
    cache_prefix: bool = _f(
        False,
        help="With last-n on images: compute the frozen layers once, for the plain image and "
        "cache_views-1 augmented views, and train only the layers after them on the cached "
        "result (several times faster; augmentation is limited to those views).",
    )
    reason: str = _f(
        "",
        help="Set by the Recommended method: one sentence on why this recipe was chosen.",
    )
    lora_rank: int = _f(
        8,
        help="With lora: rank of each adapter; higher learns more and costs more.",
        min=1,
        max=512,
    )
    lora_alpha: float = _f(
        16.0, help="With lora: scale of the adapters' output (alpha / rank).", min=0.01, max=4096.0
    )
    lora_dropout: float = _f(
        0.1, help="With lora: dropout on the adapters' input.", min=0.0, max=0.9
    )
    lora_targets: list[str] = _f(
        [],
        help="With lora: names of the linear layers that get adapters (for example query, "
        "value); empty finds them for the architecture.",
    )
    lora_save_merged: bool = _f(
        False,
        help="With lora: also save the model with the adapters merged into its weights, next to "
        "the adapter itself.",
    )


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    optimizer: Optimizer = _f(
        Optimizer.ADAMW,
        help="AdamW suits most fine-tuning; SGD with momentum is the classic alternative.",
    )
    lr: float = _f(
        1e-2,
        help="Peak learning rate of the new head; unfrozen backbone layers use it times "
        "backbone_lr_scale.",
        min=1e-7,
        max=10.0,
    )
    backbone_lr_scale: float = _f(
        0.03,
        help="Learning rate of unfrozen pretrained layers relative to the head's: they "
        "start from good weights and need smaller steps.",
        min=0.0,
        max=10.0,
    )
    weight_decay: float = _f(
        0.01, help="Weight decay (L2 for SGD, decoupled for AdamW).", min=0.0, max=1.0
    )
    momentum: float = _f(0.9, help="SGD momentum.", min=0.0, max=0.999)
    label_smoothing: float = _f(
        0.0, help="Label smoothing of the cross-entropy loss.", min=0.0, max=0.5
    )
    class_weights: ClassWeights = _f(
        ClassWeights.NONE,
        help="balanced weighs each class by the inverse of its share of the training set.",
    )
    grad_clip: float = _f(
        0.0, help="Clip the gradient norm to this value; 0 turns clipping off.", min=0.0, max=1000.0
    )


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    epochs: int = _f(10, help="Passes over the training set.", min=1, max=10000)
    batch_size: int = _f(
        32, help="Examples (images or texts) per optimisation step.", min=1, max=4096
    )
    schedule: Schedule = _f(Schedule.COSINE, help="Learning-rate schedule after warm-up.")
    warmup_fraction: float = _f(
        0.05,
        help="Share of all steps spent warming up the learning rate (one-cycle: at least 0.3).",
        min=0.0,
        max=0.5,
    )
    early_stopping_patience: int = _f(
        0,
        help="Stop after this many epochs without improvement of the monitored metric; 0 never "
        "stops early.",
        min=0,
        max=10000,
    )
    monitor: Monitor = _f(
        Monitor.VAL_ACCURACY,
        help="Validation metric that picks the best checkpoint and drives early stopping.",
    )
    time_budget_min: float = _f(
        0.0,
        help="Optional limit on the run's time in minutes: the Recommended method fits its "
        "trials and epochs to it from the measured speed, and a run that trains in epochs stops "
        "after the epoch that reaches it (the linear probe's fit, seconds long, is not cut "
        "short); 0 sets no limit.",
        min=0.0,
        max=100000.0,
    )


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    preset: AugmentPreset = _f(
        AugmentPreset.LIGHT,
        help="Random crops, flips and colour changes applied to training images.",
    )
    cache_views: int = _f(
        1,
        help="With a frozen backbone: views of each training image whose features are computed "
        "once and cached: the plain image plus views-1 augmented ones. Each view costs one pass "
        "over the training set.",
        min=1,
        max=64,
    )
    hflip: bool = _f(True, help="Allow horizontal flips (turn off when left and right matter).")
    vflip: bool = _f(False, help="Allow vertical flips (microscopy, aerial images).")


@dataclass(frozen=True, kw_only=True)
class DeviceConfig:
    device: Device = _f(Device.AUTO, help="auto picks CUDA, then Apple MPS, then the CPU.")
    precision: Precision = _f(
        Precision.AUTO,
        help="auto uses bf16 autocast on GPUs that support "
        "it, fp16 on other CUDA GPUs and fp32 on the CPU.",
    )
    channels_last: bool = _f(
        True, help="Use the channels-last memory layout for convolutional networks."
    )
    deterministic: bool = _f(True, help="Deterministic algorithms where the device allows it.")
    runtime: Runtime = _f(
        Runtime.AUTO,
        help="Where the frozen network runs (cached features, evaluation, prediction): auto "
        "uses onnxruntime on the CPU, checked against torch on your first images (torch if the "
        "export or the check fails), and torch on CUDA and MPS; torch always uses PyTorch.",
    )
    sync_batchnorm: bool = _f(
        False,
        help="On several GPUs (--nproc), compute batch-norm statistics over every process "
        "(SyncBatchNorm) instead of each process's share of the batch.",
    )


STUDY_TEXT_MAX = 2000


def clean_study_text(text: str) -> str:
    """Free text a user typed about the study, safe to keep: control and format characters
    (bidi overrides, zero-width, escapes) dropped except line breaks and tabs (a tab becomes a
    space), surrounding blanks trimmed, cut to STUDY_TEXT_MAX characters. Reports escape it
    again for HTML or Markdown; this only keeps the stored text plain and bounded."""
    import unicodedata

    kept = []
    for ch in str(text)[: STUDY_TEXT_MAX * 4]:
        if ch in "\n\t":
            kept.append(" " if ch == "\t" else ch)
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(ch)
    return "".join(kept).strip()[:STUDY_TEXT_MAX]


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """What the model is for and how its labels were decided: typed by the user, kept in the
    run, printed in the report and the model card (CLAIM / TRIPOD+AI ask for both)."""

    intended_use: str = _f(
        "",
        help="Intended use: the clinical question, the patients and setting the model is meant "
        "for, and who acts on its output (free text, shown in the report and model card).",
    )
    reference_standard: str = _f(
        "",
        help="Reference standard: how the labels were decided, e.g. 'biopsy result' or "
        "'consensus of two radiologists' (free text, shown in the report and model card).",
    )

    def __post_init__(self) -> None:
        for name in ("intended_use", "reference_standard"):
            object.__setattr__(self, name, clean_study_text(getattr(self, name)))


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything that defines a run. Saved as config.json in every run folder."""

    schema_version: int = _f(SCHEMA_VERSION, help="Format version of this file.", min=1)
    name: str = _f("", help="Optional label shown in the run list.")
    seed: int = _f(0, help="Seed for weights of the head, shuffling and augmentation.", min=0)
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Dataset."})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Backbone."})
    adapt: AdaptConfig = field(default_factory=AdaptConfig, metadata={"help": "Freezing."})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "Optimiser."})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata={"help": "Schedule."})
    augment: AugmentConfig = field(
        default_factory=AugmentConfig, metadata={"help": "Augmentation."}
    )
    device: DeviceConfig = field(default_factory=DeviceConfig, metadata={"help": "Device."})
    study: StudyConfig = field(
        default_factory=StudyConfig, metadata={"help": "Intended use and reference standard."}
    )

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build a config from JSON data; unknown keys and wrong types raise ConfigError."""
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"schema_version must be a whole number, not {version!r}.")
        if version > SCHEMA_VERSION:
            raise NewerFormatError(
                f"schema_version {version!r} is newer than this Refit Studio understands "
                f"({SCHEMA_VERSION}); update Refit Studio to open this run."
            )
        return _from_json(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config file; any bytes that are not a usable config raise ConfigError."""
        from engine.files import UnreadableFileError, read_json_object

        path = Path(path)
        try:
            data = read_json_object(path, max_bytes=64 * 2**20)
        except FileNotFoundError as exc:
            raise ConfigError(f"The config file {path} does not exist.") from exc
        except UnreadableFileError as exc:
            raise ConfigError(f"The config file {path} {exc}.") from exc
        return cls.from_dict(data)

    def replace(self, **sections: Any) -> RunConfig:
        """Copy with whole sections or top-level fields replaced."""
        return dataclasses.replace(self, **sections)

    def validate(self) -> RunConfig:
        """Check every limit; raise ConfigError naming the first bad field. Returns self."""
        _validate(self, "")
        if self.adapt.method is Method.CUSTOM and not isinstance(self.adapt.frozen_groups, list):
            raise ConfigError("adapt.frozen_groups must be a list of layer-group names.")
        _check_group_by(self.data.group_by)
        if self.data.val_fraction + self.data.test_fraction >= 0.9:
            raise ConfigError(
                "data.val_fraction + data.test_fraction must leave at least 10% for training."
            )
        return self


def _check_group_by(spec: str) -> None:
    """ConfigError for a data.group_by that is none of the forms (the pattern must compile)."""
    spec = spec.strip()
    if spec in ("", "dicom", "manifest"):
        return
    if not spec.startswith("pattern:"):
        raise ConfigError(
            f"data.group_by is {spec!r}; use '' (no groups), 'dicom', 'manifest' or "
            "'pattern:<regex>'."
        )
    try:
        groups = re.compile(spec[len("pattern:") :]).groups
    except re.error as exc:
        raise ConfigError(f"data.group_by's pattern is not a valid regex ({exc}).") from None
    if groups < 1:
        raise ConfigError(
            "data.group_by's pattern needs a capture group around the patient's part of the "
            "path, e.g. pattern:(P\\d+)_"
        )
    from engine.data.groups import GroupSpecError, parse_group_by

    try:  # the scan's own checks too: a pattern that could take hours is refused here
        parse_group_by(spec)
    except GroupSpecError as exc:
        raise ConfigError(f"data.group_by: {exc}") from None


def field_help(cls: type, name: str) -> dict[str, Any]:
    """The metadata (help, min, max) of one field, for tooltips and spin-box ranges."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_json(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a JSON object.")
    hints = _resolved_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        allowed = ", ".join(sorted(names))
        raise ConfigError(f"Unknown setting {_join(where, unknown[0])!r}; allowed here: {allowed}.")
    kwargs = {key: _coerce(hints[key], value, _join(where, key)) for key, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, where)
    if dataclasses.is_dataclass(tp):
        return _from_json(typing.cast(type, tp), value, where)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise ConfigError(f"{where} is {value!r}; allowed values: {allowed}.") from None
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list.")
        (inner,) = typing.get_args(tp)
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{where} must be {_type_word(tp)}, not {value!r}.")
        return value
    raise ConfigError(f"{where} has an unsupported type {tp!r}.")  # pragma: no cover


def _validate(obj: Any, where: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = _join(where, f.name)
        if dataclasses.is_dataclass(value):
            _validate(value, path)
            continue
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value != value:  # NaN
                raise ConfigError(f"{path} is not a number.")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                raise ConfigError(f"{path} is {value}; it must be {bounds}.")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _type_word(tp: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[tp]
