"""Word influence: the word that decides the class ranks first, tokens map back to the words of
the original text on WordPiece and byte-level BPE tokenizers, LoRA runs work, nothing changes."""

from __future__ import annotations

import copy
import random
from types import SimpleNamespace

import pytest
import torch
from synthetic import make_tiny_bert

from engine.config import AdaptConfig, Method, ModelConfig
from engine.evaluation.explain import (
    ExplainError,
    can_explain,
    image_heatmaps,
    token_influence,
)
from engine.evaluation.predict import Predictor
from engine.models import build_model
from engine.models.lora import apply_lora
from engine.models.text import token_limit

FILLER = [
    "the",
    "my",
    "it",
    "was",
    "please",
    "today",
    "again",
    "still",
    "and",
    "help",
    "now",
    "order",
    "account",
    "thanks",
]


def predictor_of(model, classes=("other", "billing"), max_length: int = 64) -> Predictor:
    """A Predictor around a text model in memory, set up as Predictor(run) sets one up."""
    predictor = Predictor.__new__(Predictor)
    predictor.classes = list(classes)
    predictor.device = torch.device("cpu")
    predictor.model = model.eval()
    predictor.modality = model.modality
    predictor.max_length = token_limit(model.tokenizer, model.backbone, max_length)
    return predictor


def refund_texts(n: int, seed: int) -> list[tuple[str, int]]:
    """Filler-word messages; every second one has "refund" somewhere, and only those are 1."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), "refund")
        rows.append((" ".join(words), i % 2))
    return rows


def refund_detector(folder, *, lora: bool = False) -> Predictor:
    """A classifier whose head is the difference of the backbone's mean features on texts with
    and without "refund" (the midpoint as the boundary): "refund" alone decides the class."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone=str(folder)), 2).eval()
    if lora:
        apply_lora(model, AdaptConfig(method=Method.LORA))
    rows = refund_texts(64, 0)
    enc = model.tokenizer([t for t, _ in rows], padding=True, return_tensors="pt")
    labels = torch.tensor([y for _, y in rows])
    with torch.no_grad():
        features = model.forward_features(dict(enc))
        yes, no = features[labels == 1].mean(0), features[labels == 0].mean(0)
        direction = (yes - no) / (yes - no).norm() * 20
        offset = (direction * (yes + no) / 2).sum()
        model.head[1].weight.copy_(torch.stack([-direction, direction]))
        model.head[1].bias.copy_(torch.stack([offset, -offset]))
    return predictor_of(model)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch.manual_seed(0)
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="module")
def refund_bert(tiny_bert):
    return refund_detector(tiny_bert)


def test_the_deciding_word_has_the_most_influence(refund_bert):
    for text, label in refund_texts(12, seed=1):
        if not label:
            continue
        result = token_influence(refund_bert, text)
        assert result.target == "billing" and result.probability > 0.5
        words = dict(result.words)
        assert max(words, key=words.get) == "refund"
        assert words["refund"] == pytest.approx(1.0)
    against = token_influence(refund_bert, "please refund my order", target=0)
    assert against.target == "other"
    assert dict(against.words)["refund"] == pytest.approx(-1.0)  # pushes away from "other"


def test_influence_reports_when_done_and_stops_when_cancelled(refund_bert):
    from engine.task import Cancelled, Task

    seen = []
    token_influence(refund_bert, "please refund my order", task=Task(seen.append))
    assert [(p.done, p.total) for p in seen] == [(1, 1)]
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        token_influence(refund_bert, "please refund my order", task=task)


def test_sub_word_tokens_merge_into_the_words_of_the_text(refund_bert):
    text = "  Unbelievably,   my REFUND (order #12) wasn't processed!!  "
    result = token_influence(refund_bert, text)
    assert [w for w, _ in result.words] == text.split()  # original case and punctuation
    assert max(abs(s) for _, s in result.words) == pytest.approx(1.0)
    assert not any(w in ("[CLS]", "[SEP]", "[PAD]") for w, _ in result.words)
    assert "LayerIntegratedGradients" in result.method and "[PAD] baseline" in result.method


def test_words_past_the_token_limit_are_kept_with_no_influence(tiny_bert):
    model = refund_detector(tiny_bert).model
    short = predictor_of(model, max_length=8)  # [CLS] + 6 words + [SEP]
    text = "refund please help my order now today again still the account"
    result = token_influence(short, text)
    assert [w for w, _ in result.words] == text.split()
    assert all(score == 0.0 for _, score in result.words[6:])
    assert result.words[0] == ("refund", pytest.approx(1.0))
    assert result.method.endswith("only the first 8 tokens are read")


def test_byte_level_bpe_and_distilbert_models_map_back_to_words(tmp_path, tiny_bert):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        AutoTokenizer,
        DistilBertConfig,
        DistilBertModel,
        RobertaConfig,
        RobertaModel,
        RobertaTokenizerFast,
    )

    roberta = tmp_path / "tiny-roberta"
    bpe = ByteLevelBPETokenizer()
    corpus = [t for t, _ in refund_texts(40, 2)] + ["Where is my parcel? It's late!"]
    bpe.train_from_iterator(
        corpus, vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    RobertaTokenizerFast(tokenizer_object=bpe._tokenizer).save_pretrained(str(roberta))
    tiny = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    RobertaModel(
        RobertaConfig(vocab_size=400, hidden_size=32, max_position_embeddings=66, **tiny)
    ).save_pretrained(str(roberta))
    distil = tmp_path / "tiny-distilbert"
    DistilBertModel(
        DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    ).save_pretrained(str(distil))
    AutoTokenizer.from_pretrained(str(tiny_bert)).save_pretrained(str(distil))

    text = "Where's my refund?   It's late, again!"
    for folder, blank in ((roberta, "<pad>"), (distil, "[PAD]")):
        torch.manual_seed(0)
        predictor = predictor_of(build_model(ModelConfig(backbone=str(folder)), 2))
        assert can_explain(predictor) == ""
        result = token_influence(predictor, text)
        assert [w for w, _ in result.words] == text.split()
        assert max(abs(s) for _, s in result.words) == pytest.approx(1.0)
        assert f"{blank} baseline" in result.method


def test_lora_models_explain_without_changing_weights_or_flags(tiny_bert):
    predictor = refund_detector(tiny_bert, lora=True)
    model = predictor.model
    with torch.no_grad():  # adapters that do something, as after training
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.01)
    model.train()
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    modes = {k: m.training for k, m in model.named_modules()}
    with torch.inference_mode():  # a caller in inference mode still gets gradients
        result = token_influence(predictor, "it was the refund again")
    words = dict(result.words)
    assert max(words, key=words.get) == "refund"
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    assert {k: m.training for k, m in model.named_modules()} == modes
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_what_cannot_be_explained_says_so_in_one_sentence(refund_bert, tmp_path):
    with pytest.raises(ExplainError, match="The text is empty"):
        token_influence(refund_bert, "  \n ")
    with pytest.raises(ExplainError, match="no class number 2"):
        token_influence(refund_bert, "refund", target=2)
    with pytest.raises(ExplainError, match="reads texts"):
        image_heatmaps(refund_bert, [str(tmp_path / "x.png")])
    assert can_explain(refund_bert) == ""
    model = copy.copy(refund_bert.model)  # the same layers, its own tokenizer attribute
    model.tokenizer = SimpleNamespace(is_fast=False)  # a slow (Python) tokenizer has no offsets
    sentence = can_explain(predictor_of(model))
    assert sentence.startswith("Word influence needs a fast (Rust) tokenizer")
    assert sentence.count(". ") == 0


def test_a_trained_lora_run_explains_its_texts(tmp_path, tiny_bert):
    from synthetic import make_text_table

    from engine.config import DataConfig, RunConfig, ScheduleConfig
    from engine.runs import RunDir
    from engine.training.trainer import train

    table = make_text_table(tmp_path / "data" / "messages.tsv", per_class=12)
    config = RunConfig(
        seed=1,
        data=DataConfig(path=str(table), val_fraction=0.25, max_length=32),
        model=ModelConfig(backbone=str(tiny_bert)),
        adapt=AdaptConfig(method=Method.LORA),
        schedule=ScheduleConfig(epochs=1, batch_size=8, warmup_fraction=0.0),
    ).validate()
    predictor = Predictor(RunDir(train(config, workspace=tmp_path / "ws").run_dir))
    assert can_explain(predictor) == ""
    text = "my parcel never arrived and the courier says tracking is broken"
    result = token_influence(predictor, text)
    [prediction] = predictor.predict_texts([("t", text)], top_k=1)
    assert (result.target, result.probability) == (
        prediction.top[0][0],
        pytest.approx(prediction.top[0][1], abs=1e-5),
    )
    assert [w for w, _ in result.words] == text.split()


@pytest.mark.slow
def test_the_text_starter_explains_a_message():
    predictor = predictor_of(build_model(ModelConfig(backbone="all-MiniLM-L6-v2"), 2), ("a", "b"))
    assert can_explain(predictor) == ""
    text = "Hello, I ordered a blue jacket two weeks ago and it still has not arrived; refund me!"
    result = token_influence(predictor, text)
    assert [w for w, _ in result.words] == text.split()
    assert max(abs(s) for _, s in result.words) == pytest.approx(1.0)
