"""The files that run a RunConfig on a cluster: ``config.json``, ``launch.sh`` (torchrun with
rendezvous flags, once per node) and ``job.sbatch`` (a SLURM template that starts launch.sh on
every node). Pure text: nothing here imports torch or runs anything.

Every value that reaches a script is either a number we checked or a path quoted with
:func:`shlex.quote`; the job's name is reduced to safe characters. A hostile workspace or folder
name (``$(rm -rf ~)``, backticks, a newline) ends up a literal string. The config itself goes
only into config.json, which the engine reads as data.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from engine.config import RunConfig

LAUNCH = "launch.sh"
SBATCH = "job.sbatch"
CONFIG = "config.json"
JOB_FILES = (CONFIG, LAUNCH, SBATCH)
MAX_NODES = 4096
MAX_GPUS_PER_NODE = 64
DEFAULT_PORT = 29500
FRESH_TRIES = 1000


class ClusterJobError(ValueError):
    """The cluster job cannot be written; the message is one sentence for the user."""


@dataclass(frozen=True, kw_only=True)
class ClusterJob:
    """The shape of the job: ``nodes`` machines with ``gpus_per_node`` processes each, the run
    written under ``workspace`` (a path on the cluster), the rendezvous on ``port``; ``track``:
    `--track` values (``tensorboard``, ``mlflow:URI``) that rank 0 tracks the run in."""

    nodes: int = 1
    gpus_per_node: int = 1
    workspace: str = "workspace"
    port: int = DEFAULT_PORT
    track: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise ClusterJobError with one sentence when a number is out of range."""
        for name, value, top in (
            ("nodes", self.nodes, MAX_NODES),
            ("GPUs per node", self.gpus_per_node, MAX_GPUS_PER_NODE),
            ("port", self.port, 65535),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ClusterJobError(
                    f"The number of {name} must be a whole number from 1 to {top}; got {value!r}."
                )
        if not self.workspace or "\0" in self.workspace:
            raise ClusterJobError("The workspace path of the cluster job is empty or invalid.")
        from engine.tracking import TrackError, parse_track

        for target in self.track:
            try:
                parse_track(target)
            except TrackError as exc:
                raise ClusterJobError(str(exc)) from None


def job_name(config: RunConfig) -> str:
    """A SLURM job name from the run's name: letters, digits, ``._-`` only, at most 40."""
    raw = str(getattr(config, "name", "") or "")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.")[:40]
    return f"refit-{safe}" if safe else "refit"


def launch_script(job: ClusterJob) -> str:
    """``launch.sh``: torchrun on this node, rendezvous at ``$MASTER_ADDR:$MASTER_PORT``."""
    job.check()
    workspace = shlex.quote(job.workspace)
    track = "".join(f" --track {shlex.quote(value)}" for value in job.track)
    return f"""#!/usr/bin/env bash
# Refit Studio cluster job: run this once on every node (job.sbatch does it with srun).
# Every node needs this folder, the data folder named in config.json and Refit Studio's Python
# environment (torch included). Set MASTER_ADDR to the first node's host name.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${{BASH_SOURCE[0]}}")" && pwd)"
cd -- "$HERE"
: "${{MASTER_ADDR:?set MASTER_ADDR to the host name of the first node}}"
MASTER_PORT="${{MASTER_PORT:-{job.port}}}"
# A quoted word on its own: inside a double-quoted default its quotes would stay literal.
WORKSPACE={workspace}
if [ -n "${{REFIT_WORKSPACE:-}}" ]; then WORKSPACE="$REFIT_WORKSPACE"; fi
exec torchrun \\
  --nnodes {job.nodes} \\
  --nproc-per-node {job.gpus_per_node} \\
  --rdzv-backend c10d \\
  --rdzv-id "${{SLURM_JOB_ID:-refit}}" \\
  --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" \\
  -m engine.distributed "$HERE/{CONFIG}" --workspace "$WORKSPACE"{track}
"""


def sbatch_script(job: ClusterJob, folder: Path, name: str = "refit") -> str:
    """``job.sbatch``: one task per node, each running launch.sh from ``folder`` (where the job
    files are on the cluster's shared file system)."""
    job.check()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise ClusterJobError(f"The job name {name!r} may hold only letters, digits and ._-")
    where = shlex.quote(str(folder))
    return f"""#!/usr/bin/env bash
#SBATCH --job-name={name}
#SBATCH --nodes={job.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={job.gpus_per_node}
#SBATCH --output={name}-%j.out
# Add your cluster's partition, account and time limit here (#SBATCH --partition=..., --time=...).
set -euo pipefail
JOB_DIR={where}
MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
export MASTER_ADDR
export MASTER_PORT={job.port}
srun --ntasks-per-node=1 bash "$JOB_DIR/{LAUNCH}"
"""


def write_cluster_job(config: RunConfig, folder: str | Path, job: ClusterJob) -> list[Path]:
    """Write config.json, launch.sh and job.sbatch into ``folder`` (made if missing) and return
    their paths. Never overwrites: when one of them is already there, nothing is written and
    ClusterJobError says so. ``folder`` should be where the files will be on the cluster (the
    sbatch script names it); move them elsewhere and edit its JOB_DIR line."""
    job.check()
    folder = Path(folder)
    taken = [name for name in JOB_FILES if (folder / name).exists()]
    if taken:
        raise ClusterJobError(
            f"{folder / taken[0]} already exists; choose an empty folder for the cluster job."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClusterJobError(
            f"Cannot create the folder {folder} ({exc.strerror}); choose another one."
        ) from exc
    texts = {
        CONFIG: config.to_json(),
        LAUNCH: launch_script(job),
        SBATCH: sbatch_script(job, folder.resolve(), job_name(config)),
    }
    written: list[Path] = []
    try:
        for name, text in texts.items():
            path = folder / name
            _write_new(path, text, executable=name != CONFIG)
            written.append(path)
    except FileExistsError as exc:
        for path in written:  # all three or none
            path.unlink(missing_ok=True)
        raise ClusterJobError(
            f"{exc.filename} already exists; choose an empty folder for the cluster job."
        ) from exc
    return written


def fresh_folder(parent: str | Path, stem: str = "refit-cluster-job") -> Path:
    """A subfolder of ``parent`` that does not exist yet: ``stem``, ``stem-2``, ``stem-3``…"""
    parent = Path(parent)
    for i in range(1, FRESH_TRIES + 1):
        candidate = parent / (stem if i == 1 else f"{stem}-{i}")
        if not candidate.exists():
            return candidate
    raise ClusterJobError(f"{parent} holds too many cluster job folders; choose another folder.")


def _write_new(path: Path, text: str, *, executable: bool) -> None:
    """Create ``path`` with ``text``; FileExistsError when it is there (O_EXCL: no race)."""
    mode = 0o755 if executable else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
