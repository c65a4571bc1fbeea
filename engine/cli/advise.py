"""`refit advise`: what the Recommended method would train on a dataset, and why; no training."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli.common import add_quiet_flag
from engine.cli.config_flags import add_train_flags, config_from_args, json_target
from engine.cli.progress import run_cancellable
from engine.cli.reports import print_advice


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `advise` to the `refit` parser; it takes the same flags as `train`."""
    a = sub.add_parser(
        "advise",
        help="Look at a dataset as the Recommended method does (how well each depth of the "
        "backbone separates the classes, cheap trials of fine-tuning the last layers, the "
        "learning rate) and print the recipe it would train, with the reason. Writes no run.",
    )
    add_train_flags(a)
    a.add_argument("--json", metavar="FILE", help="Also write the advice to FILE as JSON.")
    add_quiet_flag(a)
    a.set_defaults(func=_cmd_advise)


def _cmd_advise(args: argparse.Namespace) -> int:
    from engine.trust import check_model

    config = config_from_args(args)
    json_path = json_target(args.json, config)
    check_model(config.model.backbone, asked=config.model.allow_remote_code)
    advice = _run(config, args)
    if advice is None:
        return 1
    record = advice.to_dict()
    print_advice(record)
    if json_path is not None:
        from engine.files import write_json_atomic

        write_json_atomic(json_path, record)
        print(f"Wrote {json_path}")
    return 0


def _run(config: Any, args: argparse.Namespace) -> Any:
    from engine.advice.standalone import advise
    from engine.task import Cancelled

    try:
        return run_cancellable(
            lambda on_event, task: advise(
                config, workspace=args.workspace, on_event=on_event, task=task
            ),
            quiet=args.quiet,
            message="Stopping (Ctrl+C again to abort)…",
        )
    except Cancelled:
        print("Stopped by the user; nothing was written.", file=sys.stderr)
        return None
