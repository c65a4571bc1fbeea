"""Training on texts: tokenized, length-bucketed batches, every method, resume, predict, CLI."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file
from synthetic import make_text_table, make_tiny_bert, tree_snapshot

from engine.cli import main as refit
from engine.config import AdaptConfig, DataConfig, Method, ModelConfig, RunConfig, ScheduleConfig
from engine.data import TextSample
from engine.data.tokens import TokenizedTexts, length_batches
from engine.evaluation import Predictor
from engine.events import RunStarted, StepEnded
from engine.models import ModelError
from engine.runs import RunDir
from engine.task import Task
from engine.training.checkpoint_files import weights_file
from engine.training.trainer import resume, train


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch.manual_seed(0)
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture
def table(tmp_path):
    return make_text_table(tmp_path / "data" / "messages.tsv", per_class=24)


def text_config(path, backbone, *, method=Method.LORA, epochs=2, **adapt) -> RunConfig:
    return RunConfig(
        seed=1,
        data=DataConfig(path=str(path), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(backbone)),
        adapt=AdaptConfig(method=method, **adapt),
        schedule=ScheduleConfig(epochs=epochs, batch_size=8, warmup_fraction=0.0),
    ).validate()


# -- batches ------------------------------------------------------------------------------------


def test_length_bucketing_keeps_every_text_once_and_cuts_padding():
    rng = random.Random(0)
    lengths = [rng.choice([4, 6, 10, 30, 120]) for _ in range(1000)]
    order = list(range(1000))
    rng.shuffle(order)
    plain = length_batches(order, lengths, 16, bucketing=False)
    bucketed = length_batches(order, lengths, 16, bucketing=True, seed=5)
    assert len(bucketed) == len(plain) == 63
    assert sorted(i for b in bucketed for i in b) == list(range(1000))
    assert bucketed == length_batches(order, lengths, 16, bucketing=True, seed=5)
    assert bucketed != length_batches(order, lengths, 16, bucketing=True, seed=6)

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(bucketed) < 0.5 * padded(plain)


def test_dynamic_padding_pads_each_batch_to_its_longest_text():
    from engine.models.text import load_tokenizer
    from engine.models.weights import text_starter_folder

    tok = load_tokenizer(text_starter_folder())
    texts = ["short", "a somewhat longer text than that", "x " * 500]
    samples = [
        TextSample(text=t, label=i % 2, split=None, digest=str(i), origin="")
        for i, t in enumerate(texts)
    ]
    tokens = TokenizedTexts(samples, tok, max_length=64)
    assert tokens.lengths[2] == 64, "texts are cut to max_length"
    batch = tokens.batch([0, 1])
    assert batch["input_ids"].shape == (2, tokens.lengths[1])
    assert batch["attention_mask"].sum(1).tolist() == [tokens.lengths[0], tokens.lengths[1]]
    assert (batch["input_ids"][0, tokens.lengths[0] :] == tok.pad_token_id).all()


# -- runs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [Method.LINEAR_PROBE, Method.LAST_N, Method.FULL, Method.LORA])
def test_every_method_trains_on_a_table_and_leaves_the_data_untouched(
    table, tiny_bert, tmp_path, method
):
    before = tree_snapshot(table.parent)
    events = []
    result = train(
        text_config(table, tiny_bert, method=method, last_n=1),
        workspace=tmp_path / "ws",
        on_event=events.append,
    )
    assert str(result.status) == "completed", result.error
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.modality == "text" and started.classes == ("billing", "delivery")
    assert started.train_size + started.val_size == 48
    assert started.feature_cache is (method is Method.LINEAR_PROBE)
    run = RunDir(result.run_dir)
    assert run.state()["trainable_params"] == started.trainable_params
    splits = json.loads(run.splits_path.read_text())
    assert splits["modality"] == "text" and len(splits["train"][0]) == 4
    assert (run.path / "adapter" / "adapter_config.json").is_file() is (method is Method.LORA)
    assert tree_snapshot(table.parent) == before


# slow: the real starter text backbone, trained twice for 4 epochs
@pytest.mark.slow
def test_the_starter_learns_a_text_task_and_lora_beats_chance(tmp_path):
    table = make_text_table(tmp_path / "support.csv", per_class=30, classes=3, seed=2)
    for method in (Method.LINEAR_PROBE, Method.LORA):
        result = train(
            text_config(table, "all-MiniLM-L6-v2", method=method, epochs=4),
            workspace=tmp_path / "ws",
        )
        assert result.best_metrics["val_accuracy"] >= 0.9, (method, result.best_metrics)


@pytest.mark.slow  # two trainings: cancelled and resumed, then uninterrupted
def test_cancelled_lora_run_resumes_to_the_same_weights(table, tiny_bert, tmp_path):
    cfg = text_config(table, tiny_bert, epochs=3)
    straight = train(cfg, workspace=tmp_path / "a")
    task = Task()

    def cancel_at_step_5(event):
        if isinstance(event, StepEnded) and event.step == 5:
            task.cancel()

    stopped = train(cfg, workspace=tmp_path / "b", on_event=cancel_at_step_5, task=task)
    assert str(stopped.status) == "cancelled"
    resumed = resume(stopped.run_dir.name, workspace=tmp_path / "b")
    a = load_file(str(weights_file(RunDir(straight.run_dir), "last")))
    b = load_file(str(weights_file(RunDir(resumed.run_dir), "last")))
    assert a.keys() == b.keys() and any(".lora_" in k for k in a)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_predictor_matches_the_adapter_and_reports_empty_texts(table, tiny_bert, tmp_path):
    result = train(text_config(table, tiny_bert, lora_save_merged=True), workspace=tmp_path)
    run = RunDir(result.run_dir)
    predictor = Predictor(run)
    assert predictor.modality == "text"
    texts = [("a", "refund my card payment please"), ("b", "   "), ("c", "parcel tracking")]
    out = predictor.predict_texts(texts, top_k=2)
    assert [p.path for p in out] == ["a", "b", "c"]
    assert out[1].error and not out[0].error and len(out[0].top) == 2
    assert sum(prob for _, prob in out[0].top) == pytest.approx(1.0, abs=1e-5)

    from engine.models import build_model
    from engine.models.lora import load_adapter

    fresh = build_model(ModelConfig(backbone=str(tiny_bert)), 2)
    model = load_adapter(fresh, run.path / "adapter").eval()
    batch = dict(model.tokenizer([texts[0][1]], return_tensors="pt"))
    with torch.no_grad():
        probs = model(batch).softmax(1)[0]
    classes = ["billing", "delivery"]
    assert dict(out[0].top) == pytest.approx(
        {c: float(probs[i]) for i, c in enumerate(classes)}, abs=1e-5
    )
    merged = load_file(str(run.path / "merged" / "model.safetensors"))
    assert not any(".lora_" in k for k in merged)
    assert (run.path / "merged" / "encoder" / "config.json").is_file()


def test_text_data_with_an_image_backbone_fails_with_one_sentence(table, tmp_path):
    cfg = text_config(table, "timm:test_efficientnet", method=Method.FULL)
    with pytest.raises(ModelError, match="choose a text backbone, for example all-MiniLM-L6-v2"):
        train(cfg, workspace=tmp_path)


def test_cli_trains_lora_on_a_csv_with_named_columns_and_replays_its_config(
    tiny_bert, tmp_path, capsys
):
    table = make_text_table(tmp_path / "tickets.csv", per_class=16)
    ws = str(tmp_path / "ws")
    args = [
        "--workspace",
        ws,
        "train",
        str(table),
        "--text-column",
        "message",
        "--label-column",
        "category",
        "--backbone",
        str(tiny_bert),
        "--method",
        "lora",
        "--lora-rank",
        "4",
        "--epochs",
        "1",
        "--quiet",
    ]
    saved = tmp_path / "lora.json"
    assert refit([*args, "--save-config", str(saved)]) == 0
    config = RunConfig.load(saved)
    assert config.adapt.method is Method.LORA and config.adapt.lora_rank == 4
    assert config.data.text_column == "message" and config.data.label_column == "category"
    assert refit(["--workspace", ws, "train", str(saved), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "texts on" in out and "Run completed" in out
    run_id = out.strip().splitlines()[-1].rsplit("/", 1)[-1]
    assert refit(["--workspace", ws, "predict", run_id, "--text", "refund invoice"]) == 0
    assert capsys.readouterr().out.startswith("refund invoice\t")


def test_cli_picks_the_text_starter_for_a_table_and_rejects_a_missing_column(tmp_path, capsys):
    table = make_text_table(tmp_path / "t.csv", per_class=4)
    saved = tmp_path / "c.json"
    assert refit(["train", str(table), "--save-config", str(saved)]) == 0
    assert RunConfig.load(saved).model.backbone == "all-MiniLM-L6-v2"
    assert refit(["scan", str(table), "--text-column", "body"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'body'" in err[0]


def test_epoch_estimate_feeds_texts_and_inserts_lora(tiny_bert):
    from engine.models import build_model
    from engine.training.estimate import estimate_epoch_seconds

    model = build_model(ModelConfig(backbone=str(tiny_bert)), 2)
    lora = text_config("x.csv", tiny_bert)
    est = estimate_epoch_seconds(model, lora, [], 100, repeats=1)
    assert not est.cached and est.first_epoch_s > 0
    probe = text_config("x.csv", tiny_bert, method=Method.LINEAR_PROBE)
    frozen = [g.name for g in model.groups if g.name != "head"]
    assert estimate_epoch_seconds(model, probe, frozen, 100, repeats=1).cached
    assert not any(".lora_" in n for n, _ in model.named_parameters()), "model left unchanged"
