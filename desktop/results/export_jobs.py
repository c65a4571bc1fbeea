"""Worker jobs of the Export dialog: what a run can be exported to, and the export itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine import RunConfig, Task

TaskJob = Callable[["Task"], Any]


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
        from engine import Method

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


def facts_job(run_dir: Path) -> TaskJob:
    """A worker job reading the run's config and whether the hf format applies."""

    def job(_task: Task) -> ExportFacts:
        from engine import RunDir, error_sentence, hf_refusal, resolve_entry

        config = RunDir(run_dir).config()
        modality = "image"
        try:
            entry = resolve_entry(config.model.backbone)
            modality, reason = entry.modality, hf_refusal(entry)
        except Exception as exc:  # an unplaceable backbone: the export itself will say more
            reason = error_sentence(exc)
        return ExportFacts(run_id=run_dir.name, config=config, modality=modality, hf_reason=reason)

    return job


def export_job(run_dir: Path, formats: list[str], out: Path, *, overwrite: bool = False) -> TaskJob:
    """A worker job running export_run; its steps are said on the task, and a cancel stops it
    at the next step (nothing is written then; the outcome says ``cancelled``). A folder
    holding files no earlier export wrote gives an outcome with ``conflict`` unless
    ``overwrite`` (the user said yes)."""

    def job(task: Task) -> ExportOutcome:
        from engine import MANIFEST, MODEL_CARD, Cancelled, ExportConflict, RunDir, export_run

        target = Path(out).expanduser().resolve()
        card, manifest = target / MODEL_CARD, target / MANIFEST
        try:
            results = export_run(RunDir(run_dir), formats, target, task=task, overwrite=overwrite)
        except Cancelled:
            return ExportOutcome(target, [], card, manifest, cancelled=True)
        except ExportConflict as conflict:
            return ExportOutcome(target, [], card, manifest, conflict=conflict)
        return ExportOutcome(target, list(results), target / MODEL_CARD, target / MANIFEST)

    return job
