"""The flags that build a RunConfig (`refit train`, `lr-find`, `advise`) and the config they build.

Most of them set one RunConfig field each: those flags are generated from the field's metadata in
engine/config.py (its type, the values of an enum, its help text), so that the command line and
the app describe a setting in the same words. The others (--method with its last-N form,
--no-pretrained, --lora-targets, ...) are written by hand below.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import typing
from enum import StrEnum
from pathlib import Path
from typing import Any

from engine.cli.common import add_remote_code_flag
from engine.config import ConfigError, Method, RunConfig, field_help

# RunConfig fields with a flag of their own: flag (its dest, dashes for underscores on the command
# line) -> (section, field). Type, choices and help come from the field.
FIELD_FLAGS: dict[str, tuple[str, str]] = {
    "backbone": ("model", "backbone"),
    "weights": ("model", "weights"),
    "last_n": ("adapt", "last_n"),
    "epochs": ("schedule", "epochs"),
    "batch_size": ("schedule", "batch_size"),
    "schedule": ("schedule", "schedule"),
    "early_stopping": ("schedule", "early_stopping_patience"),
    "time_budget_min": ("schedule", "time_budget_min"),
    "monitor": ("schedule", "monitor"),
    "lr": ("optim", "lr"),
    "optimizer": ("optim", "optimizer"),
    "weight_decay": ("optim", "weight_decay"),
    "label_smoothing": ("optim", "label_smoothing"),
    "class_weights": ("optim", "class_weights"),
    "augment": ("augment", "preset"),
    "cache_views": ("augment", "cache_views"),
    "val_fraction": ("data", "val_fraction"),
    "test_fraction": ("data", "test_fraction"),
    "split_seed": ("data", "split_seed"),
    "min_per_class": ("data", "min_per_class"),
    "workers": ("data", "num_workers"),
    "text_column": ("data", "text_column"),
    "label_column": ("data", "label_column"),
    "max_length": ("data", "max_length"),
    "intensity": ("data", "intensity"),
    "dicom_window": ("data", "dicom_window"),
    "dicom_frames": ("data", "dicom_frames"),
    "group_by": ("data", "group_by"),
    "lora_rank": ("adapt", "lora_rank"),
    "lora_alpha": ("adapt", "lora_alpha"),
    "lora_dropout": ("adapt", "lora_dropout"),
    "device": ("device", "device"),
    "precision": ("device", "precision"),
    "runtime": ("device", "runtime"),
    "intended_use": ("study", "intended_use"),
    "reference_standard": ("study", "reference_standard"),
}


@dataclasses.dataclass(frozen=True)
class FieldFlag:
    """One generated flag: where its value goes in a RunConfig, its type and its help."""

    dest: str
    section: str
    field: str
    kind: type  # int, float, str or a StrEnum
    help: str

    @property
    def option(self) -> str:
        return "--" + self.dest.replace("_", "-")

    def value(self, given: Any) -> Any:
        """The parsed flag as the field holds it (an enum member for an enum field)."""
        return self.kind(given) if issubclass(self.kind, StrEnum) else given


@functools.cache
def field_flags() -> tuple[FieldFlag, ...]:
    """The generated flags, in FIELD_FLAGS order, described by their RunConfig fields."""
    sections = typing.get_type_hints(RunConfig)
    flags = []
    for dest, (section, name) in FIELD_FLAGS.items():
        cls = sections[section]
        kind = _scalar(typing.get_type_hints(cls)[name])
        flags.append(FieldFlag(dest, section, name, kind, field_help(cls, name)["help"]))
    return tuple(flags)


def _scalar(hint: Any) -> type:
    """int, float, str or an enum from a field's type (``str | None`` is str)."""
    if isinstance(hint, type):
        return hint
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(options) == 1 and isinstance(options[0], type):
        return options[0]
    raise TypeError(f"no command-line type for {hint!r}")


def add_train_flags(t: argparse.ArgumentParser) -> None:
    """The dataset-or-config argument and the flags that build a RunConfig (train, lr-find)."""
    t.add_argument(
        "source",
        help="A labeled folder, a .csv / .tsv / .jsonl file of texts, or a config.json "
        "(e.g. runs/<id>/config.json).",
    )
    t.add_argument(
        "--method",
        help="auto (Recommended, the default: chosen from your data, see `refit advise`), "
        "linear-probe, last-N (e.g. last-3), full, lora",
    )
    t.add_argument(
        "--lora-targets",
        help="With lora: comma-separated layer names to adapt (default: found automatically).",
    )
    t.add_argument(
        "--lora-merge",
        action="store_true",
        help="With lora: also save the model with the adapter merged into its weights.",
    )
    t.add_argument(
        "--no-bucketing", action="store_true", help="Text: do not batch texts by length."
    )
    t.add_argument("--name", help="A label for the run list.")
    t.add_argument("--seed", type=int, help=_escaped(field_help(RunConfig, "seed")["help"]))
    t.add_argument("--no-pretrained", action="store_true", help="Start from random weights.")
    add_remote_code_flag(t)
    for flag in field_flags():
        kwargs: dict[str, Any] = {"help": _escaped(flag.help)}
        if issubclass(flag.kind, StrEnum):
            kwargs["type"], kwargs["choices"] = str, [m.value for m in flag.kind]
        else:
            kwargs["type"] = flag.kind if flag.kind in (int, float) else str
        t.add_argument(flag.option, dest=flag.dest, **kwargs)


def _escaped(text: str) -> str:
    """Help text as argparse wants it: a percent sign doubled (argparse %-formats help)."""
    return text.replace("%", "%%")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig a `refit train` (lr-find, advise) command line describes, validated."""
    source = Path(args.source)
    usable = "give a labeled folder, a .csv / .tsv / .jsonl file of texts, or a config .json file"
    if not source.exists():
        raise ConfigError(f"{args.source} does not exist; {usable}.")
    if source.is_file() and source.suffix.lower() == ".json":
        config = RunConfig.load(source)
    elif source.is_dir() or source.suffix.lower() in (".csv", ".tsv", ".jsonl"):
        config = fresh_config(source.resolve())
    else:
        raise ConfigError(f"{args.source} is not something Refit Studio trains on; {usable}.")
    sections: dict[str, dict[str, Any]] = {}
    for flag in field_flags():
        value = getattr(args, flag.dest, None)
        if value is not None:
            sections.setdefault(flag.section, {})[flag.field] = flag.value(value)
    if args.method:
        method, last_n = parse_method(args.method)
        sections.setdefault("adapt", {})["method"] = method
        if last_n is not None:
            sections["adapt"]["last_n"] = last_n
    if args.no_pretrained:
        sections.setdefault("model", {})["pretrained"] = False
    if args.allow_remote_code:  # a record only; the grant itself is common.grant_of
        sections.setdefault("model", {})["allow_remote_code"] = True
    if args.lora_targets is not None:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        sections.setdefault("adapt", {})["lora_targets"] = targets
    if args.lora_merge:
        sections.setdefault("adapt", {})["lora_save_merged"] = True
    if args.no_bucketing:
        sections.setdefault("data", {})["length_bucketing"] = False
    top: dict[str, Any] = {
        name: dataclasses.replace(getattr(config, name), **changes)
        for name, changes in sections.items()
    }
    if args.name is not None:
        top["name"] = args.name
    if args.seed is not None:
        top["seed"] = args.seed
    config = config.replace(**top)
    if args.epochs is None and source.suffix.lower() != ".json":
        config = _default_epochs(config)
    return config.validate()


def _default_epochs(config: RunConfig) -> RunConfig:
    """A new run without --epochs: the modality's epochs for its data, if it has its own (a
    text run's come from the training set's size)."""
    from engine.data import detect_modality
    from engine.modalities import modality_of

    epochs = modality_of(detect_modality(config.data.path)).default_epochs(config)
    if epochs is None:
        return config
    return config.replace(schedule=dataclasses.replace(config.schedule, epochs=epochs))


def fresh_config(source: Path) -> RunConfig:
    """Defaults for a new dataset; a text dataset starts from the offline text starter."""
    from engine.data import detect_modality
    from engine.modalities import modality_of

    base = RunConfig()
    config = base.replace(data=dataclasses.replace(base.data, path=str(source)))
    starter = modality_of(detect_modality(source)).starter
    if starter != base.model.backbone:
        config = config.replace(model=dataclasses.replace(base.model, backbone=starter))
    return config


def parse_method(text: str) -> tuple[Method, int | None]:
    """--method's value: a Method, and N for last-N."""
    t = text.strip().lower()
    if t.startswith("last-") and t[5:].isdigit():
        return Method.LAST_N, int(t[5:])
    aliases = {
        "linear": Method.LINEAR_PROBE,
        "probe": Method.LINEAR_PROBE,
        "last-n": Method.LAST_N,
        "finetune": Method.FULL,
        "fine-tune": Method.FULL,
        "full-fine-tune": Method.FULL,
        "recommended": Method.AUTO,
    }
    if t in aliases:
        return aliases[t], None
    try:
        return Method(t), None
    except ValueError:
        raise ConfigError(
            f"--method {text!r} is not known; use auto, linear-probe, last-N (e.g. last-2), full "
            "or lora."
        ) from None


def json_target(name: str | None, config: RunConfig) -> Path | None:
    """Where --json writes; never inside the dataset folder (the user's data is read-only)."""
    if not name:
        return None
    target = Path(name).expanduser().resolve()
    data = Path(config.data.path).expanduser().resolve()
    if target == data or (data.is_dir() and target.is_relative_to(data)):
        raise ConfigError(
            f"--json {name} is inside the dataset {config.data.path}, which Refit Studio never "
            "writes to; choose a file outside it."
        )
    if target.is_dir():
        raise ConfigError(
            f"--json {name} is a folder; give a file name inside it, for example "
            f"{Path(name) / 'advice.json'}."
        )
    return target
