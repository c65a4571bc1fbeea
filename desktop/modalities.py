"""The desktop's side of a modality: which views show its data. The one place in desktop/ that
names the modalities ("image", "text"); features ask it instead of comparing strings.

The words and facts (``noun``, ``heatmaps``, ``word_influence``, ``has_intensity``, ...) are the
engine's :class:`engine.Modality`, reached here as :attr:`DesktopModality.modality`. What this
registry adds is what only the GUI knows: whether a feature shows the data with its text views
(a text box, word tints, rows of a table) or its picture views (thumbnails, a drop zone,
heatmaps), and how the Model page's "Reads" column reads a backbone. A new modality (DICOM,
shown as pictures) is one more entry in :data:`DESKTOP_MODALITIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import Modality


@dataclass(frozen=True)
class DesktopModality:
    """What the desktop shows for one modality's data."""

    #: the stored name ("image", "text"): run folders, configs, RunFacts.modality
    name: str
    #: its examples are shown by the text views (Try it's text box, the text mistakes list,
    #: the data's text examples, the Train page's Text settings); else by the picture views
    text_views: bool
    #: the Model page's "Reads" cell of a catalog entry
    reads: Callable[[Any], str]

    @property
    def modality(self) -> Modality:
        """The engine's Modality: the words and facts of this kind of data (imported on first
        use: engine.modalities brings engine.data and numpy)."""
        from engine import modality_of

        return modality_of(self.name)


def _reads_pixels(entry: Any) -> str:
    return f"{entry.preprocess.input_size} px"


def _reads_text(entry: Any) -> str:
    return "text"


IMAGE_VIEWS = DesktopModality(name="image", text_views=False, reads=_reads_pixels)
TEXT_VIEWS = DesktopModality(name="text", text_views=True, reads=_reads_text)

DESKTOP_MODALITIES: dict[str, DesktopModality] = {m.name: m for m in (IMAGE_VIEWS, TEXT_VIEWS)}


def views_of(name_or_thing: Any) -> DesktopModality:
    """The desktop modality of a stored name, or of an object's ``modality`` attribute (a
    catalog entry, an index, RunFacts). Anything else (``""`` before a run is chosen) gets the
    image views, as the pages showed before they asked."""
    name = name_or_thing if isinstance(name_or_thing, str) else None
    if name is None:
        name = getattr(name_or_thing, "modality", None)
    return DESKTOP_MODALITIES.get(str(name), IMAGE_VIEWS)


def index_views(index: Any) -> DesktopModality:
    """The desktop modality of a scanned index: a TextIndex holds texts, others images."""
    from engine import TextIndex

    return TEXT_VIEWS if isinstance(index, TextIndex) else IMAGE_VIEWS
