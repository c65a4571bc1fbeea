"""`refit predict`: classify images or texts with a trained run or an exported folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import (
    add_remote_code_flag,
    add_run_argument,
    add_runtime_flag,
    ran_where,
)
from engine.config import ConfigError
from engine.terminal_text import terminal_safe


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `predict` to the `refit` parser."""
    pr = sub.add_parser(
        "predict",
        help="Classify images or texts with a trained run or an exported folder.",
    )
    add_run_argument(
        pr,
        help="Run id (or a unique prefix), run folder, or a folder written by `refit export` "
        "(one with refit_model.json; runs on the CPU).",
    )
    pr.add_argument(
        "files",
        nargs="*",
        help="Image files; for a text run, .txt files (one text each) or a .csv / .tsv / .jsonl "
        "file (one text a row).",
    )
    pr.add_argument(
        "--text", action="append", default=[], help="Text run: a text to classify (repeatable)."
    )
    pr.add_argument("--text-column", help="Text run with a table file: the text column.")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--checkpoint", choices=["best", "last"], default="best")
    pr.add_argument("--device", default="cpu")
    add_runtime_flag(pr)
    pr.add_argument("--json", action="store_true")
    add_remote_code_flag(pr)
    pr.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from engine.export import MANIFEST
    from engine.modalities import modality_of

    # exists(), not is_file(): a refit_model.json that is a pipe is refused by the reader, by name.
    if (Path(args.run).expanduser() / MANIFEST).exists():
        from engine.export import ExportedModel

        predictor: Any = ExportedModel.open(args.run)
        what = f"The exported model in {args.run}"
    else:
        from engine.evaluation import Predictor
        from engine.runs import Workspace

        run = Workspace(args.workspace).open_run(args.run)
        predictor = Predictor(
            run, checkpoint=args.checkpoint, device=args.device, runtime=args.runtime or "auto"
        )
        what = f"The run {run.run_id}"
    modality = modality_of(predictor.modality)
    if args.text and not modality.accepts_text:
        raise ConfigError(f"{what} classifies {modality.noun}; --text needs a text model.")
    results = modality.classify(
        predictor, args.files, texts=args.text, text_column=args.text_column, top_k=args.top_k
    )
    if not results:
        raise ConfigError("Nothing to classify: give files, or --text for a text run.")
    if args.json:
        print(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    else:
        for r in results:
            if r.error:
                print(f"{terminal_safe(r.path)}\terror: {terminal_safe(r.error)}")
            else:
                top = ", ".join(f"{terminal_safe(name)} {prob:.1%}" for name, prob in r.top)
                print(f"{terminal_safe(r.path)}\t{top}")
    if args.runtime and not args.json:  # a runtime was named: say where it ran
        sys.stdout.flush()  # after the predictions, also where both streams meet
        print(ran_where(getattr(predictor, "runtime_notes", None) or []), file=sys.stderr)
    # A file that cannot be classified (missing, a pipe, not an image) is bad input: exit 2.
    return 2 if any(r.error for r in results) else 0
