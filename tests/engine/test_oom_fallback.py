"""The out-of-memory fallback, with out-of-memory errors injected on the CPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_shapes_folder
from torch import nn

from engine.config import (
    AdaptConfig,
    AugmentConfig,
    AugmentPreset,
    DataConfig,
    Method,
    ModelConfig,
    RunConfig,
    ScheduleConfig,
)
from engine.events import LogMessage, RunEnded, RunStatus, StepEnded
from engine.runs import RunDir
from engine.task import Task
from engine.training.checkpoint_files import weights_file
from engine.training.devices import Placement
from engine.training.features import extract_features
from engine.training.oom import MemoryExhausted, MicroBatcher, accumulate_gradients, is_device_oom
from engine.training.pipeline import ImagePipeline
from engine.training.provenance import error_sentence
from engine.training.trainer import resume, train

# LayerNorm, not BatchNorm: micro-batches then give the whole batch's gradients exactly.
VIT = "timm:test_vit"
CPU = Placement(device=torch.device("cpu"), precision="fp32", description="CPU")


def vit_config(path, *, epochs=2, batch_size=8) -> RunConfig:
    return RunConfig(
        seed=5,
        data=DataConfig(path=str(path), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=VIT, pretrained=False),
        adapt=AdaptConfig(method=Method.FULL),
        schedule=ScheduleConfig(epochs=epochs, batch_size=batch_size, warmup_fraction=0.0),
        augment=AugmentConfig(preset=AugmentPreset.LIGHT),
    ).validate()


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=8)


def oom_above(limit: int, seen: list[int] | None = None):
    """A forward that raises CUDA's out-of-memory error for batches of more than ``limit``."""
    real = ImagePipeline.forward

    def forward(self, x):
        if seen is not None:
            seen.append(len(x))
        if len(x) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, x)

    return forward


def logs(events) -> list[str]:
    return [e.text for e in events if isinstance(e, LogMessage)]


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(weights_file(RunDir(run_dir), "last")))


@pytest.mark.slow  # two ViT trainings
def test_oom_halves_the_micro_batch_and_keeps_the_effective_batch(shapes, tmp_path, monkeypatch):
    cfg = vit_config(shapes)
    plain_events: list = []
    plain = train(cfg, workspace=tmp_path / "a", on_event=plain_events.append)

    monkeypatch.setattr(ImagePipeline, "forward", oom_above(3))
    events: list = []
    split = train(cfg, workspace=tmp_path / "b", on_event=events.append)

    assert split.status is RunStatus.COMPLETED
    lines = logs(events)
    estimates = [line for line in lines if line.startswith("Peak memory about")]
    assert len(estimates) == 1 and "for batch 8 of the" in estimates[0]
    assert (
        "Out of memory on cpu with batch 8: continuing with micro-batches of 4, 2 accumulated "
        "per step (effective batch 8)." in lines
    )
    assert any("micro-batches of 2, 4 accumulated per step" in line for line in lines)
    steps = [e for e in events if isinstance(e, StepEnded)]
    plain_steps = [e for e in plain_events if isinstance(e, StepEnded)]
    assert len(steps) == len(plain_steps), "one optimizer step per batch, as without the OOM"
    assert [s.loss for s in steps] == pytest.approx([s.loss for s in plain_steps], rel=1e-4)
    assert split.best_metrics == pytest.approx(plain.best_metrics, rel=1e-4, abs=1e-5)
    a, b = weights(plain.run_dir), weights(split.run_dir)
    flat_a = torch.cat([a[k].flatten() for k in sorted(a)])
    flat_b = torch.cat([b[k].flatten() for k in sorted(a)])
    # Summing in pieces changes float rounding, which AdamW's normalisation amplifies a little
    # on near-zero gradients; the weights as a whole must still agree closely.
    assert (flat_a - flat_b).norm() / flat_a.norm() < 1e-4
    assert RunDir(split.run_dir).state()["micro_batch"] == 2


@pytest.mark.slow  # two ViT trainings
def test_a_resumed_run_starts_at_the_recorded_micro_batch(shapes, tmp_path, monkeypatch):
    cfg = vit_config(shapes, epochs=3)
    task = Task()

    def cancel_after_two_steps(event):
        if isinstance(event, StepEnded) and event.step == 2:
            task.cancel()

    monkeypatch.setattr(ImagePipeline, "forward", oom_above(4))
    stopped = train(cfg, workspace=tmp_path, on_event=cancel_after_two_steps, task=task)
    assert stopped.status is RunStatus.CANCELLED

    seen: list[int] = []
    monkeypatch.setattr(ImagePipeline, "forward", oom_above(100, seen))
    events: list = []
    resumed = resume(stopped.run_dir.name, workspace=tmp_path, on_event=events.append)
    assert resumed.status is RunStatus.COMPLETED
    assert seen and max(seen) == 4, "no step tried the whole batch again"
    assert any("Continuing with micro-batches of 4" in line for line in logs(events))


@pytest.mark.slow
def test_oom_at_micro_batch_one_fails_with_a_sentence(shapes, tmp_path, monkeypatch):
    monkeypatch.setattr(ImagePipeline, "forward", oom_above(0))
    events: list = []
    with pytest.raises(MemoryExhausted) as err:
        train(vit_config(shapes), workspace=tmp_path, on_event=events.append)
    sentence = str(err.value)
    assert "one example at a time" in sentence and "another device" in sentence
    ended = [e for e in events if isinstance(e, RunEnded)]
    assert ended[-1].status is RunStatus.FAILED and ended[-1].error == sentence


@pytest.mark.slow  # two ViT trainings
def test_validation_runs_in_halves_on_oom(shapes, tmp_path, monkeypatch):
    cfg = vit_config(shapes, epochs=1)
    plain = train(cfg, workspace=tmp_path / "a")
    real = ImagePipeline._eval_forward

    def eval_forward(self, x):
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real(self, x)

    monkeypatch.setattr(ImagePipeline, "_eval_forward", eval_forward)
    events: list = []
    split = train(cfg, workspace=tmp_path / "b", on_event=events.append)
    assert split.best_metrics == pytest.approx(plain.best_metrics, rel=1e-4, abs=1e-5)
    assert any("during validation with batch" in line for line in logs(events))


@pytest.mark.slow
def test_feature_extraction_runs_in_halves_on_oom():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    data = [(torch.randn(3, 2, 2), 0) for _ in range(10)]

    class Picky(nn.Module):
        def forward(self, x):
            if len(x) > 3:
                raise torch.OutOfMemoryError("CUDA out of memory.")
            return net(x)

    kwargs = dict(placement=CPU, channels_last=False, batch_size=8, workers=0)
    lines: list[str] = []
    expected = extract_features(net, data, **kwargs)
    got = extract_features(Picky(), data, on_log=lines.append, **kwargs)
    torch.testing.assert_close(got, expected)
    assert lines == [
        "Out of memory on cpu during feature extraction with batch 8: continuing in batches of 4.",
        "Out of memory on cpu during feature extraction with batch 4: continuing in batches of 2.",
    ]


def test_a_text_run_splits_its_token_batches_on_oom(tmp_path, monkeypatch):
    from synthetic import make_text_table, make_tiny_bert

    from engine.training.text_pipeline import TextPipeline

    torch.manual_seed(0)
    bert = make_tiny_bert(tmp_path / "bert")
    table = make_text_table(tmp_path / "messages.tsv", per_class=12)
    cfg = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(bert)),
        adapt=AdaptConfig(method=Method.LORA),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    real = TextPipeline.forward
    rows: list[int] = []

    def forward(self, x):
        rows.append(len(x["input_ids"]))
        if len(x["input_ids"]) > 4:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return real(self, x)

    monkeypatch.setenv("REFIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(TextPipeline, "forward", forward)
    events: list = []
    result = train(cfg, workspace=tmp_path / "ws", on_event=events.append)
    assert result.status is RunStatus.COMPLETED
    assert any("micro-batches of 4, 2 accumulated per step" in line for line in logs(events))
    assert len([e for e in events if isinstance(e, StepEnded)]) == 3  # 18 texts, batches of 8
    assert max(rows[1:]) == 4


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_accumulated_gradients_equal_the_whole_batch_with_class_weights(smoothing):
    torch.manual_seed(1)
    model = nn.Linear(6, 3)
    x, y = torch.randn(7, 6), torch.tensor([0, 1, 2, 2, 1, 0, 0])
    weight = torch.tensor([1.0, 3.0, 0.5])
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)
    trainer = SimpleNamespace(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        criterion=criterion,
        placement=CPU,
        pipeline=SimpleNamespace(forward=model),
        scaler=None,
    )
    whole_loss, whole_correct = accumulate_gradients(trainer, x, y, 7)
    whole = [p.grad.clone() for p in model.parameters()]
    loss, correct = accumulate_gradients(trainer, x, y, 2)
    assert loss == pytest.approx(whole_loss, rel=1e-5)
    assert correct == whole_correct
    for g, p in zip(whole, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g)


def test_only_device_out_of_memory_is_caught():
    cpu, mps = torch.device("cpu"), torch.device("mps")
    cpu_failure = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
        "tried to allocate 100000000000000 bytes."
    )
    assert not is_device_oom(cpu_failure, cpu)
    assert not is_device_oom(MemoryError(), cpu)
    assert is_device_oom(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"), mps)
    assert is_device_oom(torch.OutOfMemoryError("CUDA out of memory."), cpu)
    assert "computer ran out of memory" in error_sentence(cpu_failure)

    def attempt(size):
        raise cpu_failure

    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        MicroBatcher(cpu).run(8, attempt)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_cuda_out_of_memory_falls_back_to_micro_batches(tmp_path):
    """The GPU is capped to what the estimate says about 10 images need, so batch 32 fails."""
    from engine.config import Device, DeviceConfig
    from engine.models import build_model
    from engine.training.memory import estimate_peak_memory

    shapes = make_shapes_folder(tmp_path / "shapes", per_class=40)
    cfg = vit_config(shapes, epochs=1, batch_size=32).replace(
        model=ModelConfig(backbone="timm:resnet18", pretrained=False),
        device=DeviceConfig(device=Device.CUDA),
    )
    est = estimate_peak_memory(build_model(cfg.model, 2), cfg, [])
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(est.peak_for(10) / total)
    events: list = []
    try:
        result = train(cfg, workspace=tmp_path / "ws", on_event=events.append)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert result.status is RunStatus.COMPLETED
    lines = logs(events)
    print("\n".join(lines))
    assert any(line.startswith("Out of memory on cuda with batch 32") for line in lines)
    micro = RunDir(result.run_dir).state()["micro_batch"]
    assert 1 <= micro < 32
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert len(steps) == 2  # 60 training images in batches of 32: the effective batch held
