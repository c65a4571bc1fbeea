"""Cluster job files: valid bash, inert against hostile paths, never overwriting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli import main as refit
from engine.cluster_job import (
    JOB_FILES,
    ClusterJob,
    ClusterJobError,
    fresh_folder,
    write_cluster_job,
)
from engine.config import DataConfig, RunConfig

HOSTILE = "evil $(touch PWNED) `touch PWNED2` ${HOME}\nrm -rf ~ ; 'quote\" \\"
BASH = shutil.which("bash")


def _bash_n(path: Path) -> None:
    result = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_job_files_are_valid_bash_with_the_shape_asked_for(tmp_path: Path) -> None:
    config = RunConfig(name="cats v dogs", data=DataConfig(path="/data/pets"))
    job = ClusterJob(nodes=3, gpus_per_node=8, workspace="/scratch/refit", port=29611)
    written = write_cluster_job(config, tmp_path / "job", job)
    assert [p.name for p in written] == list(JOB_FILES)
    assert RunConfig.load(tmp_path / "job" / "config.json") == config
    launch = (tmp_path / "job" / "launch.sh").read_text()
    sbatch = (tmp_path / "job" / "job.sbatch").read_text()
    for flag in (
        "--nnodes 3",
        "--nproc-per-node 8",
        "--rdzv-backend c10d",
        "-m engine.distributed",
    ):
        assert flag in launch
    assert '--rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT"' in launch
    assert "MASTER_PORT:-29611" in launch
    for line in (
        "#SBATCH --nodes=3",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --job-name=refit-cats-v-dogs",
    ):
        assert line in sbatch.splitlines()
    assert "scontrol show hostnames" in sbatch and "srun" in sbatch
    if BASH:
        _bash_n(tmp_path / "job" / "launch.sh")
        _bash_n(tmp_path / "job" / "job.sbatch")
    assert (tmp_path / "job" / "launch.sh").stat().st_mode & 0o100


def test_hostile_paths_stay_inert(tmp_path: Path) -> None:
    folder = tmp_path / "x $(touch PWNED) `id`"
    config = RunConfig(name=HOSTILE, data=DataConfig(path=f"/d/{HOSTILE}"))
    job = ClusterJob(nodes=2, gpus_per_node=2, workspace=f"/ws/{HOSTILE}")
    write_cluster_job(config, folder, job)
    launch = (folder / "launch.sh").read_text()
    sbatch = (folder / "job.sbatch").read_text()
    # the name keeps only safe characters; the hostile path is one single-quoted word
    name_line = next(line for line in sbatch.splitlines() if "--job-name" in line)
    assert re.fullmatch(r"#SBATCH --job-name=refit-[A-Za-z0-9._-]+", name_line)
    # the data path lives in config.json only
    assert "/d/" not in launch and "/d/" not in sbatch
    assert "'\"'\"'" in launch  # shlex.quote's way of writing a quote inside a quoted word
    if BASH:
        _bash_n(folder / "launch.sh")
        _bash_n(folder / "job.sbatch")
        _run_with_fakes(tmp_path, folder, HOSTILE)


def _run_with_fakes(tmp_path: Path, folder: Path, hostile: str) -> None:
    """Run both scripts for real, with torchrun, scontrol and srun replaced by stubs that print
    their arguments: the hostile strings arrive as literal arguments, and nothing they spell ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {
        "torchrun": 'printf "%s\\n" "$@" > "$ARGS_OUT"',
        "srun": 'printf "%s\\n" "$@" > "$ARGS_OUT"',
        "scontrol": 'printf "node-a\\nnode-b\\n"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    probe = tmp_path / "probe"
    probe.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(probe), "MASTER_ADDR": "node-a"}
    env["ARGS_OUT"] = str(tmp_path / "torchrun.args")
    run = subprocess.run(
        [BASH, str(folder / "launch.sh")], cwd=probe, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    args = (tmp_path / "torchrun.args").read_text()
    assert f"--workspace\n/ws/{hostile}\n" in args
    assert f"{folder.resolve()}/config.json" in args
    assert "node-a:29500" in args
    env.update(ARGS_OUT=str(tmp_path / "srun.args"), SLURM_JOB_NODELIST="node-[a-b]")
    run = subprocess.run(
        [BASH, str(folder / "job.sbatch")], cwd=probe, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    srun_args = (tmp_path / "srun.args").read_text().splitlines()
    assert srun_args[-2:] == ["bash", f"{folder.resolve()}/launch.sh"]
    for where in (probe, folder, tmp_path):
        assert not any(p.name.startswith("PWNED") for p in where.iterdir())


def test_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "launch.sh").write_text("mine")
    with pytest.raises(ClusterJobError, match="already exists"):
        write_cluster_job(RunConfig(), folder, ClusterJob())
    assert (folder / "launch.sh").read_text() == "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["launch.sh"]


def test_fresh_folder_skips_taken_names(tmp_path: Path) -> None:
    assert fresh_folder(tmp_path) == tmp_path / "refit-cluster-job"
    (tmp_path / "refit-cluster-job").mkdir()
    (tmp_path / "refit-cluster-job-2").mkdir()
    assert fresh_folder(tmp_path) == tmp_path / "refit-cluster-job-3"


@pytest.mark.parametrize(
    "job",
    [
        ClusterJob(nodes=0),
        ClusterJob(gpus_per_node=65),
        ClusterJob(port=0),
        ClusterJob(workspace=""),
    ],
)
def test_bad_numbers_are_one_sentence(tmp_path: Path, job: ClusterJob) -> None:
    with pytest.raises(ClusterJobError):
        write_cluster_job(RunConfig(), tmp_path / "j", job)
    assert not (tmp_path / "j").exists()


def test_cli_export_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text(RunConfig(data=DataConfig(path="/data")).to_json())
    out = tmp_path / "out"
    args = ["export-job", str(config), "--out", str(out), "--nodes", "2", "--gpus-per-node", "4"]
    assert refit(args) == 0
    assert "--nnodes 2" in (out / "launch.sh").read_text()
    assert refit(args) == 2  # a second time: refused, nothing overwritten
    assert "already exists" in capsys.readouterr().err


def test_track_values_reach_torchrun_as_literal_words(tmp_path: Path) -> None:
    uri = "http://host:5000/$(touch PWNED)`touch PWNED2`;'q\" ${HOME}"
    job = ClusterJob(workspace="/ws", track=("tensorboard", f"mlflow:{uri}"))
    folder = tmp_path / "job"
    write_cluster_job(RunConfig(data=DataConfig(path="/data")), folder, job)
    if not BASH:
        pytest.skip("no bash to run launch.sh with")
    _bash_n(folder / "launch.sh")
    bin_dir, probe = tmp_path / "bin", tmp_path / "probe"
    bin_dir.mkdir()
    probe.mkdir()
    (bin_dir / "torchrun").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    (bin_dir / "torchrun").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(probe), "MASTER_ADDR": "node-a"}
    env["ARGS_OUT"] = str(tmp_path / "torchrun.args")
    run = subprocess.run(
        [BASH, str(folder / "launch.sh")], cwd=probe, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    args = (tmp_path / "torchrun.args").read_text().splitlines()
    assert args[-4:] == ["--track", "tensorboard", "--track", f"mlflow:{uri}"]
    for where in (probe, folder, tmp_path):
        assert not any(p.name.startswith("PWNED") for p in where.iterdir())


def test_a_bad_track_value_writes_no_job(tmp_path: Path) -> None:
    job = ClusterJob(track=("wandb",))
    with pytest.raises(ClusterJobError, match="`mlflow:URI`"):
        write_cluster_job(RunConfig(), tmp_path / "j", job)
    assert not (tmp_path / "j").exists()


def test_cli_export_job_takes_track(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(RunConfig(data=DataConfig(path="/data")).to_json())
    out = tmp_path / "out"
    assert refit(["export-job", str(config), "--out", str(out), "--track", "tensorboard"]) == 0
    assert "--track tensorboard" in (out / "launch.sh").read_text()
