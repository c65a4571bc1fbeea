"""`refit advise`: what the Recommended method would train on a dataset, and why; no training."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `advise` to the `refit` parser; it takes the same flags as `train`."""
    from engine.cli import add_train_flags

    a = sub.add_parser(
        "advise",
        help="Look at a dataset as the Recommended method does (how well each depth of the "
        "backbone separates the classes, cheap trials of fine-tuning the last layers, the "
        "learning rate) and print the recipe it would train, with the reason. Writes no run.",
    )
    add_train_flags(a)
    a.add_argument("--json", metavar="FILE", help="Also write the advice to FILE as JSON.")
    a.add_argument("--quiet", action="store_true", help="No progress bars.")
    a.set_defaults(func=_cmd_advise)


def _cmd_advise(args: argparse.Namespace) -> int:
    from engine.cli import _config_from_args
    from engine.cli_lr_find import _json_target
    from engine.trust import check_model

    config = _config_from_args(args)
    json_path = _json_target(args.json, config)
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
    from engine.cli import _TrainView, cancel_on_sigint
    from engine.training.control import Cancelled

    view = _TrainView(args.quiet)
    try:
        with cancel_on_sigint("Stopping (Ctrl+C again to abort)…") as control:
            return advise(config, workspace=args.workspace, on_event=view.on_event, control=control)
    except Cancelled:
        print("Stopped by the user; nothing was written.", file=sys.stderr)
        return None
    finally:
        view.close()


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
