"""`refit train` and `refit resume`: a run with progress on the terminal."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli.common import add_quiet_flag, add_remote_code_flag, add_run_argument
from engine.cli.config_flags import add_train_flags, config_from_args
from engine.cli.progress import run_with_progress
from engine.config import RunConfig

if TYPE_CHECKING:
    from engine.frozen.early import EarlySpec


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `train` and `resume` to the `refit` parser."""
    t = sub.add_parser(
        "train", help="Train on a folder or table file, or replay a saved config.json."
    )
    add_train_flags(t)
    t.add_argument(
        "--save-config",
        metavar="FILE",
        help="Write the resulting config.json to FILE and exit without training.",
    )
    add_quiet_flag(t)
    _add_track_flag(t)
    _add_distributed_flags(t)
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("resume", help="Continue a stopped run from its last checkpoint.")
    add_run_argument(r)
    add_quiet_flag(r, help=None)
    add_remote_code_flag(r)
    _add_track_flag(r)
    _add_distributed_flags(r)
    r.set_defaults(func=_cmd_resume)


def _add_distributed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="Train with N processes under torchrun (DDP: one per GPU, or Gloo on the CPU); "
        "the batch size and learning rates stay what the config says (docs/scale-out.md).",
    )
    p.add_argument(
        "--events-jsonl",
        action="store_true",
        help="With --nproc: print each engine event as one JSON line on stdout (for programs).",
    )


def _nproc(args: argparse.Namespace) -> int:
    n = int(getattr(args, "nproc", 1) or 1)
    if n < 1:
        raise SystemExit("refit: error: --nproc needs 1 or more processes.")
    return n


def _run_job(args: argparse.Namespace, *, config_json: str = "", resume: str = "") -> int:
    """A run under torchrun, its events shown like a 1-process run's (or printed as JSON)."""
    import sys

    from engine.distributed.launch import run_job

    ended: list[Any] = []

    def start(cb: Any, task: Any) -> Any:
        result = run_job(
            args.nproc,
            config_json=config_json,
            resume=resume,
            workspace=args.workspace,
            on_event=cb,
            task=task,
            track=[target.argument for target in args.track],
        )
        ended.append(result)
        return result

    code = _shown(args, start)
    if ended and ended[0].error:  # a process that died, or rank 0's own sentence
        print(f"refit: error: {ended[0].error}", file=sys.stderr)
    return code


def _shown(args: argparse.Namespace, start: Any) -> int:
    """``start(on_event, task)`` with its progress on the terminal, or its events as JSON lines
    (``--events-jsonl``); the exit code."""
    if args.events_jsonl:
        return _json_lines(start)
    return run_with_progress(start, quiet=args.quiet)


def _json_lines(start: Any) -> int:
    """``start(on_event, task)`` with every event printed as one JSON line on stdout (and
    nothing else there); Ctrl+C stops the run after its step. Exit 0 when it completed."""
    from engine.cli.progress import cancel_on_sigint
    from engine.events import Event, event_to_json

    def emit(event: Event) -> None:
        print(event_to_json(event), flush=True)

    with cancel_on_sigint() as task:
        result = start(emit, task)
    return 0 if str(result.status) == "completed" else 1


def _cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.save_config:
        Path(args.save_config).write_text(config.to_json(), encoding="utf-8")
        print(f"Wrote {args.save_config}")
        return 0
    _check_tracking(args)  # before the prefetching child starts
    if _nproc(args) > 1:
        from engine.distributed.worker import check_batch
        from engine.trust import check_model

        refusal = check_batch(config, args.nproc)
        if refusal:
            raise SystemExit(f"refit: error: {refusal}")
        check_model(config.model.backbone, asked=config.model.allow_remote_code)
        return _run_job(args, config_json=config.to_json())
    _prefetch_while_importing(config, args.workspace)
    from engine.training.trainer import train
    from engine.trust import check_model

    check_model(config.model.backbone, asked=config.model.allow_remote_code)  # before a run exists
    trackers = _trackers(args)
    return _shown(
        args,
        lambda cb, task: train(
            config, workspace=args.workspace, callbacks=trackers, on_event=cb, task=task
        ),
    )


def _prefetch_while_importing(config: RunConfig, workspace: str | None) -> None:
    """Scan an image folder and make what the network sees of each image in a second process
    while the trainer's libraries import (seconds of one busy core), and run the backbone's
    checked export over them when the workspace has one: for the runs whose first pass is the
    frozen feature pass."""
    from engine.data import detect_modality, prefetch
    from engine.data.view import EvalView
    from engine.modalities import modality_of
    from engine.models.catalog import listed_entry

    path = config.data.path
    method = str(config.adapt.method)
    entry = listed_entry(config.model.backbone)
    if (
        method in ("linear-probe", "auto")
        and entry is not None
        and modality_of(entry).prefetches
        and path
        and Path(path).is_dir()
        and modality_of(detect_modality(path)) is modality_of(entry)
    ):
        pre = entry.preprocess
        prefetch.start(
            path,
            min_per_class=config.data.min_per_class,
            min_size=pre.resize_size,
            view=EvalView(pre.resize_size, pre.input_size, pre.interpolation),
            intensity=str(config.data.intensity),
            dicom_window=str(config.data.dicom_window),
            early=_early_spec(config, entry, workspace),
        )


def _early_spec(config: RunConfig, entry: Any, workspace: str | None) -> EarlySpec | None:
    """What the prefetching child needs to run the backbone's export (engine/frozen/early.py),
    or None where the run would not use onnxruntime on the CPU."""
    import os

    from engine.config import Device, Runtime
    from engine.frozen.early import EarlySpec
    from engine.frozen.keys import early_parts
    from engine.runs import Workspace

    if config.device.runtime is Runtime.TORCH or config.device.device in (Device.CUDA, Device.MPS):
        return None
    try:
        parts = early_parts(config, entry.family, entry.preprocess.input_size)
        cache = Workspace(workspace).cache_root / "onnx"
    except Exception:  # weights that are not there: the run says so itself
        return None
    if parts is None:
        return None
    pre = entry.preprocess
    return EarlySpec(str(cache), parts, pre.mean, pre.std, max(1, (os.cpu_count() or 1) - 1))


def _cmd_resume(args: argparse.Namespace) -> int:
    from engine.runs import Workspace
    from engine.training.trainer import resume
    from engine.trust import check_model

    _check_tracking(args)
    config = Workspace(args.workspace).open_run(args.run).config()
    check_model(config.model.backbone, asked=config.model.allow_remote_code)  # run untouched
    if _nproc(args) > 1:
        return _run_job(args, resume=str(args.run))
    trackers = _trackers(args)
    return _shown(
        args,
        lambda cb, task: resume(
            args.run, workspace=args.workspace, callbacks=trackers, on_event=cb, task=task
        ),
    )


def _add_track_flag(p: argparse.ArgumentParser) -> None:
    """`--track tensorboard` / `--track mlflow:URI`, repeatable (engine/tracking/)."""

    from engine.tracking import add_track_option

    add_track_option(
        p,
        "Also track the run in TensorBoard (`tensorboard`: event files in the run folder) "
        "or MLflow (`mlflow:URI`, e.g. mlflow:http://host:5000); repeatable. Needs the "
        "tracking extra; a tracker that fails warns once and training goes on.",
    )


def _check_tracking(args: argparse.Namespace) -> None:
    """A tracker that cannot work here (its package missing) stops before a run folder exists."""
    if args.track:
        from engine.tracking import check_targets

        check_targets(args.track)


def _trackers(args: argparse.Namespace) -> list[Any]:
    """The tracking callbacks `--track` asks for."""
    from engine.tracking import tracking_callbacks

    return tracking_callbacks(args.track)
