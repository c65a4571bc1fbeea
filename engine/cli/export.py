"""`refit export`: taking a trained run out of the app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.common import add_quiet_flag, add_remote_code_flag, add_run_argument


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the export command to the `refit` parser."""
    e = sub.add_parser(
        "export",
        help="Export a trained run as safetensors, TorchScript, ONNX or a Hugging Face folder, "
        "with refit_model.json and a model card.",
        description="Export a run's checkpoint; every file is checked against the run on "
        "validation examples. `refit predict FOLDER` classifies with the exported folder.",
    )
    add_run_argument(e)
    e.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=["safetensors", "torchscript", "onnx", "hf", "all"],
        required=True,
        help="Repeat for several formats; 'all' exports every format that applies "
        "(hf only for Hugging Face backbones).",
    )
    e.add_argument("--out", help="Folder to write (default: <run folder>/export).")
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument(
        "--overwrite",
        action="store_true",
        help="Export into a folder that holds other files, replacing those with the names the "
        "export writes (others are kept). Without it, only a new or empty folder or an earlier "
        "export is used.",
    )
    add_quiet_flag(e, help="No progress lines.")
    add_remote_code_flag(e)
    e.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from engine.export import export_run
    from engine.runs import Workspace
    from engine.task import Progress as TaskProgress
    from engine.task import Task

    run = Workspace(args.workspace).open_run(args.run)
    out = Path(args.out) if args.out else run.path / "export"

    def progress(step: TaskProgress) -> None:
        if not args.quiet and step.message:
            print(f"{step.message}…", file=sys.stderr)

    results = export_run(
        run,
        args.formats,
        out,
        checkpoint=args.checkpoint,
        task=Task(progress),
        overwrite=args.overwrite,
    )
    out = out.expanduser().resolve()
    print(f"Exported run {run.run_id} to {out}")
    shown: set[Path] = set()
    for result in results:
        print(f"{result.format}: {result.check}")
        for path in result.files:
            if path not in shown:
                shown.add(path)
                print(f"  {path}")
    for name in ("refit_model.json", "MODEL_CARD.md"):
        print(f"  {out / name}")
    return 0
