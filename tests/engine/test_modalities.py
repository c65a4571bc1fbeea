"""The modality is chosen once: engine/modalities/ holds what differs between images and texts,
behind one protocol, and nothing else in the engine compares modality strings."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.modalities import (
    IMAGE,
    MODALITIES,
    TEXT,
    Modality,
    UnknownModalityError,
    modality_of,
)

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"
BRANCH = re.compile(r"modality\s*(==|!=)")


def test_no_modality_branches_outside_engine_modalities() -> None:
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        if path.is_relative_to(ENGINE / "modalities"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if BRANCH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, (
        "Modality branches outside engine/modalities/; ask the Modality object instead "
        "(modality_of(x).noun, .pipeline(frozen), ...):\n" + "\n".join(found)
    )


def test_registry_is_keyed_by_the_stored_names() -> None:
    assert MODALITIES == {"image": IMAGE, "text": TEXT}
    assert modality_of("image") is IMAGE
    assert modality_of("text") is TEXT
    assert modality_of(TEXT) is TEXT
    assert modality_of(SimpleNamespace(modality="text")) is TEXT  # a RunData, an entry, a model


@pytest.mark.parametrize("name", ["audio", "", None, "Image", 3])
def test_an_unknown_modality_is_one_clear_sentence(name: object) -> None:
    with pytest.raises(UnknownModalityError) as caught:
        modality_of(name)
    message = str(caught.value)
    assert message.startswith("Refit Studio does not know the modality")
    assert "'image' or 'text'" in message
    assert message.count(".") >= 1 and "\n" not in message
    assert isinstance(caught.value, ValueError)


def test_an_object_without_a_modality_is_refused_the_same_way() -> None:
    with pytest.raises(UnknownModalityError, match="does not know the modality None"):
        modality_of(object())


def _members() -> dict[str, object]:
    """Every attribute and method the protocol declares."""
    names = set(getattr(Modality, "__annotations__", {}))
    names |= {n for n, v in vars(Modality).items() if callable(v) and not n.startswith("_")}
    return {n: getattr(Modality, n, None) for n in sorted(names)}


@pytest.mark.parametrize("modality", [IMAGE, TEXT], ids=["image", "text"])
def test_each_modality_implements_the_whole_protocol(modality: Modality) -> None:
    assert isinstance(modality, Modality)
    members = _members()
    assert len(members) > 30  # the protocol covers data, models, predictions and export
    for name, declared in members.items():
        assert hasattr(modality, name), f"{modality.name} lacks {name}"
        if callable(declared):
            own = getattr(type(modality), name)
            assert callable(own), f"{modality.name}.{name} is not a method"
            assert list(inspect.signature(own).parameters) == list(
                inspect.signature(declared).parameters
            ), f"{modality.name}.{name} has another signature than the protocol's"


def test_the_words_the_user_reads() -> None:
    assert (IMAGE.noun, TEXT.noun) == ("images", "texts")
    assert (IMAGE.singular, TEXT.singular) == ("image", "text")
    assert IMAGE.input_names == ("pixel_values",)
    assert TEXT.input_names == ("input_ids", "attention_mask")


def test_the_catalog_starters_are_the_modalities() -> None:
    from engine.models.catalog import STARTER, TEXT_STARTER, resolve_entry

    assert (IMAGE.starter, TEXT.starter) == (STARTER, TEXT_STARTER)
    assert modality_of(resolve_entry(STARTER)) is IMAGE
    assert modality_of(resolve_entry(TEXT_STARTER)) is TEXT


def test_the_upper_layer_parts_resolve() -> None:
    """Every name in engine/modalities/parts.py's table imports (a typo fails here, not in a
    run)."""
    from engine.modalities import parts

    for name in parts._PARTS:
        assert getattr(parts, name) is not None, name


def test_stored_rows_round_trip() -> None:
    from engine.data import Sample, TextSample

    image = (Sample(path="a/b.png", label=1, split="train", digest="d"),)
    text = (TextSample(text="hi", label=0, split="val", digest="e", origin="f.txt:1"),)
    assert IMAGE.samples(IMAGE.rows(image), "train") == image
    assert TEXT.samples(TEXT.rows(text), "val") == text
