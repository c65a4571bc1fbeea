"""Parser scaffolding every `refit` command shares: the global options, the arguments several
commands take (the run, --quiet, --allow-remote-code, --runtime), and a stdout that a closed pipe
leaves quiet.

Nothing here imports torch: `refit train` forks its prefetching child before torch is imported.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

WORKSPACE_HELP = "Folder holding runs (default: $REFIT_HOME or the per-user data folder)."
VERSION_HELP = "Print the version, the edition (packaged app) and the torch it runs on."
RUN_HELP = "Run id (or a unique prefix) or run folder."
QUIET_HELP = "No progress bars."
REMOTE_CODE_HELP = (
    "Let a Hugging Face model run Python code shipped with it, for this command only (only for "
    "authors you trust). Saved configs, run folders and exports cannot allow it."
)


class VersionAction(argparse.Action):
    """`refit --version`: computed only when asked (argparse's own version action is eager)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from engine.edition import version_line

        print(version_line())
        parser.exit()


def add_global_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """The options of `refit` itself: --version and --workspace.

    With ``after_command`` they go on a command's parser, so that `refit train DIR --workspace W`
    works as well as `refit --workspace W train DIR`: SUPPRESS leaves the value given before the
    command alone when none is given after it.
    """
    parser.add_argument("--version", action=VersionAction, help=VERSION_HELP)
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    parser.add_argument("--workspace", help=WORKSPACE_HELP, **default)


def add_run_argument(
    parser: argparse.ArgumentParser,
    dest: str = "run",
    *,
    metavar: str | None = None,
    nargs: str | None = None,
    help: str = RUN_HELP,
) -> None:
    """The positional run of a command that opens a trained run (an id, a prefix or a folder)."""
    extra: dict[str, Any] = {}
    if metavar is not None:
        extra["metavar"] = metavar
    if nargs is not None:
        extra["nargs"] = nargs
    parser.add_argument(dest, help=help, **extra)


def add_quiet_flag(parser: argparse.ArgumentParser, help: str | None = QUIET_HELP) -> None:
    """--quiet: no progress bars (or lines) on the terminal."""
    parser.add_argument("--quiet", action="store_true", help=help)


def add_remote_code_flag(parser: argparse.ArgumentParser) -> None:
    """Add --allow-remote-code to a command that loads a model."""
    parser.add_argument("--allow-remote-code", action="store_true", help=REMOTE_CODE_HELP)


def grant_of(args: argparse.Namespace) -> AbstractContextManager[Any]:
    """The process-wide grant for one command, when its user passed --allow-remote-code."""
    if not getattr(args, "allow_remote_code", False):
        return nullcontext()
    from engine.trust import process_grant

    return process_grant(True)


def add_runtime_flag(p: argparse.ArgumentParser) -> None:
    """--runtime for commands that predict with a trained run."""
    p.add_argument(
        "--runtime",
        choices=["auto", "torch", "onnxruntime"],
        help="Where images run: auto (default) uses onnxruntime on the CPU, checked against "
        "torch; naming one predicts again with it instead of reusing saved predictions.",
    )


def quiet_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def ran_where(notes: list[str]) -> str:
    """Where predictions ran, for a command given ``--runtime``: the predictor's own sentences
    (``Predictor.runtime_notes``), else torch."""
    from engine.terminal_text import terminal_safe

    return " ".join(terminal_safe(n) for n in notes) or "Predicted in torch."
