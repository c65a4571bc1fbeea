"""export_run: a trained run's checkpoint out of the app as files other programs can use."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.export.checks import CheckBatch, check_batch, compare, softmax
from engine.export.manifest import (
    BACKBONE_DIR,
    MANIFEST,
    ONNX_FILE,
    SAFETENSORS_FILE,
    TORCHSCRIPT_FILE,
    ExportError,
    ExportFormat,
    ExportResult,
    build_manifest,
    parse_formats,
)
from engine.export.target import commit, export_names, open_staging, plan_target, staged_path
from engine.files import write_atomic, write_json_atomic
from engine.runs import RunDir
from engine.safe_read import kind_of
from engine.task import Task, as_task

_RUN_OWN = ("checkpoints", "evaluation")  # the run's folders; its export subfolder is fine

Say = Callable[[str], None]  # a step's sentence; raises Cancelled when the task is


@dataclass
class _Job:
    run: RunDir
    out: Path
    predictor: Any  # engine.evaluation.Predictor: the run's own model, the reference
    model: Any  # the Classifier that is exported (adapters merged)
    batch: CheckBatch
    manifest: dict[str, Any]
    say: Say


def export_run(
    run: RunDir,
    formats: Sequence[ExportFormat | str],
    out: Path,
    *,
    checkpoint: str = "best",
    task: Task | None = None,
    overwrite: bool = False,
) -> list[ExportResult]:
    """Export a run's checkpoint into ``out`` in each format, checking each against PyTorch.

    ``out`` always gets refit_model.json (classes, preprocessing, config, the files written) and
    MODEL_CARD.md; a LoRA run is exported with its adapters merged into the weights (the hf
    format also keeps the adapter). "all" means every format that applies to the run.

    ``out`` must be new or empty, or hold an earlier export (only the files it listed are
    replaced); any other folder needs ``overwrite`` (ExportConflict otherwise), and even then
    only the names the export writes are replaced. Everything is written into a staging folder
    and moved into place at the end: a failed or cancelled export (each step is said with
    ``task.say`` after a ``task.check_cancelled``, which raises Cancelled) leaves ``out`` as it
    was. Raises ExportError (one sentence) for a format that does not apply, a folder inside the
    dataset or the run's own files, or an export that does not reproduce the run.
    """
    from engine.evaluation.predict import Predictor
    from engine.export.hf_format import hf_refusal
    from engine.models import resolve_entry

    task = as_task(task)

    def say(message: str) -> None:
        task.check_cancelled()
        task.say(message)

    names = [str(f) for f in formats]
    wanted = parse_formats(names)
    if not wanted:
        raise ExportError("Choose at least one export format: safetensors, torchscript, onnx, hf.")
    out = Path(out).expanduser().resolve()
    config = run.intact_config()  # a damaged run file stops the export before anything is written
    protected = _refuse_run_or_dataset_folder(run, out, config)
    entry = resolve_entry(config.model.backbone)
    refusal = hf_refusal(entry)
    if refusal and ExportFormat.HF in wanted:
        if "all" not in (n.strip().lower() for n in names):
            raise ExportError(refusal)
        wanted.remove(ExportFormat.HF)  # "all": every format that applies
    writes = export_names(wanted, hf_backbone=not hf_refusal(entry))
    target = plan_target(out, writes, protected=protected, overwrite=overwrite)
    say(f"Loading the {checkpoint} checkpoint of {run.run_id}")
    predictor = Predictor(run, checkpoint=checkpoint, device="cpu")
    staging = open_staging(target)
    try:
        results = _write_all(run, staging, predictor, config, wanted, say, task)
        commit(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [_moved(r, staging, out) for r in results]


def _write_all(
    run: RunDir,
    staging: Path,
    predictor: Any,
    config: Any,
    wanted: list[ExportFormat],
    say: Say,
    task: Task,
) -> list[ExportResult]:
    """Every format, the model card and (last) the complete refit_model.json, into staging."""
    from engine.export.card import write_model_card

    job = _prepare(run, staging, predictor, config, say)
    results = [_EXPORTERS[fmt](job) for fmt in wanted]
    say("Writing the model card")
    write_model_card(run, staging, checkpoint=job.manifest["checkpoint"], task=task)
    job.manifest["formats"] = [str(fmt) for fmt in wanted]
    job.manifest["files"] = sorted(
        {p.name for p in staging.iterdir() if not p.name.startswith(".")} | {MANIFEST}
    )
    write_json_atomic(staging / MANIFEST, job.manifest)
    return results


def _moved(result: ExportResult, staging: Path, out: Path) -> ExportResult:
    files = tuple(staged_path(p, staging, out) for p in result.files)
    return dataclasses.replace(result, files=files)


def available_formats(run: RunDir) -> list[ExportFormat]:
    """The formats that apply to a run: hf only for Hugging Face transformers backbones."""
    from engine.export.hf_format import hf_refusal
    from engine.models import resolve_entry

    refused = hf_refusal(resolve_entry(run.config().model.backbone))
    return [f for f in ExportFormat if not (f is ExportFormat.HF and refused)]


def _prepare(run: RunDir, out: Path, predictor: Any, config: Any, say: Say) -> _Job:
    from engine.models.lora import is_lora, merged_copy
    from engine.training.inputs import RunData

    lora = is_lora(predictor.model)
    model = merged_copy(predictor.model).eval() if lora else predictor.model
    data = RunData.read(run)
    val = data.val if data is not None else ()
    say("Preparing validation examples for the checks")
    batch = check_batch(predictor, val)
    hf_backbone = _is_hf(model)
    manifest = build_manifest(
        run_id=run.run_id,
        checkpoint=predictor.checkpoint.stem,
        classes=predictor.classes,
        config=config.to_dict(),
        model=model,
        max_length=getattr(predictor, "max_length", None),
        lora_merged=lora,
        hf_backbone=hf_backbone,
    )
    manifest["formats"] = []  # filled in when every format has been written and checked
    write_json_atomic(out / MANIFEST, manifest)
    if hf_backbone:
        from engine.export.hf_format import save_backbone_files

        save_backbone_files(model, out / BACKBONE_DIR, weights=False)
    return _Job(run, out, predictor, model, batch, manifest, say)


def _is_hf(model: Any) -> bool:
    inner = getattr(model.backbone, "model", None)
    return inner is not None and hasattr(inner, "save_pretrained")


def _refuse_run_or_dataset_folder(run: RunDir, out: Path, config: Any) -> list[Path]:
    """Refuse a folder inside the dataset or among the run's own files; returns the folders an
    export must never replace (the dataset, the run)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is {kind_of(out)}, not a folder; choose a folder to export into.")
    protected = [run.path.resolve()]
    roots = {str(config.data.path or ""), str(run.splits().get("root") or "")}
    for root in filter(None, roots):
        data = Path(root).expanduser().resolve()
        protected.append(data)
        if data.is_dir() and out.is_relative_to(data):
            raise ExportError(
                f"{out} is inside the dataset folder {data}, which Refit Studio never writes "
                "to; choose another export folder."
            )
    own = run.path.resolve()
    if out == own or any(out.is_relative_to(own / name) for name in _RUN_OWN):
        raise ExportError(
            f"{out} holds the run's own files, which an export must not replace; choose "
            f"another folder (the default is {own / 'export'})."
        )
    if (out / "config.json").is_file() and (out / "state.json").is_file():
        raise ExportError(
            f"{out} is the folder of a run, whose files an export must not replace; choose "
            "another export folder."
        )
    return protected


def _safetensors(job: _Job) -> ExportResult:
    from safetensors.torch import save_file

    from engine.export.runtimes import EngineRuntime

    job.say("Writing model.safetensors")
    state = {k: v.detach().cpu().clone().contiguous() for k, v in job.model.state_dict().items()}
    checked: list[tuple[float, str]] = []

    def write(tmp: Path) -> None:
        save_file(state, str(tmp), metadata={"format": "pt"})
        runtime = EngineRuntime(job.out, job.manifest, weights=tmp)
        probs = softmax(runtime.logits(job.batch.inputs))
        checked.append(compare(probs, job.batch, "Rebuilt from model.safetensors"))

    path = write_atomic(job.out / SAFETENSORS_FILE, write)
    diff, sentence = checked[0]
    files = [path, *_backbone_files(job)]
    return ExportResult(ExportFormat.SAFETENSORS, tuple(files), sentence, diff)


def _backbone_files(job: _Job) -> list[Path]:
    folder = job.out / BACKBONE_DIR
    if not job.manifest.get("backbone_folder") or not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _torchscript(job: _Job) -> ExportResult:
    from engine.export.traced import export_torchscript

    job.say("Tracing the model to TorchScript")
    path = job.out / TORCHSCRIPT_FILE
    diff, sentence = export_torchscript(job.model, job.batch, path)
    return ExportResult(ExportFormat.TORCHSCRIPT, (path, *_backbone_files(job)), sentence, diff)


def _onnx(job: _Job) -> ExportResult:
    from engine.export.traced import export_onnx

    job.say("Exporting to ONNX and checking it with onnxruntime (can take a minute)")
    path = job.out / ONNX_FILE
    diff, sentence, facts = export_onnx(job.model, job.batch, path)
    job.manifest["onnx"] = facts
    return ExportResult(ExportFormat.ONNX, (path, *_backbone_files(job)), sentence, diff)


def _hf(job: _Job) -> ExportResult:
    from engine.export.hf_format import export_hf

    job.say("Saving the Hugging Face folder and checking it")
    files, diff, sentence = export_hf(
        job.predictor.model,
        job.model,
        job.predictor.classes,
        job.batch,
        job.out,
        job.run.config(),
    )
    return ExportResult(ExportFormat.HF, tuple(files), sentence, diff)


_EXPORTERS: dict[ExportFormat, Callable[[_Job], ExportResult]] = {
    ExportFormat.SAFETENSORS: _safetensors,
    ExportFormat.TORCHSCRIPT: _torchscript,
    ExportFormat.ONNX: _onnx,
    ExportFormat.HF: _hf,
}
