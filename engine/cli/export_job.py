"""`refit export-job`: a config as cluster job files (config.json, launch.sh, job.sbatch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.tracking import track_argument


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add the export-job command to the `refit` parser."""
    j = sub.add_parser(
        "export-job",
        help="Write a config as a cluster job: config.json, launch.sh (torchrun) and job.sbatch.",
        description="Write CONFIG with a launch.sh that runs it under torchrun with c10d "
        "rendezvous on every node, and a SLURM job.sbatch that starts launch.sh once per node. "
        "Nothing is overwritten.",
    )
    j.add_argument(
        "config",
        metavar="CONFIG",
        help="A config.json (from `refit train --save-config` or a run folder).",
    )
    j.add_argument("--out", required=True, help="Folder to write (new, or without job files).")
    j.add_argument("--nodes", type=int, default=1, help="Machines (default 1).")
    j.add_argument("--gpus-per-node", type=int, default=1, help="Processes per machine.")
    j.add_argument(
        "--cluster-workspace",
        default="workspace",
        help="Where the run folder goes on the cluster (default: workspace/ next to the job "
        "files; REFIT_WORKSPACE overrides it when the job runs).",
    )
    j.add_argument("--port", type=int, default=29500, help="Rendezvous port.")
    j.add_argument(
        "--track",
        action="append",
        default=[],
        type=track_argument,
        metavar="WHERE",
        help="Rank 0 also tracks the run in TensorBoard (`tensorboard`) or MLflow "
        "(`mlflow:URI`), as `refit train --track`; repeatable. The value is written into "
        "launch.sh: put MLflow credentials in the cluster's environment, not in the URI.",
    )
    j.set_defaults(func=_cmd_export_job)


def _cmd_export_job(args: argparse.Namespace) -> int:
    from engine.cluster_job import ClusterJob, write_cluster_job
    from engine.config import RunConfig

    config = RunConfig.load(args.config)
    job = ClusterJob(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        workspace=args.cluster_workspace,
        port=args.port,
        track=tuple(target.argument for target in args.track),
    )
    for path in write_cluster_job(config, Path(args.out), job):
        print(f"Wrote {path}")
    print(f"Submit with: sbatch {Path(args.out) / 'job.sbatch'}")
    return 0
