"""The `refit` command line: its parser, assembled from the command modules, and its entry point.

One module per command group (scan, train and resume, predict, runs, backbones, evaluate and
compare, export, trust, lr-find, advise); common.py holds what they share. No module of the
package imports torch when it is imported: `refit train` forks its prefetching child first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import (
    advise,
    backbones,
    evaluate,
    export,
    export_job,
    lr_find,
    predict,
    runs,
    scan,
    train,
    trust,
)
from engine.cli.common import add_global_options, grant_of, quiet_stdout
from engine.terminal_text import safe_terminal, terminal_safe

# The commands in the order `refit --help` lists them.
COMMAND_MODULES = (
    scan,
    train,
    predict,
    runs,
    backbones,
    evaluate,
    export,
    export_job,
    trust,
    lr_find,
    advise,
)


def entry() -> None:
    """The `refit` command: :func:`main`, then a quick exit (engine/fast_exit.py)."""
    from engine.fast_exit import exit_now

    exit_now(main())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `refit`; returns the exit code (0 ok, 1 failed/cancelled, 2 bad input)."""
    import multiprocessing

    multiprocessing.freeze_support()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    with safe_terminal():
        try:
            with grant_of(args):
                return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("refit: stopped by Ctrl+C.", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `refit runs | head`: the reader has all it wanted
            quiet_stdout()
            return 0
        except Exception as exc:
            from engine.training.provenance import error_sentence

            print(f"refit: {terminal_safe(error_sentence(exc))}", file=sys.stderr)
            return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of `refit`: its global options, then every command, each of which takes the
    global options too (after the command's name)."""
    p = argparse.ArgumentParser(
        prog="refit", description="Fine-tune pretrained models on your labeled folders, offline."
    )
    add_global_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    for command in sub.choices.values():
        add_global_options(command, after_command=True)
    return p
