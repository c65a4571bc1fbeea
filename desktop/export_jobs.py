"""Worker jobs of the Export dialog: what a run can be exported to, and the export itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.events import Event, LogMessage

if TYPE_CHECKING:
    from engine.config import RunConfig

Job = Callable[[Callable[[Event], None], Any], Any]


@dataclass(frozen=True)
class ExportFacts:
    """What the dialog shows before exporting: a view of the run's settings (the engine's
    RunConfig record) and whether the Hugging Face format applies."""

    run_id: str
    config: RunConfig
    modality: str  # "image" or "text"
    hf_reason: str  # "" when the Hugging Face format applies, else one sentence why not

    @property
    def backbone(self) -> str:
        return self.config.model.backbone

    @property
    def lora(self) -> bool:
        from engine.config import Method

        return self.config.adapt.method == Method.LORA


@dataclass(frozen=True)
class ExportOutcome:
    """A finished export: where, what each format wrote and checked, the model card."""

    out: Path
    results: list[Any]  # engine.export.ExportResult
    card: Path
    manifest: Path
    cancelled: bool = False
    #: the folder holds files no earlier export wrote: nothing was written, the user is asked
    conflict: Any = None  # engine.export.ExportConflict


class _ExportCancelled(Exception):
    """Raised from the progress callback: export_run stops between two steps."""


def facts_job(run_dir: Path) -> Job:
    """A worker job reading the run's config and whether the hf format applies."""

    def job(_on_event: Callable[[Event], None], _control: Any) -> ExportFacts:
        from engine.export.hf_format import hf_refusal
        from engine.models import resolve_entry
        from engine.runs import RunDir
        from engine.training.provenance import error_sentence

        config = RunDir(run_dir).config()
        modality = "image"
        try:
            entry = resolve_entry(config.model.backbone)
            modality, reason = entry.modality, hf_refusal(entry)
        except Exception as exc:  # an unplaceable backbone: the export itself will say more
            reason = error_sentence(exc)
        return ExportFacts(run_id=run_dir.name, config=config, modality=modality, hf_reason=reason)

    return job


def export_job(run_dir: Path, formats: list[str], out: Path, *, overwrite: bool = False) -> Job:
    """A worker job running export_run; progress lines come as LogMessage events, and a cancel
    stops it at the next step (nothing is written then). A folder holding files no earlier
    export wrote gives an outcome with ``conflict`` unless ``overwrite`` (the user said yes)."""

    def job(on_event: Callable[[Event], None], control: Any) -> ExportOutcome:
        from engine.export import MANIFEST, ExportConflict, export_run
        from engine.export.manifest import MODEL_CARD
        from engine.runs import RunDir

        def say(message: str) -> None:
            if control.cancelled:
                raise _ExportCancelled
            on_event(LogMessage(level="info", text=message))

        target = Path(out).expanduser().resolve()
        card, manifest = target / MODEL_CARD, target / MANIFEST
        try:
            results = export_run(
                RunDir(run_dir), formats, target, progress=say, overwrite=overwrite
            )
        except _ExportCancelled:
            return ExportOutcome(target, [], card, manifest, cancelled=True)
        except ExportConflict as conflict:
            return ExportOutcome(target, [], card, manifest, conflict=conflict)
        return ExportOutcome(target, list(results), target / MODEL_CARD, target / MANIFEST)

    return job
