"""The learning-rate range test: its curve, suggestion, restoring the model, cancel, JSON, CLI."""

from __future__ import annotations

import copy
import json
import threading

import pytest
import torch
from synthetic import make_scans_folder, tree_snapshot
from torch import nn

from engine.advice import LrCurve, find_learning_rate, lr_range_test, suggest_lr
from engine.advice.lr_find_config import PROBE_REASON
from engine.advice.lr_finder import FALLBACK_REASON, VALLEY_REASON
from engine.cli import main
from engine.config import AdaptConfig, DataConfig, Method, RunConfig
from engine.runs import Workspace
from engine.task import Cancelled, Task


def gaussian_problem(n: int = 256, d: int = 8, seed: int = 0):
    """Two overlapping Gaussian classes: learnable, with a finite best loss."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g) + (y[:, None] * 2 - 1) * 0.8
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]
    return x, y, batches


def mlp(d: int = 8, *, seed: int = 0, bn: bool = False, dropout: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    norm = [nn.BatchNorm1d(16)] if bn else []
    drop = [nn.Dropout(0.2)] if dropout else []  # draws from the RNG while training
    return nn.Sequential(nn.Linear(d, 16), *norm, nn.ReLU(), nn.Linear(16, 2), *drop)


def groups_of(model: nn.Module) -> list[dict]:
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]


def run_test(model: nn.Module, batches, **kwargs) -> LrCurve:
    return lr_range_test(
        model, batches, model, nn.CrossEntropyLoss(), groups=groups_of(model), **kwargs
    )


def loss_after_training(model: nn.Module, x, y, batches, lr: float, steps: int = 24) -> float:
    model = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for i in range(steps):
        bx, by = batches[i % len(batches)]
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(bx), by).backward()
        optimizer.step()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x), y).item()
    return loss if loss == loss else float("inf")


def test_curve_falls_then_rises_and_the_suggestion_trains_best():
    x, y, batches = gaussian_problem()
    model = mlp()
    curve = run_test(model, batches)
    lowest = min(range(len(curve.losses)), key=lambda i: curve.losses[i])
    assert curve.losses[lowest] < curve.losses[0] - 0.1, "the loss falls"
    assert curve.diverged_at is not None and curve.losses[-1] > 2 * curve.losses[lowest]
    # The suggestion lies on the falling part: below the bottom, with a loss already lower
    # than at the start.
    assert curve.reason == VALLEY_REASON
    assert curve.lrs[0] < curve.suggestion < curve.lrs[lowest]
    at = min(range(len(curve.lrs)), key=lambda i: abs(curve.lrs[i] - curve.suggestion))
    assert curve.losses[at] < curve.losses[0]
    good = loss_after_training(model, x, y, batches, curve.suggestion)
    assert good < loss_after_training(model, x, y, batches, 1e-6)
    assert good < loss_after_training(model, x, y, batches, 10 * curve.diverged_at)


def test_the_model_is_restored_exactly():
    _x, _y, batches = gaussian_problem()
    model = mlp(bn=True, dropout=True)
    model[0].bias.requires_grad_(False)  # a frozen parameter stays frozen
    model[0].weight.grad = torch.full_like(model[0].weight, 0.5)
    model[1].eval()  # a module in eval mode stays so
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    curve = run_test(model, batches, steps=30)
    assert len(curve.lrs) > 5
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights and BN stats"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 0.5))
    assert model[3].weight.grad is None
    assert torch.equal(torch.rand(3), expected_draw), "the RNG is put back"


def test_the_curve_changed_bn_statistics_during_the_test():
    """Guards the test above: the range test does move BatchNorm statistics while it runs."""
    _x, _y, batches = gaussian_problem()
    model = mlp(bn=True)
    seen = []
    run_test(
        model,
        batches,
        steps=5,
        on_point=lambda lr, loss: seen.append(model[1].running_mean.clone()),
    )
    assert not torch.equal(seen[-1], torch.zeros(16))
    assert torch.equal(model[1].running_mean, torch.zeros(16))


def test_each_group_moves_at_its_scale_of_the_head_rate():
    _x, _y, batches = gaussian_problem()
    model = mlp()
    made = []

    def make(groups):
        made.append(torch.optim.AdamW(groups))
        return made[-1]

    groups = [
        {"params": list(model[0].parameters()), "lr_scale": 0.1, "lr": 123.0},
        {"params": list(model[2].parameters()), "lr_scale": 1.0, "lr": 123.0},
    ]
    curve = lr_range_test(
        model,
        batches,
        model,
        nn.CrossEntropyLoss(),
        groups=groups,
        steps=10,
        end_lr=1e-3,
        make_optimizer=make,
    )
    backbone, head = made[0].param_groups
    assert head["lr"] == pytest.approx(curve.lrs[-1])
    assert backbone["lr"] == pytest.approx(0.1 * curve.lrs[-1])
    assert groups[0]["lr"] == 123.0, "the caller's groups are not changed"


def test_stops_early_when_the_loss_diverges_or_is_not_finite():
    _x, _y, batches = gaussian_problem()
    curve = run_test(mlp(), batches, steps=300, end_lr=100.0)
    assert len(curve.lrs) < 300 and curve.diverged_at == curve.lrs[-1]
    assert curve.losses[-1] > 4 * min(curve.losses)

    calls = []

    def nan_after_ten(logits, y):
        calls.append(1)
        loss = nn.functional.cross_entropy(logits, y)
        return loss * float("nan") if len(calls) > 10 else loss

    model = mlp()
    curve = lr_range_test(model, batches, model, nan_after_ten, groups=groups_of(model), steps=50)
    assert len(curve.lrs) == 10 and len(calls) == 11
    assert all(v == v for v in curve.losses)
    assert curve.diverged_at is not None and curve.diverged_at > curve.lrs[-1]


def test_cancel_raises_and_restores_and_pause_waits():
    _x, _y, batches = gaussian_problem()
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = Task()
    points = []

    def on_point(lr, loss):
        points.append(lr)
        if len(points) == 5:
            task.cancel()

    with pytest.raises(Cancelled):
        run_test(model, batches, steps=50, task=task, on_point=on_point)
    assert len(points) == 5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    task = Task()
    paused_at = []

    def pause_once(lr, loss):
        if not paused_at:
            paused_at.append(lr)
            task.pause()
            threading.Timer(0.3, task.resume).start()

    curve = run_test(model, batches, steps=20, task=task, on_point=pause_once)
    assert len(curve.lrs) == 20 and not task.paused


def test_suggestion_falls_back_and_handles_empty_curves():
    rising = [0.5 + 0.01 * i for i in range(40)]
    lrs = [10 ** (-7 + i * 0.2) for i in range(40)]
    suggestion, reason = suggest_lr(lrs, rising)
    assert reason == FALLBACK_REASON and suggestion == lrs[0]  # a tenth, clipped into the range
    bowl = [1.0, 0.9, 1.5]
    suggestion, reason = suggest_lr([1e-3, 1e-2, 1e-1], bowl)
    assert reason == FALLBACK_REASON and suggestion == pytest.approx(1e-3)
    assert suggest_lr([], [])[0] is None


def test_curve_json_round_trip():
    _x, _y, batches = gaussian_problem()
    curve = run_test(mlp(), batches, steps=20)
    again = LrCurve.from_dict(json.loads(json.dumps(curve.to_dict())))
    assert again == curve
    assert len(curve.table(10)) == 10 and curve.table(10)[0][0] == curve.lrs[0]
    with pytest.raises(ValueError, match="extra"):
        LrCurve.from_dict({**curve.to_dict(), "extra": 1})


def test_a_linear_probe_config_gets_the_sentence_and_no_test(tmp_path):
    cfg = RunConfig(
        data=DataConfig(path=str(tmp_path / "not-scanned")),
        adapt=AdaptConfig(method=Method.LINEAR_PROBE),
    )
    curve = find_learning_rate(cfg)
    assert not curve.ran and curve.suggestion is None and curve.reason == PROBE_REASON
    assert "no learning rate" in curve.reason


TINY = ["--backbone", "timm:test_efficientnet", "--no-pretrained", "--workers", "0"]


@pytest.mark.slow
def test_cli_prints_a_suggestion_writes_json_and_leaves_no_trace(tmp_path, capsys):
    scans = make_scans_folder(tmp_path / "scans", per_class=8, size=32)
    snapshot = tree_snapshot(scans)
    ws, out_file = tmp_path / "ws", tmp_path / "curve.json"
    argv = ["--workspace", str(ws), "lr-find", str(scans), *TINY, "--method", "full"]
    code = main([*argv, "--batch-size", "8", "--steps", "20", "--quiet", "--json", str(out_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Suggested learning rate" in out and "--lr" in out
    curve = LrCurve.from_dict(json.loads(out_file.read_text()))
    assert curve.suggestion is not None and 1e-7 <= curve.suggestion <= 10
    assert tree_snapshot(scans) == snapshot
    assert Workspace(ws).list_runs() == []

    code = main([*argv, "--json", str(scans / "curve.json")])
    _out, err = capsys.readouterr()
    assert code == 2 and "inside the dataset" in err and err.count("\n") == 1
    assert tree_snapshot(scans) == snapshot

    code = main(["lr-find", str(scans), "--method", "linear-probe"])
    out, _err = capsys.readouterr()
    assert code == 0 and PROBE_REASON in out


@pytest.mark.slow
def test_text_models_get_a_curve_with_lora(tmp_path):
    from synthetic import make_text_table, make_tiny_bert

    from engine.config import ModelConfig, ScheduleConfig

    table = make_text_table(tmp_path / "msgs.csv", per_class=12)
    cfg = RunConfig(
        data=DataConfig(path=str(table), val_fraction=0.25, num_workers=0),
        model=ModelConfig(backbone=str(make_tiny_bert(tmp_path / "bert"))),
        adapt=AdaptConfig(method=Method.LORA),
        schedule=ScheduleConfig(batch_size=8),
    ).validate()
    events = []
    curve = find_learning_rate(cfg, workspace=tmp_path / "ws", steps=15, on_event=events.append)
    assert len(curve.lrs) == 15 and curve.suggestion is not None
    stages = {getattr(e, "stage", "") for e in events}
    assert "lr_find" in stages and "tokenize" in stages
    assert Workspace(tmp_path / "ws").list_runs() == []
