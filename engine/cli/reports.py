"""What the `refit` commands print about their results: evaluation reports, comparisons, advice.

Plain text formatting of engine results, shared by the commands that compute them and by the
progress view of `refit train` (which ends with the evaluation a run saved and shows its advice).
"""

from __future__ import annotations

import math
from typing import Any


def saved_evaluation_lines(path: str) -> list[str]:
    """The short report `refit train` ends with: the evaluation a finished run saved."""
    from engine.evaluation.report import Evaluation
    from engine.files import read_json_object
    from engine.modalities import modality_of

    ev = Evaluation.from_dict(read_json_object(path))
    what = modality_of(ev.modality).noun
    iv = ev.intervals
    return [
        f"Evaluated the {ev.checkpoint} checkpoint on the validation split ({ev.n} {what}): "
        f"accuracy {ev.accuracy:.1%}{_ci(iv and iv.accuracy, True)}, balanced accuracy "
        f"{ev.balanced_accuracy:.1%}{_ci(iv and iv.balanced_accuracy, True)}, "
        f"macro F1 {ev.macro_f1:.3f}{_ci(iv and iv.macro_f1)}",
        f"Saved {path} (`refit evaluate {ev.run_id}` prints the full report)",
    ]


def evaluation_lines(ev: Any) -> list[str]:
    """The text report of an Evaluation."""
    from engine.modalities import modality_of

    what = modality_of(ev.modality).noun
    iv = ev.intervals
    lines = [
        f"Run {ev.run_id}, {ev.split} split ({ev.n} {what}), {ev.checkpoint} checkpoint",
        f"  accuracy {ev.accuracy:.1%}{_ci(iv and iv.accuracy, True)}   balanced accuracy "
        f"{ev.balanced_accuracy:.1%}{_ci(iv and iv.balanced_accuracy, True)}",
        f"  macro F1 {ev.macro_f1:.3f}{_ci(iv and iv.macro_f1)}   calibration error (ECE) "
        f"{ev.calibration.ece:.3f}{_ci(iv and iv.calibration_error)}",
        "",
    ]
    lines += [f"Warning: {w}" for w in ev.warnings] + ([""] if ev.warnings else [])
    lines += _class_table(ev)
    if iv is not None:
        lines += ["", *_interval_table(ev, iv)]
    if ev.positive is not None and ev.operating is not None:
        op, roc, pr = ev.operating, ev.roc[ev.positive], ev.pr[ev.positive]
        negative = next(c for c in ev.classes if c != ev.positive)
        o = iv.operating if iv is not None else None
        lines += [
            "",
            f"Positive class '{ev.positive}' when P({ev.positive}) >= {op.threshold:g}:",
            f"  sensitivity {op.sensitivity:.1%} ({op.tp} of {op.tp + op.fn}"
            f"{_ci(o and o.sensitivity, True, '; ')})",
            f"  specificity {op.specificity:.1%} ({op.tn} of {op.tn + op.fp}"
            f"{_ci(o and o.specificity, True, '; ')})",
            f"  precision (PPV) {op.precision:.1%}{_ci(o and o.ppv, True)}",
            f"  ROC AUC {_num(roc.auc)}{_ci(iv and iv.roc_auc.get(ev.positive))}, average "
            f"precision {_num(pr.auc)} ({ev.positive} vs {negative})",
        ]
    if iv is not None:
        lines += ["", *_wrapped(iv.method), *_interval_notes(ev, iv)]
    lines += ["", "Confusion matrix (rows: true class, columns: predicted class)"]
    lines += confusion_lines(ev.classes, ev.confusion)
    return lines


def _ci(interval: Any, percent: bool = False, inside: str = "") -> str:
    """The text beside a number: ' (95% CI 0.871-0.941)', or with ``inside`` (e.g. '; ') that
    text joined to a bracket already open; '' when there is no interval (notes say why)."""
    if interval is None or not interval.measured:
        return ""
    return f"{inside}{interval.text(percent)}" if inside else f" ({interval.text(percent)})"


def _cell(value: float, interval: Any) -> str:
    """A number and its interval in a table cell: '0.912 (0.871-0.941)'."""
    if value is None or math.isnan(value):
        return "-"
    if interval is None or not interval.measured:
        return f"{value:.3f} (no CI)"
    return f"{value:.3f} ({interval.low:.3f}-{interval.high:.3f})"


def _interval_table(ev: Any, iv: Any) -> list[str]:
    """Each class against the rest with its 95% intervals: sensitivity, specificity, PPV, NPV
    (counted from the confusion matrix); with more than two classes also ROC AUC."""
    m, total = ev.confusion, ev.n
    w = max(5, *(len(c) for c in ev.classes))
    heads = ["sensitivity", "specificity", "PPV", "NPV"]
    aucs = ev.positive is None
    if aucs:
        heads.append("ROC AUC")
    cw = 19
    out = [
        f"Each class vs the rest, {iv.level:.0%} CI in brackets (sensitivity = recall, "
        "PPV = precision):",
        f"{'class':<{w}}  " + "  ".join(f"{h:>{cw}}" for h in heads),
    ]
    for i, c in enumerate(ev.per_class):
        ci = iv.of_class(c.name)
        if not c.measured or ci is None:
            out.append(f"{c.name:<{w}}  {'no examples':>{cw}}")
            continue
        tp = m[i][i]
        fn = sum(m[i]) - tp
        fp = sum(row[i] for row in m) - tp
        tn = total - tp - fn - fp
        cells = [
            _cell(_rate(tp, tp + fn), ci.sensitivity),
            _cell(_rate(tn, tn + fp), ci.specificity),
            _cell(_rate(tp, tp + fp), ci.ppv),
            _cell(_rate(tn, tn + fn), ci.npv),
        ]
        if aucs:
            cells.append(_cell(ev.roc[c.name].auc, iv.roc_auc.get(c.name)))
        out.append(f"{c.name:<{w}}  " + "  ".join(f"{v:>{cw}}" for v in cells))
    if aucs and iv.macro_roc_auc is not None:
        aucs_measured = [v.auc for v in ev.roc.values() if not math.isnan(v.auc)]
        macro = sum(aucs_measured) / len(aucs_measured) if aucs_measured else math.nan
        out.append(f"mean ROC AUC over the classes: {_num(macro)}{_ci(iv.macro_roc_auc)}")
    return out


def _interval_notes(ev: Any, iv: Any) -> list[str]:
    """Why an interval is missing (or what a bootstrap left out), one line each."""
    notes = iv.notes([c.name for c in ev.per_class if c.measured])
    return ["Intervals not given or worth a note:", *(f"  {n}" for n in notes)] if notes else []


def _wrapped(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def _rate(a: int, b: int) -> float:
    return a / b if b else math.nan


def _class_table(ev: Any) -> list[str]:
    """Per-class metrics; with more than two classes also each class's one-vs-rest AUCs (a
    two-class run reports its positive class's AUCs below the table)."""
    w = max(5, *(len(c) for c in ev.classes))
    aucs = ev.positive is None
    head = f"{'class':<{w}}  {'precision':>9}  {'recall':>6}  {'F1':>5}  {'support':>7}"
    rows = [head + (f"  {'ROC AUC':>7}  {'avg precision':>13}" if aucs else "")]
    for c in ev.per_class:
        if c.measured:
            row = f"{c.name:<{w}}  {c.precision:>9.3f}  {c.recall:>6.3f}  {c.f1:>5.3f}"
        else:  # numbers of a class without examples would mislead
            row = f"{c.name:<{w}}  {'no examples':>24}"
        row += f"  {c.support:>7}"
        if aucs:
            row += f"  {_num(ev.roc[c.name].auc):>7}  {_num(ev.pr[c.name].auc):>13}"
        rows.append(row)
    return rows


def confusion_lines(classes: tuple[str, ...], confusion: tuple[tuple[int, ...], ...]) -> list[str]:
    """A confusion matrix with class names on both axes, columns aligned."""
    corner = "true \\ predicted"
    first = max(len(corner), *(len(c) for c in classes))
    widths = [max(len(c), *(len(str(row[j])) for row in confusion)) for j, c in enumerate(classes)]
    out = [
        f"{corner:<{first}}  "
        + "  ".join(f"{c:>{w}}" for c, w in zip(classes, widths, strict=True))
    ]
    for name, row in zip(classes, confusion, strict=True):
        out.append(
            f"{name:<{first}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True))
        )
    return out


def _num(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def comparison_lines(c: Any, method_a: str = "", method_b: str = "") -> list[str]:
    """The text report of a Comparison."""
    w = max(len(c.run_a), len(c.run_b))
    ma, mb = max(len(method_a), 1), max(len(method_b), 1)
    m = max(ma, mb)
    return [
        f"A  {c.run_a:<{w}}  {method_a:<{m}}  accuracy {c.accuracy_a:.1%}",
        f"B  {c.run_b:<{w}}  {method_b:<{m}}  accuracy {c.accuracy_b:.1%}",
        "",
        f"On the {c.n} {c.split} examples both runs predicted:",
        f"{'':9}  {'B right':>7}  {'B wrong':>7}",
        f"{'A right':<9}  {c.both_right:>7}  {c.only_a_right:>7}",
        f"{'A wrong':<9}  {c.only_b_right:>7}  {c.both_wrong:>7}",
        "",
        f"McNemar's test ({c.method}): statistic {c.statistic:.3g}, p = {c.p_value:.3g}",
        c.sentence,
    ]


def print_advice(advice: dict, *, recipe: bool = True) -> None:
    """The depth table, the trials and (with ``recipe``) the recipe chosen, as `refit advise`
    and `refit train` show them."""
    depths = advice.get("depths") or []
    if depths:
        print(f"{'after group':<16} {'features':>8}  {'CV accuracy':>11}")
        for d in depths:
            print(f"{d['group']:<16} {d['dim']:>8}  {_score(d.get('cv_accuracy')):>11}")
    for t in advice.get("trials") or []:
        print(
            f"fine-tune last {t['trained_groups']} groups at lr {t['lr']:.1e}: "
            f"{_score(t.get('accuracy'))} on held-out training images"
        )
    if not recipe:
        return
    method = advice.get("method", "?")
    if method == "last-n":
        method = f"last-{advice.get('last_n')} (lr {advice.get('lr', 0):.1e}, "
        method += f"{advice.get('epochs')} epochs)"
    print(f"Recommended: {method}. {advice.get('reason', '')}")


def _score(value: float | None) -> str:
    """A score as printed; advice.json stores a score that could not be measured as null."""
    return "n/a" if value is None else f"{value:.3f}"
