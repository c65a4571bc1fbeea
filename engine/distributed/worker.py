"""One process of a torchrun job: ``python -m engine.distributed CONFIG [--resume RUN]``.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; this joins the process group (NCCL on CUDA,
each rank its LOCAL_RANK GPU; Gloo on the CPU), rank 0 creates (or opens) the run folder and
broadcasts its path, and every rank trains; rank 0 alone writes the folder and emits events
(with ``--events-jsonl`` also as JSON lines on stdout, for the app and `refit train --nproc`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from engine.distributed import CONTROL_FILE, Control, Dist, MirrorRun
from engine.distributed.failure import group_timeout
from engine.tracking import add_track_option


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engine.distributed")
    p.add_argument("config", help="A config.json (RunConfig); with --resume, ignored: use -.")
    p.add_argument("--workspace", default=None)
    p.add_argument("--resume", metavar="RUN", default="", help="Continue this run instead.")
    p.add_argument("--events-jsonl", action="store_true", help="Rank 0 prints events as JSON.")
    add_track_option(p, "`tensorboard` or `mlflow:URI` (as `refit train --track`); rank 0 tracks.")
    return p.parse_args(argv)


def identity() -> Dist:
    env = os.environ
    return Dist(
        int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0"))
    )


def join(dist: Dist, cuda: bool) -> torch.device:
    """Join the process group; the device this rank trains on."""
    import torch.distributed as td

    if cuda:
        torch.cuda.set_device(dist.local_rank)
    if dist.active:  # a collective that waits past the timeout raises (failure.py)
        td.init_process_group("nccl" if cuda else "gloo", timeout=group_timeout())
    return torch.device("cuda", dist.local_rank) if cuda else torch.device("cpu")


def uses_cuda(config: Any) -> bool:
    from engine.config import Device

    wanted = config.device.device
    return wanted is Device.CUDA or (wanted is Device.AUTO and torch.cuda.is_available())


def check_batch(config: Any, world: int) -> str:
    """The per-process batch is the global batch divided by the world size; refuse a batch
    that does not divide (one sentence), so that the batch is what the config says."""
    batch = config.schedule.batch_size
    if world > 1 and batch % world:
        return (
            f"The batch size {batch} does not divide among {world} processes; choose a "
            f"multiple of {world} (the global batch stays what the config says)."
        )
    return ""


def main(argv: list[str] | None = None) -> int:
    from engine.config import RunConfig
    from engine.events import Event, event_to_json
    from engine.runs import Workspace
    from engine.tracking import check_targets, tracking_callbacks
    from engine.training.resume_state import check_resumable
    from engine.training.trainer import Trainer

    args = parse(argv)
    dist = identity()
    ws = Workspace(args.workspace)
    # Rank 0 checks everything before training and broadcasts the run's path or one sentence.
    plan: dict[str, Any] = {}
    run: Any = None
    config: Any = None
    if dist.is_main:
        try:
            check_targets(args.track)  # a tracker that cannot work: before a run folder exists
            if args.resume:
                run = ws.open_run(args.resume)
                config = run.intact_config()
                check_resumable(run)
            else:
                config = read_config(Path(args.config))
                config.validate()
            error = check_batch(config, dist.world)
            if error:
                raise ValueError(error)
            if not args.resume:
                run = ws.create_run(config)
            plan = {"path": str(run.path), "config": config.to_dict()}
        except Exception as exc:
            plan = {"error": str(exc) or type(exc).__name__}
    device = join(dist, _device_kind(args, ws))
    plan = dist.broadcast(plan)
    if "error" in plan:
        if dist.is_main:
            print(f"refit: error: {plan['error']}", file=sys.stderr)
        _leave(dist)
        return 2
    config = RunConfig.from_dict(plan["config"])
    if not dist.is_main:
        run = MirrorRun(Path(plan["path"]))
    control = Control(dist, device)
    control.path = run.path / CONTROL_FILE
    _on_signals(dist, control)

    def emit(event: Event) -> None:
        print(event_to_json(event), flush=True)

    trainer = Trainer(
        config,
        run,
        ws,
        # Rank 0 alone tracks (the other ranks' Trainer would drop them anyway): one writer.
        tracking_callbacks(args.track) if dist.is_main else (),
        on_event=emit if args.events_jsonl and dist.is_main else None,
        resuming=bool(args.resume),
        dist=dist,
        control=control,
    )
    try:
        with run.lock():
            result = trainer.fit()
    except Exception as exc:
        # Said before this process ends (its peers then fail by losing contact), so the
        # launcher reads this process's sentence first; no destroy_process_group: with NCCL it
        # may wait for a collective a peer never joins.
        if dist.active:
            _announce(trainer.ctx, exc)
        raise
    _leave(dist)
    if dist.is_main and not args.events_jsonl:
        print(f"Run {result.status}: {result.run_dir}")
    return 0 if str(result.status) in ("completed", "cancelled") else 1


def read_config(path: Path) -> Any:
    """The RunConfig in a config.json (at most 1 MB; one sentence when it is not one)."""
    import json

    from engine.config import RunConfig

    with path.open("rb") as f:
        raw = f.read(1_000_001)
    if len(raw) > 1_000_000:
        raise ValueError(f"{path} is larger than a config.json can be; pass the run's config.")
    try:
        return RunConfig.from_dict(json.loads(raw.decode("utf-8")))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a Refit config.json ({exc}); pass one.") from exc


def _device_kind(args: argparse.Namespace, ws: Any) -> bool:
    """Whether the job trains on CUDA (NCCL) or the CPU (Gloo): every rank reads the same
    config before the group exists (a file it cannot read: whether CUDA is there)."""
    try:
        config = (
            ws.open_run(args.resume).config() if args.resume else read_config(Path(args.config))
        )
    except Exception:
        return torch.cuda.is_available()
    return uses_cuda(config)


def _on_signals(dist: Dist, control: Control) -> None:
    """SIGTERM or Ctrl+C (torchrun passes them on to every process): rank 0 asks every rank to
    stop after the step under way (a checkpoint, status stopped); the others wait for it."""

    def stop(signum: int, frame: Any) -> None:
        del signum, frame
        control.stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop if dist.is_main else signal.SIG_IGN)


def _announce(ctx: Any, exc: BaseException) -> None:
    """Print this process's failure for launch.py: rank 0's own sentence (the one its RunEnded
    carries), another rank's naming it, or that a collective failed under it."""
    from engine.distributed.failure import ProcessFailed, announce, is_lost_contact

    dist = ctx.dist
    contact = is_lost_contact(exc)
    if isinstance(exc, ProcessFailed) or contact or dist.is_main:
        sentence = ctx.failure_sentence(exc)
    else:
        sentence = ctx.rank_failure(exc)
    announce(dist.rank, dist.world, sentence, contact=contact)


def _leave(dist: Dist) -> None:
    if dist.active:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
