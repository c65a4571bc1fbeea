"""The kinds of data a run classifies, each behind one protocol (:class:`Modality`).

``modality_of("text")`` (or of anything with a ``modality`` attribute: a RunData, a catalog
entry, a Classifier, a Predictor) is the object the engine asks whatever differs between images
and texts: how to scan, which pipeline trains, how to predict, explain and export, and the words
the user reads. A new kind (DICOM) is a third module registered in :data:`MODALITIES`.
"""

from __future__ import annotations

from typing import Any

from engine.modalities.base import Modality
from engine.modalities.image import IMAGE, ImageModality
from engine.modalities.text import TEXT, TextModality

#: every modality by its stored name ("image", "text": the value in run folders and exports)
MODALITIES: dict[str, Modality] = {m.name: m for m in (IMAGE, TEXT)}


class UnknownModalityError(ValueError):
    """A modality name no module provides (a damaged or newer file)."""


def modality_of(name_or_thing: Any) -> Modality:
    """The Modality named ``name_or_thing`` ("image", "text"), or of an object's ``modality``
    attribute; a Modality is returned as is. Raises UnknownModalityError with one sentence."""
    if any(name_or_thing is m for m in MODALITIES.values()):
        return name_or_thing
    name = name_or_thing
    if not isinstance(name, str):
        name = getattr(name_or_thing, "modality", None)
    if isinstance(name, str) and name in MODALITIES:
        return MODALITIES[name]
    known = " or ".join(f"'{n}'" for n in MODALITIES)
    raise UnknownModalityError(
        f"Refit Studio does not know the modality {name!r}; it reads {known} data. The file "
        "that names it may come from a newer version of Refit Studio, or be damaged."
    )


__all__ = [
    "IMAGE",
    "MODALITIES",
    "TEXT",
    "ImageModality",
    "Modality",
    "TextModality",
    "UnknownModalityError",
    "modality_of",
]
