"""The linear probe: a cross-validated logistic regression on standardised cached features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import make_shapes_folder
from test_training import tiny_config

from engine.config import Method, OptimConfig
from engine.events import EpochEnded, LogMessage, RunStarted, RunStatus, StepEnded
from engine.runs import RunDir
from engine.task import Task
from engine.training.logistic import (
    C_GRID,
    CrossValidation,
    Standardizer,
    cv_folds,
    fit_logistic,
    fold_into_linear,
)
from engine.training.pipeline import FeaturePipeline
from engine.training.trainer import resume, train


def blobs(n_per_class=40, classes=3, dims=20, seed=0, spread=2.5):
    """Overlapping Gaussian classes with unequal feature scales (as backbone features are)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (classes, dims))
    x = np.concatenate([rng.normal(c, spread, (n_per_class, dims)) for c in centers])
    x = x * rng.uniform(0.05, 5, dims) + rng.uniform(-3, 3, dims)
    y = np.repeat(np.arange(classes), n_per_class)
    return torch.tensor(x), torch.tensor(y)


@pytest.mark.parametrize("c", [0.01, 1.0])
def test_fit_matches_scikit_learn_logistic_regression_at_the_same_c(c):
    from sklearn.linear_model import LogisticRegression

    x, y = blobs()
    xs = Standardizer.fit(x)(x)
    ours = fit_logistic(xs, y, 3, c)
    ref = LogisticRegression(C=c, max_iter=5000, tol=1e-10).fit(xs.numpy(), y.numpy())
    ours_prob = torch.softmax(ours.logits(xs), 1).numpy()
    np.testing.assert_allclose(ours_prob, ref.predict_proba(xs.numpy()), atol=2e-3)
    ours_acc = (ours.logits(xs).argmax(1) == y).double().mean().item()
    assert ours_acc == pytest.approx(ref.score(xs.numpy(), y.numpy()), abs=0.01)


def test_class_weights_act_as_sample_weights_like_scikit_learns_balanced():
    from sklearn.linear_model import LogisticRegression

    x, y = blobs(n_per_class=30)
    keep = torch.cat([torch.arange(0, 30), torch.arange(30, 40), torch.arange(60, 90)])
    x, y = Standardizer.fit(x[keep])(x[keep]), y[keep]
    counts = torch.bincount(y).double()
    class_weight = len(y) / (3 * counts)
    ours = fit_logistic(x, y, 3, 0.1, sample_weight=class_weight[y])
    ref = LogisticRegression(C=0.1, class_weight="balanced", max_iter=5000, tol=1e-10)
    ref.fit(x.numpy(), y.numpy())
    ours_prob = torch.softmax(ours.logits(x), 1).numpy()
    np.testing.assert_allclose(ours_prob, ref.predict_proba(x.numpy()), atol=2e-3)


def test_the_folded_head_gives_the_logits_of_standardise_then_head():
    x, y = blobs()
    scale = Standardizer.fit(x)
    fit = fit_logistic(scale(x), y, 3, 1.0)
    linear = torch.nn.Linear(x.shape[1], 3).double()
    fold_into_linear(linear, fit, scale)
    torch.testing.assert_close(linear(x), fit.logits(scale(x)), rtol=1e-9, atol=1e-9)
    linear32 = torch.nn.Linear(x.shape[1], 3)
    fold_into_linear(linear32, fit, scale)
    assert (linear32(x.float()).argmax(1) == fit.logits(scale(x)).argmax(1)).all()


def test_all_views_of_an_image_stay_in_one_fold():
    x, y = blobs(n_per_class=10)
    views = torch.stack([x, x + 0.01, x - 0.01])  # 3 views of 30 images
    cv = CrossValidation(views, y, 3, None, seed=0)
    assert len(cv.folds) == 5
    for train_idx, test_idx in cv.folds:
        assert not set(train_idx) & set(test_idx)
        rows, _labels = cv.rows(train_idx)
        assert len(rows) == 3 * len(train_idx)
        held = {tuple(r) for r in views[:, test_idx].reshape(-1, x.shape[1]).tolist()}
        seen = {tuple(r) for r in rows.tolist()}
        assert not held & seen, "a view of a held-out image is among the training rows"
    assert cv_folds([0, 0, 0, 1], seed=0) == [], "one image of a class cannot be held out"


@pytest.fixture
def shapes(tmp_path):
    return make_shapes_folder(tmp_path / "shapes", per_class=12)


def _epochs(run_dir):
    return [r for r in RunDir(run_dir).metrics() if r["type"] == "epoch"]


@pytest.mark.slow
def test_probe_run_streams_one_epoch_per_c_and_ends_with_the_chosen_fit(shapes, tmp_path):
    events = []
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE).replace(
        optim=OptimConfig(label_smoothing=0.1)
    )
    result = train(cfg, workspace=tmp_path / "ws", on_event=events.append)
    assert result.status is RunStatus.COMPLETED
    started = next(e for e in events if isinstance(e, RunStarted))
    epoch_events = [e for e in events if isinstance(e, EpochEnded)]
    assert started.epochs == len(epoch_events) == len(C_GRID) + 1
    assert [e.metrics["l2_c"] for e in epoch_events[:-1]] == list(C_GRID)
    assert [e.is_best for e in epoch_events] == [False] * len(C_GRID) + [True]
    final = epoch_events[-1].metrics
    cv_best = max(e.metrics["cv_accuracy"] for e in epoch_events[:-1])
    assert final["cv_accuracy"] == cv_best
    records = _epochs(result.run_dir)
    for key in ("val_accuracy", "val_loss", "val_macro_f1", "train_loss", "cv_accuracy"):
        assert all(key in r for r in records), key
    summary = RunDir(result.run_dir).summary()
    assert summary["best_epoch"] == len(C_GRID)
    assert summary["best"]["val_accuracy"] == pytest.approx(final["val_accuracy"])
    assert any(isinstance(e, StepEnded) for e in events)
    logs = [e.text for e in events if isinstance(e, LogMessage)]
    assert any("Label smoothing does not apply" in t for t in logs)
    assert any("validation split played no part" in t for t in logs)


@pytest.mark.slow
def test_cross_validation_never_looks_at_the_validation_features(shapes, tmp_path, monkeypatch):
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE)
    honest = train(cfg, workspace=tmp_path / "a")
    prepare = FeaturePipeline.prepare

    def poisoned(self):
        prepare(self)
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(self.val_features.shape, generator=g) * 100
        self.val_features = noise.to(self.val_features)
        self.val_labels = self.val_labels.flip(0)

    monkeypatch.setattr(FeaturePipeline, "prepare", poisoned)
    poison = train(cfg, workspace=tmp_path / "b")
    a, b = _epochs(honest.run_dir), _epochs(poison.run_dir)
    assert [r["cv_accuracy"] for r in a] == [r["cv_accuracy"] for r in b]
    assert a[-1]["l2_c"] == b[-1]["l2_c"], "the chosen C must not depend on validation data"
    assert [r["val_loss"] for r in a] != [r["val_loss"] for r in b], "the poison took effect"


@pytest.mark.slow
def test_a_cancelled_probe_resumes_to_a_complete_valid_run(shapes, tmp_path):
    cfg = tiny_config(shapes, method=Method.LINEAR_PROBE)
    straight = train(cfg, workspace=tmp_path / "a")
    task = Task()

    def cancel_in_the_third_grid_point(event):
        if isinstance(event, EpochEnded) and event.epoch == 2:
            task.cancel()

    stopped = train(
        cfg, workspace=tmp_path / "b", on_event=cancel_in_the_third_grid_point, task=task
    )
    assert stopped.status is RunStatus.CANCELLED
    assert RunDir(stopped.run_dir).state()["resumable"] is True
    resumed = resume(stopped.run_dir.name, workspace=tmp_path / "b")
    assert resumed.status is RunStatus.COMPLETED
    epochs = [r["epoch"] for r in _epochs(resumed.run_dir)]
    assert epochs == list(range(len(C_GRID) + 1)), "each epoch recorded once"
    assert resumed.best_metrics == pytest.approx(straight.best_metrics)
    assert (RunDir(resumed.run_dir).checkpoints / "best.safetensors").is_file()


def test_folds_fitted_in_threads_give_the_same_scores():
    x, y = blobs(n_per_class=30, classes=3, dims=12)
    views = torch.as_tensor(x, dtype=torch.float64).unsqueeze(0)
    labels = torch.as_tensor(y)
    one = CrossValidation(views, labels, 3, None, seed=0)
    many = CrossValidation(views, labels, 3, None, seed=0)
    seen: list[float] = []
    for c in (0.01, 1.0, 100.0):  # warm starts carry from one C to the next, per fold
        a = one.score(c)
        b = many.score(c, after_fold=lambda loss, rate: seen.append(loss), workers=3)
        assert (a.accuracy, a.loss) == (b.accuracy, b.loss)
    assert len(seen) == 3 * len(one.folds)
