"""Text runs on several processes (engine/distributed, engine/training/text_pipeline.py): real
2-process Gloo jobs of the starter all-MiniLM-L6-v2 (LoRA, the linear probe) and of a tiny BERT.

Tolerance: the one of tests/engine/test_distributed.py (0.05 on the validation loss, one
validation example on the accuracy), for the same reason with one difference fewer: a
transformer has no batch norm, so the ranks' own dropout masks (the encoder's and LoRA's) are
the only thing that differs from a 1-process run. Measured on the test's 48 texts over 2 epochs:
0.006 on the validation loss and one of 12 validation texts; with every dropout set to 0 the two
runs agree to 1e-7 (each rank pads its own rows to their longest text, which the attention mask
makes irrelevant).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_text_table, make_tiny_bert
from test_distributed import epoch_lines, events_of, refit, stopped_job, two_processes
from test_evaluation_in_training import assert_same_as_from_scratch

from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.events import AdviceGiven, EpochEnded, RunEnded, RunStarted, RunStatus
from engine.runs import RunDir
from engine.task import Task
from engine.training.trainer import resume, train


def text_config(path: Path, backbone: str, *, method: Method = Method.LORA, epochs: int = 2):
    return RunConfig(
        seed=1,
        data=DataConfig(path=str(path), val_fraction=0.25, max_length=32, num_workers=0),
        model=ModelConfig(backbone=backbone),
        adapt=AdaptConfig(method=method),
        schedule=ScheduleConfig(epochs=epochs, batch_size=8, warmup_fraction=0.0),
    ).validate()


@pytest.mark.slow
def test_a_two_process_lora_text_run_reaches_the_metrics_of_one(tmp_path):
    table = make_text_table(tmp_path / "data" / "messages.csv", per_class=24, seed=2)
    config = text_config(table, "all-MiniLM-L6-v2")
    one = train(config, workspace=tmp_path / "ws1")
    run, events = two_processes(config, tmp_path / "ws2", tmp_path)
    assert isinstance(events[-1], RunEnded) and events[-1].status is RunStatus.COMPLETED
    assert run.state()["trainable_params"] == RunDir(one.run_dir).state()["trainable_params"]

    ones, twos = epoch_lines(RunDir(one.run_dir)), epoch_lines(run)
    assert [r["epoch"] for r in twos] == [0, 1]
    for a, b in zip(ones, twos, strict=True):
        assert abs(a["val_loss"] - b["val_loss"]) < 0.05
        assert abs(a["val_accuracy"] - b["val_accuracy"]) <= 1 / 12 + 1e-9  # 12 validation texts

    # Rank 0 alone wrote the folder: the files of a 1-process run (its adapter too), each line once.
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == len(set(lines)) == len(RunDir(one.run_dir).metrics())
    names = lambda p: sorted(q.relative_to(p).as_posix() for q in p.rglob("*"))  # noqa: E731
    assert names(run.path) == names(Path(one.run_dir))
    assert (run.path / "adapter" / "adapter_config.json").is_file()
    # The saved evaluation (validation gathered from both ranks in dataset order) is a 1-process
    # prediction of the best checkpoint.
    assert_same_as_from_scratch(run, atol=1e-4)


@pytest.mark.slow
def test_a_two_process_text_probe_gathers_the_features_of_one(tmp_path):
    table = make_text_table(tmp_path / "data" / "messages.csv", per_class=24, seed=2)
    config = text_config(table, "all-MiniLM-L6-v2", method=Method.LINEAR_PROBE)
    one = train(config, workspace=tmp_path / "ws1")
    run, _ = two_processes(config, tmp_path / "ws2", tmp_path)
    caches = [
        sorted((tmp_path / ws / "cache" / "features").glob("*.safetensors"))
        for ws in ("ws1", "ws2")
    ]
    assert [p.name for p in caches[0]] == [p.name for p in caches[1]] and len(caches[0]) == 2
    for a, b in zip(*caches, strict=True):
        # Each rank batches its own texts (other padding): equal up to float rounding.
        torch.testing.assert_close(
            load_file(str(a))["features"], load_file(str(b))["features"], atol=1e-5, rtol=1e-4
        )
    a, b = epoch_lines(RunDir(one.run_dir))[-1], epoch_lines(run)[-1]
    assert a["val_accuracy"] == b["val_accuracy"]
    assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-3)


@pytest.mark.slow
def test_a_text_run_resumes_with_one_or_two_processes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    bert = str(make_tiny_bert(tmp_path / "tiny-bert"))
    table = make_text_table(tmp_path / "data" / "messages.csv", per_class=24)
    config = text_config(table, bert, epochs=4)
    run, ws = stopped_job(config, tmp_path, after_epoch=0)  # two processes, stopped ...
    # ... one process goes on and stops after epoch 2 ...
    task = Task()
    result = resume(
        run.run_id,
        workspace=ws,
        on_event=lambda e: task.cancel() if isinstance(e, EpochEnded) and e.epoch == 2 else None,
        task=task,
    )
    assert result.status is RunStatus.CANCELLED
    # ... and two processes finish it: every epoch and step once.
    again = refit(
        *("resume", run.run_id, "--workspace", str(ws), "--nproc", "2", "--events-jsonl"),
        *("--track", "tensorboard"),
    )
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    started = [e for e in events_of(out) if isinstance(e, RunStarted)]
    assert started and started[0].start_epoch == 3
    acc = EventAccumulator(str(run.path / "tensorboard"))  # `refit resume --nproc --track`
    acc.Reload()
    assert [s.step for s in acc.Scalars("epoch/val_loss")] == [3]
    assert [r["epoch"] for r in epoch_lines(run)] == [0, 1, 2, 3]
    counts = Counter(r["step"] for r in run.metrics() if r.get("type") == "step")
    assert sorted(counts) == list(range(1, 4 * 5 + 1)) and set(counts.values()) == {1}
    assert run.state()["status"] == "completed"


@pytest.mark.slow
def test_a_recommended_text_job_advises_on_rank_0_alone(tmp_path):
    """Method auto (the text default): rank 0 computes the probe's features by itself (no
    collective while the others wait for its choice), then every rank trains that choice."""
    torch.manual_seed(0)
    bert = str(make_tiny_bert(tmp_path / "tiny-bert"))
    table = make_text_table(tmp_path / "data" / "messages.csv", per_class=24)
    config = text_config(table, bert, method=Method.AUTO)
    one = RunDir(train(config, workspace=tmp_path / "ws1").run_dir)
    run, events = two_processes(config, tmp_path / "ws2", tmp_path)
    assert sum(isinstance(e, AdviceGiven) for e in events) == 1
    assert run.state()["status"] == "completed"
    assert run.state()["method"] == one.state()["method"] != "auto"
    assert (run.path / "advice.json").is_file()
    assert len(epoch_lines(run)) == len(epoch_lines(one))
