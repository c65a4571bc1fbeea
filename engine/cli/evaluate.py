"""`refit evaluate` and `refit compare`: judging trained runs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.cli.common import (
    add_quiet_flag,
    add_remote_code_flag,
    add_run_argument,
    add_runtime_flag,
    ran_where,
)
from engine.cli.progress import Progress, TrainView
from engine.cli.reports import comparison_lines, evaluation_lines
from engine.task import Task


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the evaluation commands to the `refit` parser."""
    e = sub.add_parser(
        "evaluate",
        help="Score a trained run on its validation split (or the unlocked test split): "
        "per-class metrics, AUCs, calibration, confusion matrix.",
    )
    add_run_argument(e)
    _split_flags(e)
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument(
        "--positive",
        metavar="CLASS",
        help="Two-class runs: the positive class (default: the rarer class in training).",
    )
    e.add_argument(
        "--subgroup",
        action="append",
        default=[],
        metavar="ATTRIBUTE",
        help="Metrics per value of a manifest column (sex, site, age) or a DICOM tag "
        "(PatientSex, PatientAge, Manufacturer, ManufacturerModelName, Modality, "
        "InstitutionName, BodyPartExamined, ViewPosition); a subgroup that lags the rest is "
        "flagged. Repeatable.",
    )
    e.set_defaults(func=_cmd_evaluate)

    c = sub.add_parser(
        "compare",
        help="Compare two runs on the same examples (McNemar's test); with one run, compare it "
        "with its base: a linear probe on the same data and backbone, trained if missing.",
    )
    add_run_argument(c, "run_a", metavar="RUN_A")
    add_run_argument(c, "run_b", metavar="RUN_B", nargs="?", help="Second run (default: the base).")
    _split_flags(c)
    add_quiet_flag(c)
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


# -- evaluate -----------------------------------------------------------------------------------


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from engine.evaluation.predictions import TestSplitLocked, predictions_path, saved_predictions
    from engine.evaluation.report import evaluate_run, evaluation_path
    from engine.runs import Workspace

    run = Workspace(args.workspace).open_run(args.run)
    split = "test" if args.test else "val"
    if args.subgroup:  # an unusable attribute is refused before anything is predicted
        from engine.evaluation.subgroups import (
            SubgroupError,
            resolve_attribute,
            subgroup_attributes,
        )

        try:
            available = subgroup_attributes(run, split)
            for name in args.subgroup:
                resolve_attribute(name, available)
        except SubgroupError as exc:
            return _refuse(exc)
    # A named runtime predicts again (to compare runtimes): nothing is reused then.
    reused = args.runtime is None and saved_predictions(run, split, args.checkpoint) is not None
    notes: list[str] = []  # where the predictions ran, said when a runtime was named
    try:
        with Progress("Predicting", quiet=args.json, unit="example") as bar:
            ev = evaluate_run(
                run,
                split,
                allow_test=args.test,
                checkpoint=args.checkpoint,
                positive=args.positive,
                device=args.device,
                task=Task(bar.report),
                runtime=args.runtime or "auto",
                reuse=args.runtime is None,
                notes=notes,
            )
    except TestSplitLocked as exc:
        return _refuse(exc)
    tables: list[Any] = []
    if args.subgroup:
        from engine.evaluation.report import load_evaluation
        from engine.evaluation.subgroups import SubgroupError, run_subgroups

        try:
            tables = run_subgroups(run, split, args.subgroup, positive=args.positive)
        except SubgroupError as exc:
            return _refuse(exc)
        ev = load_evaluation(run, split) or ev
    if args.json:
        print(json.dumps(ev.to_dict(), indent=2))
    else:
        print("\n".join(evaluation_lines(ev)))
        for table in tables:
            print("\n" + "\n".join(subgroup_lines(table)))
        if reused:
            print(
                f"\nReused the predictions saved from the {args.checkpoint} checkpoint "
                f"({predictions_path(run, split)}); nothing was predicted again."
            )
        if args.runtime:
            print("\n" + ran_where(notes))
        print(f"\nSaved {evaluation_path(run, split)}")
    return 0


def subgroup_lines(table: Any) -> list[str]:
    """The text table of one SubgroupTable: a row per value, then the flag sentences."""
    lines = [f"Subgroups by {table.attribute} ({table.source}), 95% CI in brackets:"]
    head = f"  {'value':<22} {'images':>6} {'patients':>8}  {'accuracy':<20} {'ROC AUC':<22}"
    if table.positive is not None:
        head += f" sensitivity / specificity ({table.positive})"
    lines.append(head)
    for r in table.rows:
        patients = "" if r.patients is None else str(r.patients)
        accuracy, auc, sensitivity, specificity = r.shown(missing="-")
        line = f"  {r.value[:22]:<22} {r.n:>6} {patients:>8}  {accuracy:<20} {auc:<22}"
        if table.positive is not None:
            line += f" {sensitivity} / {specificity}"
        if r.lags:
            line += "  LAGS"
        elif r.note:
            line += f"  ({r.note})"
        lines.append(line.rstrip())
    lines += [f"  {s}" for s in table.flagged] or ["  No subgroup lags the rest."]
    return lines


def _refuse(exc: Exception) -> int:
    print(f"refit: {exc}", file=sys.stderr)
    return 2


# -- compare ------------------------------------------------------------------------------------


def _cmd_compare(args: argparse.Namespace) -> int:
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
        with Progress("Predicting", quiet=args.json or args.quiet, unit="example") as bar:
            result = compare_runs(
                run_a,
                run_b,
                split,
                allow_test=args.test,
                device=args.device,
                task=Task(bar.report),
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
    view = TrainView(args.quiet or args.json)
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
