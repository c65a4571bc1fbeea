"""MODEL_CARD.md: what an exported model is, what it was trained and measured on, and its limits."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.export.manifest import MODEL_CARD
from engine.export.markdown import md_code, md_text
from engine.files import write_bytes_atomic
from engine.modalities import modality_of
from engine.runs import RunDir
from engine.task import Task

SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}


def split_fingerprint(digests: list[str]) -> str:
    """SHA-256 (hex) over the sorted example digests of a split, one per line (the reviewer
    report's section 11 computes the same)."""
    from engine.evaluation.reviewer import split_fingerprint as fingerprint

    return fingerprint(digests)


def class_counts(splits: dict[str, Any]) -> dict[str, list[int]]:
    """Examples per class (in class order) of each split in splits.json."""
    classes = list(splits.get("classes", []))
    counts: dict[str, list[int]] = {}
    for split in SPLITS:
        row = [0] * len(classes)
        for example in splits.get(split, []):
            row[int(example[1])] += 1
        counts[split] = row
    return counts


def write_model_card(
    run: RunDir,
    out: Path,
    *,
    checkpoint: str = "best",
    task: Task | None = None,
) -> Path:
    """Write out/MODEL_CARD.md for ``run``: the reviewer's numbered sections in short form
    (engine.evaluation.reviewer: intended use and reference standard, data, preprocessing,
    split, model, metrics with intervals, calibration, subgroups, mistakes, limitations,
    fingerprint, the CLAIM / TRIPOD+AI checklist), with the validation metrics (evaluated now if
    the run has none saved) and test metrics when the test split was evaluated; then config,
    environment and files. A validation
    evaluated now is said on ``task`` (and a cancelled task raises Cancelled first)."""
    from engine.evaluation.reviewer import reviewer_report, sections_markdown

    config = run.config()
    splits = run.splits()
    state = run.state()
    classes = list(splits.get("classes") or run.summary().get("classes") or [])
    val = _validation(run, checkpoint, task)
    test = _saved(run, "test")
    review = reviewer_report(run, val if not isinstance(val, str) else None)
    metrics = [_metrics(val, "Validation metrics", "validation")]
    if test:
        metrics.append(_metrics(test, "Test metrics (held-out test split)", "test"))
    reviewer = sections_markdown(
        review,
        after={
            1: _intended_use(classes, splits),
            2: _data(splits),
            5: _model(config, state, splits),
            6: "\n\n".join(metrics),
            10: _limitations(splits),
        },
    )
    sections = [
        _header(run, config, checkpoint),
        reviewer,
        _config(config),
        _environment(state),
        _files(out),
    ]
    text = "\n\n".join(s.strip() for s in sections if s) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    return write_bytes_atomic(out / MODEL_CARD, text.encode("utf-8"))


# -- evaluations --------------------------------------------------------------------------------


def _saved(run: RunDir, split: str) -> Any:
    from engine.evaluation.report import load_evaluation

    return load_evaluation(run, split)


def _validation(run: RunDir, checkpoint: str, task: Task | None) -> Any:
    """The saved validation evaluation of this checkpoint; else one made now (saved when the
    run had none, so the app's Results page shows the same numbers); else a sentence why not."""
    from engine.evaluation.predictions import predict_split, split_groups
    from engine.evaluation.report import evaluate, evaluate_run
    from engine.training.provenance import error_sentence

    saved = _saved(run, "val")
    if saved is not None and saved.checkpoint == checkpoint:
        return saved
    if task is not None:  # outside the try: a cancelled export stops here
        task.check_cancelled()
        task.say("Evaluating the validation split for the model card")
    try:
        if saved is None:
            return evaluate_run(run, "val", checkpoint=checkpoint)
        preds = predict_split(run, "val", checkpoint=checkpoint)
        return evaluate(preds, groups=split_groups(run, preds))
    except Exception as exc:  # the card is still useful without metrics; it says why
        return f"The validation split could not be evaluated: {error_sentence(exc)}"


# -- sections -----------------------------------------------------------------------------------


def _header(run: RunDir, config: Any, checkpoint: str) -> str:
    title = config.name or run.run_id
    today = datetime.now().strftime("%Y-%m-%d")
    return (
        f"# Model card: {md_text(title)}\n\n"
        f"Exported on {today} by Refit Studio from run {md_code(run.run_id)} ({checkpoint} "
        "checkpoint)."
    )


def _model(config: Any, state: dict[str, Any], splits: dict[str, Any]) -> str:
    from engine.models import resolve_entry
    from engine.models.errors import ModelError

    try:
        name = md_text(resolve_entry(config.model.backbone).display_name)
        backbone = f"{name} ({md_code(config.model.backbone)})"
    except ModelError:
        backbone = md_code(config.model.backbone)
    method = str(config.adapt.method)
    if method == "lora":
        method += (
            f" (rank {config.adapt.lora_rank}, alpha {config.adapt.lora_alpha:g}; "
            "merged into the weights in this export)"
        )
    elif method == "last-n":
        method += f" (last {config.adapt.last_n} layer groups)"
    lines = [f"- Backbone: {backbone}", f"- Method: {method}"]
    trainable, total = state.get("trainable_params"), state.get("total_params")
    if isinstance(trainable, int) and isinstance(total, int) and total:
        lines.append(
            f"- Trainable parameters: {trainable:,} of {total:,} ({trainable / total:.2%})"
        )
    modality = modality_of(splits.get("modality", state.get("modality", "image")))
    line = modality.card_input(state)
    if line is not None:
        lines.append(line)
    lines.append("- Output: class logits; their softmax gives one probability per class")
    return "\n".join(lines)


def _intended_use(classes: list[str], splits: dict[str, Any]) -> str:
    what = modality_of(splits.get("modality") or "image").noun
    names = ", ".join(md_text(c) for c in classes)
    return (
        f"Sorts {what} like those it was trained on into one of {len(classes)} classes "
        f"({names}), as an aid to a person who checks its answers, not as the sole basis for "
        "a decision."
    )


def _data(splits: dict[str, Any]) -> str:
    """The dataset by its folder's name (a full path may name the user or a patient)."""
    root = str(splits.get("root") or "")
    return f"Dataset: {md_code(Path(root).name if root else 'unknown')}"


def _num(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.4f}"


def _ci(interval: Any) -> str:
    """' (95% CI 0.871-0.941)' beside a number; '' without one (the notes below say why)."""
    return f" ({interval.text()})" if interval is not None and interval.measured else ""


def _metrics(ev: Any, title: str, split_name: str) -> str:
    if ev is None:
        return f"## {title}\n\nThe {split_name} split has not been evaluated."
    if isinstance(ev, str):
        return f"## {title}\n\n{ev}"
    iv = ev.intervals
    lines = [
        f"## {title}",
        "",
        f"On {ev.n} {split_name} examples ({ev.checkpoint} checkpoint, evaluated {ev.created}):",
        "",
        f"- Accuracy: {_num(ev.accuracy)}{_ci(iv and iv.accuracy)}",
        f"- Balanced accuracy: {_num(ev.balanced_accuracy)}{_ci(iv and iv.balanced_accuracy)}",
        f"- Macro F1: {_num(ev.macro_f1)}{_ci(iv and iv.macro_f1)}",
        f"- Expected calibration error: {_num(ev.calibration.ece)}"
        f"{_ci(iv and iv.calibration_error)}",
    ]
    if ev.positive and ev.operating is not None:
        op = ev.operating
        o = iv.operating if iv is not None else None
        lines.append(
            f"- Positive class {md_text(ev.positive)} at threshold {op.threshold:g}: sensitivity "
            f"{_num(op.sensitivity)}{_ci(o and o.sensitivity)}, specificity "
            f"{_num(op.specificity)}{_ci(o and o.specificity)}, precision (PPV) "
            f"{_num(op.precision)}{_ci(o and o.ppv)}"
        )
    if iv is not None and iv.macro_roc_auc is not None:
        aucs = [c.auc for c in ev.roc.values() if not math.isnan(c.auc)]
        mean = sum(aucs) / len(aucs) if aucs else math.nan
        lines.append(f"- Mean ROC AUC over the classes: {_num(mean)}{_ci(iv.macro_roc_auc)}")
    lines += [f"\n**Warning:** {md_text(w)}" for w in ev.warnings]
    lines += ["", "| class | precision | recall | F1 | ROC AUC | support |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    lines += [_class_row(ev, c) for c in ev.per_class]
    if iv is not None:
        lines += ["", md_text(iv.method)]
        notes = iv.notes([c.name for c in ev.per_class if c.measured])
        lines += [""] + [f"- {md_text(n)}" for n in notes] if notes else []
    return "\n".join(lines)


def _class_row(ev: Any, c: Any) -> str:
    """One row of the per-class table (each number with its interval in brackets); a class
    without examples says so instead of 0s."""
    if not c.measured:
        return f"| {md_text(c.name)} | no examples | no examples | no examples | - | 0 |"
    iv = ev.intervals
    ci = iv.of_class(c.name) if iv is not None else None
    curve = ev.roc.get(c.name)
    auc = "-"
    if curve is not None:
        auc = _num(curve.auc) + _ci(iv.roc_auc.get(c.name) if iv is not None else None)
    precision = _num(c.precision) + _ci(ci and ci.ppv)
    recall = _num(c.recall) + _ci(ci and ci.sensitivity)
    numbers = f"{precision} | {recall} | {_num(c.f1)} | {auc}"
    return f"| {md_text(c.name)} | {numbers} | {c.support} |"


def _config(config: Any) -> str:
    body = json.dumps(config.to_dict(), indent=2, default=str)
    return f"## Training configuration\n\nSeed: {config.seed}\n\n```json\n{body}\n```"


def _environment(state: dict[str, Any]) -> str:
    lines = ["## Environment", ""]
    facts = [
        ("Trained on", state.get("device")),
        ("Precision", state.get("precision")),
        ("Python", state.get("python")),
        ("Platform", state.get("platform")),
        ("Run created", state.get("created")),
        ("Run ended", state.get("ended")),
    ]
    lines += [f"- {name}: {value}" for name, value in facts if value]
    versions = state.get("versions") or {}
    if versions:
        lines.append(
            "- Software: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def _limitations(splits: dict[str, Any]) -> str:
    n = sum(len(splits.get(s, [])) for s in SPLITS)
    return (
        f"The model learned from {n} examples of one dataset; it can be wrong, and is "
        "likely wrong more often on data unlike it (other sources, devices, populations or "
        "classes it never saw), so measure it on your own data before relying on it."
    )


def _files(out: Path) -> str:
    files = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != MODEL_CARD
    )
    if not files:
        return ""
    shown = [f for f in files if "/" not in f] + sorted(
        {f.split("/")[0] + "/" for f in files if "/" in f}
    )
    return "## Files\n\n" + "\n".join(f"- `{f}`" for f in shown)
