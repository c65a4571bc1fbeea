"""The modality is chosen once in the app too: desktop/modalities.py says which views show each
modality's data, the engine's Modality gives the words and facts, and no other module in
desktop/ compares modality strings."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from desktop.modalities import (
    DESKTOP_MODALITIES,
    IMAGE_VIEWS,
    TEXT_VIEWS,
    index_views,
    views_of,
)
from engine.modalities import IMAGE, MODALITIES, TEXT

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = ROOT / "desktop"
REGISTRY = DESKTOP / "modalities.py"
# `modality ==`, `modality !=`, and a comparison with a modality's stored name on either side.
BRANCH = re.compile(
    r"modality\s*(==|!=)|(==|!=)\s*['\"](image|text)['\"]|['\"](image|text)['\"]\s*(==|!=)"
)


def test_no_modality_branches_outside_the_registry() -> None:
    found = []
    for path in sorted(DESKTOP.rglob("*.py")):
        if path == REGISTRY:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if BRANCH.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, (
        "Modality branches in desktop/; ask desktop.modalities instead (views_of(name)"
        ".text_views for which views, views_of(name).modality.noun and the engine Modality's "
        "other facts for words):\n" + "\n".join(found)
    )


def test_the_pattern_catches_the_branches_it_forbids() -> None:
    for line in (
        'if modality == "text":',
        "if self.modality != 'image':",
        'text = index_modality(index) == "text"',
        'if "image" == kind:',
    ):
        assert BRANCH.search(line), line
    assert not BRANCH.search("views = views_of(self.modality)")


def test_every_engine_modality_has_its_views() -> None:
    assert set(DESKTOP_MODALITIES) == set(MODALITIES)
    for name, views in DESKTOP_MODALITIES.items():
        assert views.name == name
        assert views.modality is MODALITIES[name]
    assert (IMAGE_VIEWS.modality, TEXT_VIEWS.modality) == (IMAGE, TEXT)


def test_views_of_names_objects_and_nothing() -> None:
    assert views_of("text") is TEXT_VIEWS
    assert views_of("image") is IMAGE_VIEWS
    assert views_of(SimpleNamespace(modality="text")) is TEXT_VIEWS
    # Before a run is chosen (""), the pages show the image views, as they always did.
    assert views_of("") is IMAGE_VIEWS
    assert views_of(None) is IMAGE_VIEWS
    assert (TEXT_VIEWS.text_views, IMAGE_VIEWS.text_views) == (True, False)


def test_index_views_and_the_reads_column() -> None:
    from engine import TextIndex

    text_index = TextIndex.__new__(TextIndex)
    assert index_views(text_index) is TEXT_VIEWS
    assert index_views(SimpleNamespace(samples=())) is IMAGE_VIEWS
    entry = SimpleNamespace(modality="image", preprocess=SimpleNamespace(input_size=224))
    assert views_of(entry).reads(entry) == "224 px"
    assert TEXT_VIEWS.reads(SimpleNamespace(modality="text")) == "text"
