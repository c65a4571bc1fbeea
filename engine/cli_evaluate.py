"""`refit evaluate` and `refit compare`: judging trained runs from the command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from engine.cli_trust import add_remote_code_flag


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the evaluation commands to the `refit` parser."""
    e = sub.add_parser(
        "evaluate",
        help="Score a trained run on its validation split (or the unlocked test split): "
        "per-class metrics, AUCs, calibration, confusion matrix.",
    )
    e.add_argument("run", help="Run id (or a unique prefix) or run folder.")
    _split_flags(e)
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument(
        "--positive",
        metavar="CLASS",
        help="Two-class runs: the positive class (default: the rarer class in training).",
    )
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser(
        "compare",
        help="Compare two runs on the same examples (McNemar's test); with one run, compare it "
        "with its base: a linear probe on the same data and backbone, trained if missing.",
    )
    c.add_argument("run_a", metavar="RUN_A", help="Run id (or a unique prefix) or run folder.")
    c.add_argument("run_b", metavar="RUN_B", nargs="?", help="Second run (default: the base).")
    _split_flags(c)
    c.add_argument("--quiet", action="store_true", help="No progress bars.")
    c.set_defaults(func=_cmd_compare)


def _split_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--test",
        action="store_true",
        help="Unlock the test split and use it (do this once, when you are done choosing).",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_runtime_flag(p)
    p.add_argument("--json", action="store_true", help="Print the result as JSON.")
    add_remote_code_flag(p)


def add_runtime_flag(p: argparse.ArgumentParser) -> None:
    """--runtime for commands that predict with a trained run."""
    p.add_argument(
        "--runtime",
        choices=["auto", "torch", "onnxruntime"],
        help="Where images run: auto (default) uses onnxruntime on the CPU, checked against "
        "torch; naming one predicts again with it instead of reusing saved predictions.",
    )


# -- evaluate -----------------------------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.cli import _Progress
    from engine.evaluation.predictions import TestSplitLocked, predictions_path, saved_predictions
    from engine.evaluation.report import evaluate_run, evaluation_path
    from engine.runs import Workspace

    run = Workspace(args.workspace).open_run(args.run)
    split = "test" if args.test else "val"
    # A named runtime predicts again (to compare runtimes): nothing is reused then.
    reused = args.runtime is None and saved_predictions(run, split, args.checkpoint) is not None
    try:
        with _Progress("Predicting", quiet=args.json, unit="example") as bar:
            ev = evaluate_run(
                run,
                split,
                allow_test=args.test,
                checkpoint=args.checkpoint,
                positive=args.positive,
                device=args.device,
                progress=bar.update,
                runtime=args.runtime or "auto",
                reuse=args.runtime is None,
            )
    except TestSplitLocked as exc:
        return _refuse(exc)
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
    else:
        print("\n".join(evaluation_lines(ev)))
        if reused:
            print(
                f"\nReused the predictions saved from the {args.checkpoint} checkpoint "
                f"({predictions_path(run, split)}); nothing was predicted again."
            )
        print(f"\nSaved {evaluation_path(run, split)}")
    return 0


def saved_evaluation_lines(path: str) -> list[str]:
    """The short report `refit train` ends with: the evaluation a finished run saved."""
    from engine.evaluation.report import Evaluation
    from engine.files import read_json_object

    ev = Evaluation.from_dict(read_json_object(path))
    what = "texts" if ev.modality == "text" else "images"
    return [
        f"Evaluated the {ev.checkpoint} checkpoint on the validation split ({ev.n} {what}): "
        f"accuracy {ev.accuracy:.1%}, balanced accuracy {ev.balanced_accuracy:.1%}, "
        f"macro F1 {ev.macro_f1:.3f}",
        f"Saved {path} (`refit evaluate {ev.run_id}` prints the full report)",
    ]


def evaluation_lines(ev: Any) -> list[str]:
    """The text report of an Evaluation."""
    what = "texts" if ev.modality == "text" else "images"
    lines = [
        f"Run {ev.run_id}, {ev.split} split ({ev.n} {what}), {ev.checkpoint} checkpoint",
        f"  accuracy {ev.accuracy:.1%}   balanced accuracy {ev.balanced_accuracy:.1%}   "
        f"macro F1 {ev.macro_f1:.3f}   calibration error (ECE) {ev.calibration.ece:.3f}",
        "",
    ]
    lines += [f"Warning: {w}" for w in ev.warnings] + ([""] if ev.warnings else [])
    lines += _class_table(ev)
    if ev.positive is not None and ev.operating is not None:
        op, roc, pr = ev.operating, ev.roc[ev.positive], ev.pr[ev.positive]
        negative = next(c for c in ev.classes if c != ev.positive)
        lines += [
            "",
            f"Positive class '{ev.positive}' when P({ev.positive}) >= {op.threshold:g}:",
            f"  sensitivity {op.sensitivity:.1%} ({op.tp} of {op.tp + op.fn}), specificity "
            f"{op.specificity:.1%} ({op.tn} of {op.tn + op.fp}), precision {op.precision:.1%}",
            f"  ROC AUC {_num(roc.auc)}, average precision {_num(pr.auc)} "
            f"({ev.positive} vs {negative})",
        ]
    lines += ["", "Confusion matrix (rows: true class, columns: predicted class)"]
    lines += confusion_lines(ev.classes, ev.confusion)
    return lines


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


def _refuse(exc: Exception) -> int:
    print(f"refit: {exc}", file=sys.stderr)
    return 2


# -- compare ------------------------------------------------------------------------------------


def _cmd_compare(args: argparse.Namespace) -> int:
    from engine.cli import _Progress
    from engine.evaluation.compare import compare_runs
    from engine.evaluation.predictions import TestSplitLocked, check_split
    from engine.runs import Workspace

    ws = Workspace(args.workspace)
    run_a = ws.open_run(args.run_a)
    split = "test" if args.test else "val"
    try:
        check_split(run_a, split, allow_test=args.test)
        run_b = ws.open_run(args.run_b) if args.run_b else _base_of(ws, run_a, args)
        if run_b is None:
            return 2
        with _Progress("Predicting", quiet=args.json or args.quiet, unit="example") as bar:
            result = compare_runs(
                run_a,
                run_b,
                split,
                allow_test=args.test,
                device=args.device,
                progress=bar.update,
            )
    except TestSplitLocked as exc:
        return _refuse(exc)
    if args.json:
        import dataclasses

        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print("\n".join(comparison_lines(result, _method(run_a), _method(run_b))))
    return 0


def _base_of(ws: Any, run: Any, args: argparse.Namespace) -> Any:
    """The base run of ``run`` (trained now when missing), or None after printing why not."""
    from engine.evaluation.base import base_config, find_base_run, is_linear_probe, train_base

    config = run.config()
    if is_linear_probe(config):
        print(
            f"refit: The run {run.run_id} is a linear probe, so it is its own base; name a "
            "second run to compare it with.",
            file=sys.stderr,
        )
        return None
    found = find_base_run(ws, run)
    if found is not None:
        _note(args, f"Base: {found.run_id} (a linear probe on the same data and backbone)")
        return found
    _note(
        args,
        f"No base run for {run.run_id} yet: training '{base_config(config).name}', a linear "
        "probe on the same data, backbone and split.",
    )
    from engine.cli import _TrainView

    view = _TrainView(args.quiet or args.json)
    try:
        base = train_base(ws, run, on_event=view.on_event if not args.json else None)
    finally:
        view.close()
    _note(args, f"Base: {base.run_id}")
    return base


def _note(args: argparse.Namespace, text: str) -> None:
    print(text, file=sys.stderr if args.json else sys.stdout)


def _method(run: Any) -> str:
    try:
        return str(run.config().adapt.method)
    except Exception:  # a damaged config still lets the comparison print
        return "?"


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
