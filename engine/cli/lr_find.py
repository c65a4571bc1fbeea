"""`refit lr-find`: the learning-rate range test of a dataset (or config) from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.cli.common import add_quiet_flag
from engine.cli.config_flags import add_train_flags, config_from_args, json_target
from engine.cli.progress import run_cancellable
from engine.config import ConfigError, RunConfig

STEPS = 100


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `lr-find` to the `refit` parser; it takes the same flags as `train`."""
    f = sub.add_parser(
        "lr-find",
        help="Find a learning rate: a short range test on the training split, with the same "
        "flags as train; prints the loss curve and a suggested --lr. Writes no run.",
    )
    add_train_flags(f)
    f.add_argument("--steps", type=int, default=STEPS, help="Steps of the test (default 100).")
    f.add_argument("--start-lr", type=float, default=1e-7, help="First rate (default 1e-7).")
    f.add_argument("--end-lr", type=float, default=10.0, help="Last rate (default 10).")
    f.add_argument("--json", metavar="FILE", help="Also write the whole curve to FILE as JSON.")
    add_quiet_flag(f)
    f.set_defaults(func=_cmd_lr_find)


def _cmd_lr_find(args: argparse.Namespace) -> int:
    from engine.trust import check_model

    config = config_from_args(args)
    json_path = json_target(args.json, config)
    _check_range(args)
    check_model(config.model.backbone, asked=config.model.allow_remote_code)
    curve = _run(config, args)
    if curve is None:
        return 1
    _print_curve(curve, config)
    if json_path is not None:
        from engine.files import write_json_atomic

        write_json_atomic(json_path, curve.to_dict())
        print(f"Wrote {json_path}")
    return 0


def _run(config: RunConfig, args: argparse.Namespace) -> Any:
    """The range test with progress bars; None when stopped by Ctrl+C."""
    from engine.advice import find_learning_rate
    from engine.task import Cancelled

    try:
        return run_cancellable(
            lambda on_event, task: find_learning_rate(
                config,
                workspace=args.workspace,
                on_event=on_event,
                task=task,
                start_lr=args.start_lr,
                end_lr=args.end_lr,
                steps=args.steps,
            ),
            quiet=args.quiet,
        )
    except Cancelled:
        print("Range test stopped by the user; nothing was written.", file=sys.stderr)
        return None


def _print_curve(curve: Any, config: RunConfig) -> None:
    if not curve.ran:
        print(curve.reason)
        return
    end = (
        f"stopped at {curve.diverged_at:.1e}, where the loss blew up"
        if curve.diverged_at is not None
        else f"up to {curve.lrs[-1]:.1e}"
    )
    print(f"Range test: {len(curve.lrs)} steps from {curve.lrs[0]:.1e}, {end}.")
    print(f"{'head lr':>10}  {'loss':>8}")
    for lr, loss in curve.table(10):
        print(f"{lr:>10.2e}  {loss:>8.4f}")
    if curve.suggestion is None:
        print(curve.reason)
        return
    print(
        f"Suggested learning rate: {curve.suggestion:.2e} (this config uses "
        f"{config.optim.lr:.2e}; train with --lr {curve.suggestion:.2e})."
    )
    print(curve.reason)


def _check_range(args: argparse.Namespace) -> None:
    if not 0 < args.start_lr < args.end_lr:
        raise ConfigError(
            f"--start-lr {args.start_lr} and --end-lr {args.end_lr} must be positive with the "
            "start below the end; for example --start-lr 1e-7 --end-lr 10."
        )
    if args.steps < 2:
        raise ConfigError(f"--steps {args.steps} is too few; use at least 2 (default 100).")
