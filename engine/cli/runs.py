"""`refit runs`: the runs in the workspace."""

from __future__ import annotations

import argparse
import dataclasses
import json

from engine.terminal_text import terminal_safe


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `runs` to the `refit` parser."""
    ls = sub.add_parser("runs", help="List the runs in the workspace.")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_cmd_runs)


def _cmd_runs(args: argparse.Namespace) -> int:
    from engine.runs import Workspace, WorkspaceError

    ws = Workspace(args.workspace)
    problem = ws.problem()
    if problem:
        raise WorkspaceError(problem)
    runs = ws.list_runs()
    if args.json:
        print(json.dumps([{**dataclasses.asdict(r), "path": str(r.path)} for r in runs], indent=2))
        return 0
    if not runs:
        print(f"No runs yet in {terminal_safe(ws.runs_root)}.")
        return 0
    print(f"{'RUN':40} {'STATUS':11} {'METHOD':13} {'EPOCHS':>6} {'VAL ACC':>8}  BACKBONE")
    for r in runs:
        acc = r.best.get("val_accuracy")
        acc_text = f"{acc:.1%}" if acc is not None else "-"
        run_id, status, method, backbone = map(
            terminal_safe, (r.run_id, r.status, r.method, r.backbone)
        )
        print(f"{run_id:40} {status:11} {method:13} {r.epochs_done:>6} {acc_text:>8}  {backbone}")
        for problem in r.problems:
            print(f"  ! {terminal_safe(problem)}")
    return 0
