"""The `refit` command line: scan, train, resume, predict, runs, backbones."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine import cli_advise, cli_evaluate, cli_export, cli_lr_find, cli_trust
from engine.config import (
    AugmentPreset,
    ClassWeights,
    ConfigError,
    Device,
    Intensity,
    Method,
    Monitor,
    Optimizer,
    Precision,
    RunConfig,
    Runtime,
    Schedule,
)
from engine.terminal_text import safe_terminal, terminal_safe

# Flags that map straight onto RunConfig fields: flag -> (section, field, type).
_OVERRIDES: dict[str, tuple[str, str, Any]] = {
    "backbone": ("model", "backbone", str),
    "weights": ("model", "weights", str),
    "last_n": ("adapt", "last_n", int),
    "epochs": ("schedule", "epochs", int),
    "batch_size": ("schedule", "batch_size", int),
    "schedule": ("schedule", "schedule", Schedule),
    "early_stopping": ("schedule", "early_stopping_patience", int),
    "time_budget_min": ("schedule", "time_budget_min", float),
    "monitor": ("schedule", "monitor", Monitor),
    "lr": ("optim", "lr", float),
    "optimizer": ("optim", "optimizer", Optimizer),
    "weight_decay": ("optim", "weight_decay", float),
    "label_smoothing": ("optim", "label_smoothing", float),
    "class_weights": ("optim", "class_weights", ClassWeights),
    "augment": ("augment", "preset", AugmentPreset),
    "cache_views": ("augment", "cache_views", int),
    "val_fraction": ("data", "val_fraction", float),
    "test_fraction": ("data", "test_fraction", float),
    "split_seed": ("data", "split_seed", int),
    "min_per_class": ("data", "min_per_class", int),
    "workers": ("data", "num_workers", int),
    "text_column": ("data", "text_column", str),
    "label_column": ("data", "label_column", str),
    "max_length": ("data", "max_length", int),
    "intensity": ("data", "intensity", Intensity),
    "lora_rank": ("adapt", "lora_rank", int),
    "lora_alpha": ("adapt", "lora_alpha", float),
    "lora_dropout": ("adapt", "lora_dropout", float),
    "device": ("device", "device", Device),
    "precision": ("device", "precision", Precision),
    "runtime": ("device", "runtime", Runtime),
}


def entry() -> None:
    """The `refit` command: :func:`main`, then a quick exit (engine/fast_exit.py)."""
    from engine.fast_exit import exit_now

    exit_now(main())


def _quiet_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `refit`; returns the exit code (0 ok, 1 failed/cancelled, 2 bad input)."""
    import multiprocessing

    multiprocessing.freeze_support()
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    with safe_terminal():
        try:
            with cli_trust.grant_of(args):
                return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("refit: stopped by Ctrl+C.", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `refit runs | head`: the reader has all it wanted
            _quiet_stdout()
            return 0
        except Exception as exc:
            from engine.training.provenance import error_sentence

            print(f"refit: {terminal_safe(error_sentence(exc))}", file=sys.stderr)
            return 2


WORKSPACE_HELP = "Folder holding runs (default: $REFIT_HOME or the per-user data folder)."


class _VersionAction(argparse.Action):
    """`refit --version`: computed only when asked (argparse's own version action is eager)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from engine.edition import version_line

        print(version_line())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="refit", description="Fine-tune pretrained models on your labeled folders, offline."
    )
    p.add_argument(
        "--version",
        action=_VersionAction,
        help="Print the version, the edition (packaged app) and the torch it runs on.",
    )
    p.add_argument("--workspace", help=WORKSPACE_HELP)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "scan", help="Check a labeled folder (images or texts) or table file; list its problems."
    )
    s.add_argument("folder", help="A labeled folder, or a .csv / .tsv / .jsonl file.")
    s.add_argument("--min-per-class", type=int, default=2)
    s.add_argument("--text-column", help="Table files: the column holding the text.")
    s.add_argument("--label-column", help="Table files: the column holding the label.")
    s.add_argument("--json", action="store_true", help="Print the result as JSON.")
    s.set_defaults(func=_cmd_scan)

    t = sub.add_parser(
        "train", help="Train on a folder or table file, or replay a saved config.json."
    )
    add_train_flags(t)
    t.add_argument(
        "--save-config",
        metavar="FILE",
        help="Write the resulting config.json to FILE and exit without training.",
    )
    t.add_argument("--quiet", action="store_true", help="No progress bars.")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("resume", help="Continue a stopped run from its last checkpoint.")
    r.add_argument("run", help="Run id (or a unique prefix) or run folder.")
    r.add_argument("--quiet", action="store_true")
    cli_trust.add_remote_code_flag(r)
    r.set_defaults(func=_cmd_resume)

    pr = sub.add_parser(
        "predict",
        help="Classify images or texts with a trained run or an exported folder.",
    )
    pr.add_argument(
        "run",
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
    cli_evaluate.add_runtime_flag(pr)
    pr.add_argument("--json", action="store_true")
    cli_trust.add_remote_code_flag(pr)
    pr.set_defaults(func=_cmd_predict)

    ls = sub.add_parser("runs", help="List the runs in the workspace.")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_cmd_runs)

    b = sub.add_parser("backbones", help="List the backbone catalog and what works offline.")
    b.set_defaults(func=_cmd_backbones)
    cli_evaluate.add_parsers(sub)
    cli_export.add_parsers(sub)
    cli_trust.add_parsers(sub)
    cli_lr_find.add_parsers(sub)
    cli_advise.add_parsers(sub)
    for command in sub.choices.values():
        # `refit train DIR --workspace W` as well as `refit --workspace W train DIR`: SUPPRESS
        # leaves the value given before the command alone when none is given after it.
        command.add_argument("--workspace", default=argparse.SUPPRESS, help=WORKSPACE_HELP)
    return p


def add_train_flags(t: argparse.ArgumentParser) -> None:
    """The dataset-or-config argument and the flags that build a RunConfig (train, lr-find)."""
    t.add_argument(
        "source",
        help="A labeled folder, a .csv / .tsv / .jsonl file of texts, or a config.json "
        "(e.g. runs/<id>/config.json).",
    )
    t.add_argument(
        "--method",
        help="auto (Recommended, the default: chosen from your data, see `refit advise`), "
        "linear-probe, last-N (e.g. last-3), full, lora",
    )
    t.add_argument(
        "--lora-targets",
        help="With lora: comma-separated layer names to adapt (default: found automatically).",
    )
    t.add_argument(
        "--lora-merge",
        action="store_true",
        help="With lora: also save the model with the adapter merged into its weights.",
    )
    t.add_argument(
        "--no-bucketing", action="store_true", help="Text: do not batch texts by length."
    )
    t.add_argument("--name", help="A label for the run list.")
    t.add_argument("--seed", type=int)
    t.add_argument("--no-pretrained", action="store_true", help="Start from random weights.")
    cli_trust.add_remote_code_flag(t)
    for flag, (_section, _field, tp) in _OVERRIDES.items():
        kwargs: dict[str, Any] = {"type": float if tp is float else int if tp is int else str}
        if isinstance(tp, type) and issubclass(tp, str) and tp is not str:
            kwargs["choices"] = [m.value for m in tp]
        t.add_argument("--" + flag.replace("_", "-"), dest=flag, **kwargs)


# -- commands -----------------------------------------------------------------------------------


def _cmd_scan(args: argparse.Namespace) -> int:
    from engine.data import detect_modality, scan_folder, scan_text_source

    text = detect_modality(args.folder) == "text"
    if text:
        index = scan_text_source(
            args.folder,
            text_column=args.text_column,
            label_column=args.label_column,
            min_per_class=args.min_per_class,
        )
    else:
        with _Progress("Scanning", quiet=args.json) as bar:
            index = scan_folder(args.folder, min_per_class=args.min_per_class, progress=bar.update)
    if args.json:
        print(
            json.dumps(
                {
                    "root": index.root,
                    "classes": list(index.classes),
                    "counts": index.class_counts(),
                    "has_splits": index.has_splits,
                    "modality": "text" if text else "image",
                    "text_column": getattr(index, "text_column", None),
                    "label_column": getattr(index, "label_column", None),
                    "read": getattr(index, "read", 0) or None,
                    "intensity": (
                        index.intensity.to_dict() if getattr(index, "intensity", None) else None
                    ),
                    "problems": [
                        {
                            "kind": str(p.kind),
                            "severity": p.severity,
                            "path": p.path,
                            "message": p.message,
                        }
                        for p in index.problems
                    ],
                },
                indent=2,
            )
        )
    else:
        counts = index.class_counts()
        columns = ""
        if text and getattr(index, "text_column", None):
            columns = (
                f" (text column '{terminal_safe(index.text_column)}', "
                f"label column '{terminal_safe(index.label_column)}')"
            )
        read = getattr(index, "read", 0)
        if read:
            unit = "line" if str(index.root).lower().endswith(".jsonl") else "row"
            columns += f"; {read} {unit}{'s' if read != 1 else ''} read"
            if read > len(index.samples):
                columns += f", {read - len(index.samples)} not used (why: below)"
        print(
            f"{terminal_safe(index.root)}: {len(index.samples)} usable "
            f"{'texts' if text else 'images'} in "
            f"{len(index.classes)} classes"
            + (" (train/val folders)" if index.has_splits else "")
            + columns
        )
        for cls in index.classes:
            per = ", ".join(f"{split} {n[cls]}" for split, n in counts.items() if cls in n)
            print(f"  {terminal_safe(cls)}: {per}")
        for problem in index.problems:
            print(f"{problem.severity}: {terminal_safe(problem.message)}")
    return 2 if index.fatal_problem() else 0


def _cmd_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if args.save_config:
        Path(args.save_config).write_text(config.to_json(), encoding="utf-8")
        print(f"Wrote {args.save_config}")
        return 0
    _prefetch_while_importing(config)
    from engine.training.trainer import train
    from engine.trust import check_model

    check_model(config.model.backbone, asked=config.model.allow_remote_code)  # before a run exists
    return _run_with_progress(
        lambda cb, control: train(config, workspace=args.workspace, on_event=cb, control=control),
        quiet=args.quiet,
    )


def _prefetch_while_importing(config: RunConfig) -> None:
    """Scan an image folder and make what the network sees of each image in a second process
    while the trainer's libraries import (seconds of one busy core): for the runs whose first
    pass is the frozen feature pass."""
    from engine.data import detect_modality, prefetch
    from engine.data.view import EvalView
    from engine.models.catalog import listed_entry

    path = config.data.path
    method = str(config.adapt.method)
    entry = listed_entry(config.model.backbone)
    if (
        method in ("linear-probe", "auto")
        and entry is not None
        and entry.modality == "image"
        and path
        and Path(path).is_dir()
        and detect_modality(path) == "image"
    ):
        pre = entry.preprocess
        prefetch.start(
            path,
            min_per_class=config.data.min_per_class,
            min_size=pre.resize_size,
            view=EvalView(pre.resize_size, pre.input_size, pre.interpolation),
            intensity=str(config.data.intensity),
        )


def _cmd_resume(args: argparse.Namespace) -> int:
    from engine.runs import Workspace
    from engine.training.trainer import resume
    from engine.trust import check_model

    config = Workspace(args.workspace).open_run(args.run).config()
    check_model(config.model.backbone, asked=config.model.allow_remote_code)  # run untouched
    return _run_with_progress(
        lambda cb, control: resume(
            args.run, workspace=args.workspace, on_event=cb, control=control
        ),
        quiet=args.quiet,
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from engine.export import MANIFEST

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
    if predictor.modality == "text":
        from engine.evaluation.predict import texts_of_files

        named = [(t, t) for t in args.text] + texts_of_files(args.files, args.text_column)
        results = predictor.predict_texts(named, top_k=args.top_k)
    else:
        if args.text:
            raise ConfigError(f"{what} classifies images; --text needs a text model.")
        results = predictor.predict(args.files, top_k=args.top_k)
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
    # A file that cannot be classified (missing, a pipe, not an image) is bad input: exit 2.
    return 2 if any(r.error for r in results) else 0


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


def _cmd_backbones(args: argparse.Namespace) -> int:
    from engine.models import list_catalog, weights_status

    for entry in list_catalog():
        status = weights_status(entry.name)
        params = f"{entry.params / 1e6:.1f}M" if entry.params else "?"
        mark = "offline" if status.available else "needs weights"
        reads = "text" if entry.modality == "text" else f"{entry.preprocess.input_size}px"
        print(f"{entry.name:38} {params:>7}  {reads:>5}  {mark:13} {entry.description}")
    return 0


# -- helpers ------------------------------------------------------------------------------------


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    source = Path(args.source)
    usable = "give a labeled folder, a .csv / .tsv / .jsonl file of texts, or a config .json file"
    if not source.exists():
        raise ConfigError(f"{args.source} does not exist; {usable}.")
    if source.is_file() and source.suffix.lower() == ".json":
        config = RunConfig.load(source)
    elif source.is_dir() or source.suffix.lower() in (".csv", ".tsv", ".jsonl"):
        config = _fresh_config(source.resolve())
    else:
        raise ConfigError(f"{args.source} is not something Refit Studio trains on; {usable}.")
    sections: dict[str, dict[str, Any]] = {}
    for flag, (section, name, tp) in _OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is not None:
            sections.setdefault(section, {})[name] = tp(value) if tp not in (int, float) else value
    if args.method:
        method, last_n = _parse_method(args.method)
        sections.setdefault("adapt", {})["method"] = method
        if last_n is not None:
            sections["adapt"]["last_n"] = last_n
    if args.no_pretrained:
        sections.setdefault("model", {})["pretrained"] = False
    if args.allow_remote_code:  # a record only; the grant itself is cli_trust.grant_of
        sections.setdefault("model", {})["allow_remote_code"] = True
    if args.lora_targets is not None:
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        sections.setdefault("adapt", {})["lora_targets"] = targets
    if args.lora_merge:
        sections.setdefault("adapt", {})["lora_save_merged"] = True
    if args.no_bucketing:
        sections.setdefault("data", {})["length_bucketing"] = False
    top: dict[str, Any] = {
        name: dataclasses.replace(getattr(config, name), **changes)
        for name, changes in sections.items()
    }
    if args.name is not None:
        top["name"] = args.name
    if args.seed is not None:
        top["seed"] = args.seed
    config = config.replace(**top)
    if args.epochs is None and source.suffix.lower() != ".json":
        config = _text_default_epochs(config)
    return config.validate()


def _text_default_epochs(config: RunConfig) -> RunConfig:
    """A new text run without --epochs: epochs from the training set's size (text_epochs)."""
    from engine.data import detect_modality, scan_text_source

    d = config.data
    if detect_modality(d.path) != "text":
        return config
    from engine.training.text_pipeline import text_epochs

    index = scan_text_source(
        d.path,
        text_column=d.text_column or None,
        label_column=d.label_column or None,
        min_per_class=d.min_per_class,
    )
    n_train = round(len(index.samples) * (1 - d.val_fraction - d.test_fraction))
    schedule = dataclasses.replace(config.schedule, epochs=text_epochs(n_train))
    return config.replace(schedule=schedule)


def _fresh_config(source: Path) -> RunConfig:
    """Defaults for a new dataset; a text dataset starts from the offline text starter."""
    from engine.data import detect_modality
    from engine.models.catalog import TEXT_STARTER

    base = RunConfig()
    config = base.replace(data=dataclasses.replace(base.data, path=str(source)))
    if detect_modality(source) == "text":
        config = config.replace(model=dataclasses.replace(base.model, backbone=TEXT_STARTER))
    return config


def _parse_method(text: str) -> tuple[Method, int | None]:
    t = text.strip().lower()
    if t.startswith("last-") and t[5:].isdigit():
        return Method.LAST_N, int(t[5:])
    aliases = {
        "linear": Method.LINEAR_PROBE,
        "probe": Method.LINEAR_PROBE,
        "last-n": Method.LAST_N,
        "finetune": Method.FULL,
        "fine-tune": Method.FULL,
        "full-fine-tune": Method.FULL,
        "recommended": Method.AUTO,
    }
    if t in aliases:
        return aliases[t], None
    try:
        return Method(t), None
    except ValueError:
        raise ConfigError(
            f"--method {text!r} is not known; use auto, linear-probe, last-N (e.g. last-2), full "
            "or lora."
        ) from None


@contextlib.contextmanager
def cancel_on_sigint(
    message: str = "Stopping after this step (Ctrl+C again to abort)…",
) -> Iterator[Any]:
    """A RunControl that the first Ctrl+C cancels (saying ``message``); a second one aborts."""
    from engine.training.control import RunControl

    control = RunControl()

    def on_sigint(signum: int, frame: Any) -> None:
        if control.cancelled:
            raise KeyboardInterrupt
        print(f"\n{message}", file=sys.stderr)
        control.cancel()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield control
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_with_progress(start: Any, *, quiet: bool) -> int:
    view = _TrainView(quiet)
    try:
        with cancel_on_sigint() as control:
            result = start(view.on_event, control)
    finally:
        view.close()
    best = result.best_metrics
    if best:
        print(
            f"Best epoch {int(best['epoch']) + 1}: val_accuracy {best['val_accuracy']:.4f}, "
            f"val_loss {best['val_loss']:.4f}, val_macro_f1 {best['val_macro_f1']:.4f}"
        )
    if getattr(result, "evaluation", ""):
        from engine.cli_evaluate import saved_evaluation_lines

        print("\n".join(saved_evaluation_lines(result.evaluation)))
    for warning in getattr(result, "warnings", ()):  # last: what the user must not miss
        print(f"Warning: {warning}")
    print(f"Run {result.status}: {result.run_dir}")
    return 0 if str(result.status) == "completed" else 1


class _Progress:
    """A tqdm bar driven by (done, total) callbacks; silent when quiet."""

    def __init__(self, desc: str, *, quiet: bool = False, unit: str = "file") -> None:
        self.desc, self.quiet, self.unit, self.bar = desc, quiet, unit, None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=self.desc, unit=self.unit, leave=False, file=sys.stderr
            )
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class _TrainView:
    """Prints the run the way a person wants to read it: bars for long stages, a line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.stage: _Progress | None = None
        self.stage_name = ""

    def on_event(self, event: Any) -> None:
        from engine import events as ev

        if isinstance(event, ev.StageProgressed):
            if event.stage != self.stage_name:
                self.close()
                labels = {"scan": "Scanning", "features": "Features", "tokenize": "Tokenizing"}
                labels["lr_find"] = "Range test"
                labels["advice"] = "Looking at your data"
                unit = {"scan": "file", "tokenize": "text", "lr_find": "step"}.get(
                    event.stage, "sample"
                )
                self.stage = _Progress(
                    labels.get(event.stage, event.stage), quiet=self.quiet, unit=unit
                )
                self.stage_name = event.stage
            self.stage.update(event.done, event.total)
        elif isinstance(event, ev.StepEnded):
            if self.stage_name != "train":
                self.close()
                self.stage = _Progress("Training", quiet=self.quiet, unit="step")
                self.stage_name = "train"
            self.stage.update(event.step, event.total_steps)
            if self.stage.bar is not None:
                self.stage.bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
        elif isinstance(event, ev.RunStarted):
            self.close()
            share = event.trainable_params / max(1, event.total_params)
            share_text = f"{share:.2%}" if share >= 1e-4 else "under 0.01%"
            print(
                f"Run {event.run_id}: {len(event.classes)} classes, {event.train_size} train / "
                f"{event.val_size} val {event.modality}s on {event.device}; training "
                f"{event.trainable_params:,} of {event.total_params:,} parameters ({share_text})"
                + (" on cached features" if event.feature_cache else "")
            )
        elif isinstance(event, ev.EpochEnded):
            m = event.metrics
            self._write(
                f"epoch {event.epoch + 1}/{event.epochs}  train_loss {m['train_loss']:.4f}"
                f"  val_loss {m['val_loss']:.4f}  val_acc {m['val_accuracy']:.4f}"
                f"  val_f1 {m['val_macro_f1']:.4f}" + ("  *" if event.is_best else "")
            )
        elif isinstance(event, ev.AdviceGiven):
            from engine.cli_advise import print_advice

            self.close()
            if not self.quiet:
                print_advice(event.advice, recipe=False)
        elif isinstance(event, ev.LogMessage):
            prefix = "" if event.level == "info" else f"{event.level}: "
            self._write(prefix + event.text)

    def _write(self, text: str) -> None:
        if self.stage is not None and self.stage.bar is not None:
            self.stage.bar.write(text, file=sys.stdout)
        else:
            print(text)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()
        self.stage, self.stage_name = None, ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
