"""Refit Studio's engine: datasets, backbones, training and run folders. Never imports Qt.

The names in ``__all__`` are the engine's public API, the one the desktop uses
(``from engine import RunConfig, train``; tests/test_architecture.py holds it to that). Each is
imported from its module on first use (PEP 562), so ``import engine`` stays cheap: no torch, no
numpy, nothing of the engine until a name is asked for; a name costs what its module costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.lazy import lazy_getattr

__version__ = "0.1.0"

if TYPE_CHECKING:
    from engine.advice.chosen import CHOSEN_FIELDS
    from engine.advice.lr_find_config import find_learning_rate
    from engine.advice.standalone import advise
    from engine.cluster_job import (
        ClusterJob,
        ClusterJobError,
        fresh_folder,
        write_cluster_job,
    )
    from engine.config import (
        AdaptConfig,
        ConfigError,
        DataConfig,
        DicomFrames,
        DicomWindow,
        Method,
        RunConfig,
        field_help,
    )
    from engine.data import (
        DatasetError,
        ImageError,
        Problem,
        TextIndex,
        detect_modality,
        load_image,
        scan_folder,
        scan_text_source,
    )
    from engine.data.dicom import is_dicom, split_frame
    from engine.data.intensity import IntensityStretch, image_stats
    from engine.data.manifest_scan import scan_image_source
    from engine.data.safe_read import FileReadError, read_head
    from engine.data.text_read import BinaryFileError, Table, decode_text, read_table
    from engine.distributed import write_control
    from engine.edition import EDITIONS, bundle_dir, version_line
    from engine.evaluation import (
        Predictor,
        compare_runs,
        evaluate,
        evaluate_run,
        examples_in_cell,
        find_base_run,
        load_evaluation,
        load_predictions,
        operating_point,
        train_base,
    )
    from engine.evaluation.compare import Comparison
    from engine.evaluation.explain import (
        TokenInfluence,
        can_explain,
        image_heatmaps,
        overlay,
        token_influence,
    )
    from engine.evaluation.intervals import Interval, class_intervals
    from engine.evaluation.label_review import LabelIssue, LabelReview, ReviewError, review_labels
    from engine.evaluation.predictions import SplitPredictions, split_groups
    from engine.evaluation.report import (
        Calibration,
        ClassMetrics,
        Curve,
        Evaluation,
        OperatingPoint,
    )
    from engine.evaluation.reviewer import (
        ReviewerReport,
        checklist_html,
        confident_failures,
        reviewer_report,
        section_html,
    )
    from engine.evaluation.subgroups import (
        SubgroupError,
        SubgroupRow,
        SubgroupTable,
        run_subgroups,
        saved_subgroups,
        subgroup_attributes,
    )
    from engine.events import (
        AdviceGiven,
        EpochEnded,
        Event,
        LogMessage,
        RunEnded,
        RunStarted,
        RunStatus,
        StageProgressed,
        StepEnded,
        event_from_json,
    )
    from engine.export import MANIFEST, ExportConflict, export_run
    from engine.export.hf_format import hf_refusal
    from engine.export.manifest import MODEL_CARD
    from engine.files import write_atomic, write_bytes_atomic
    from engine.modalities import Modality, modality_of
    from engine.models import (
        ModelError,
        build_model,
        list_catalog,
        resolve_entry,
        resolve_frozen_groups,
        weights_status,
    )
    from engine.models.lora import default_lora_targets, lora_candidates, lora_param_count
    from engine.runs import (
        Curves,
        RunDetails,
        RunDir,
        RunFacts,
        RunInfo,
        Workspace,
        curves,
        default_workspace,
        is_resumable,
        run_details,
        run_facts,
    )
    from engine.samples import write_digits_dataset
    from engine.task import Cancelled, Progress, Task
    from engine.training.checkpoint_files import weights_file
    from engine.training.estimate import estimate_epoch_seconds
    from engine.training.memory import estimate_peak_memory
    from engine.training.provenance import error_sentence
    from engine.training.trainer import resume, train
    from engine.trust import code_requests, is_trusted, model_folder, trust_folder, untrust

# Each public name and the module it comes from. The modules are the ones the desktop imported
# before it went through this API, so a name costs no more (and no earlier) than it did.
_LAZY = {
    # progress, cancellation and the events of a long engine call
    "Cancelled": "engine.task",
    "Progress": "engine.task",
    "Task": "engine.task",
    "AdviceGiven": "engine.events",
    "EpochEnded": "engine.events",
    "Event": "engine.events",
    "LogMessage": "engine.events",
    "RunEnded": "engine.events",
    "RunStarted": "engine.events",
    "RunStatus": "engine.events",
    "StageProgressed": "engine.events",
    "StepEnded": "engine.events",
    # the run configuration and the help text of its fields
    "AdaptConfig": "engine.config",
    "ConfigError": "engine.config",
    "DataConfig": "engine.config",
    "DicomFrames": "engine.config",
    "DicomWindow": "engine.config",
    "Method": "engine.config",
    "RunConfig": "engine.config",
    "field_help": "engine.config",
    # data: scans, problems, files, images
    "DatasetError": "engine.data",
    "ImageError": "engine.data",
    "Problem": "engine.data",
    "TextIndex": "engine.data",
    "detect_modality": "engine.data",
    "Modality": "engine.modalities",
    "modality_of": "engine.modalities",
    "load_image": "engine.data",
    "scan_folder": "engine.data",
    "scan_image_source": "engine.data.manifest_scan",
    "is_dicom": "engine.data.dicom",
    "split_frame": "engine.data.dicom",
    "scan_text_source": "engine.data",
    "IntensityStretch": "engine.data.intensity",
    "image_stats": "engine.data.intensity",
    "FileReadError": "engine.data.safe_read",
    "read_head": "engine.data.safe_read",
    "BinaryFileError": "engine.data.text_read",
    "Table": "engine.data.text_read",
    "decode_text": "engine.data.text_read",
    "read_table": "engine.data.text_read",
    "write_digits_dataset": "engine.samples",
    # backbones, layers, LoRA, and trusting a model folder's code
    "ModelError": "engine.models",
    "build_model": "engine.models",
    "list_catalog": "engine.models",
    "resolve_entry": "engine.models",
    "resolve_frozen_groups": "engine.models",
    "weights_status": "engine.models",
    "default_lora_targets": "engine.models.lora",
    "lora_candidates": "engine.models.lora",
    "lora_param_count": "engine.models.lora",
    "code_requests": "engine.trust",
    "is_trusted": "engine.trust",
    "model_folder": "engine.trust",
    "trust_folder": "engine.trust",
    "untrust": "engine.trust",
    # recipe advice and the learning-rate finder
    "CHOSEN_FIELDS": "engine.advice.chosen",
    "advise": "engine.advice.standalone",
    "find_learning_rate": "engine.advice.lr_find_config",
    # training, its estimates, and the sentence of an error
    "train": "engine.training.trainer",
    "resume": "engine.training.trainer",
    "estimate_epoch_seconds": "engine.training.estimate",
    "estimate_peak_memory": "engine.training.memory",
    "error_sentence": "engine.training.provenance",
    "weights_file": "engine.training.checkpoint_files",
    # run folders and the workspace
    "Curves": "engine.runs",
    "RunDetails": "engine.runs",
    "RunDir": "engine.runs",
    "RunFacts": "engine.runs",
    "RunInfo": "engine.runs",
    "Workspace": "engine.runs",
    "curves": "engine.runs",
    "default_workspace": "engine.runs",
    "is_resumable": "engine.runs",
    "run_details": "engine.runs",
    "run_facts": "engine.runs",
    # evaluation, comparison, explanations
    "Predictor": "engine.evaluation",
    "compare_runs": "engine.evaluation",
    "evaluate": "engine.evaluation",
    "evaluate_run": "engine.evaluation",
    "examples_in_cell": "engine.evaluation",
    "find_base_run": "engine.evaluation",
    "load_evaluation": "engine.evaluation",
    "load_predictions": "engine.evaluation",
    "split_groups": "engine.evaluation.predictions",
    "operating_point": "engine.evaluation",
    "train_base": "engine.evaluation",
    "Comparison": "engine.evaluation.compare",
    "Interval": "engine.evaluation.intervals",
    "class_intervals": "engine.evaluation.intervals",
    "LabelIssue": "engine.evaluation.label_review",
    "LabelReview": "engine.evaluation.label_review",
    "ReviewError": "engine.evaluation.label_review",
    "review_labels": "engine.evaluation.label_review",
    "ReviewerReport": "engine.evaluation.reviewer",
    "checklist_html": "engine.evaluation.reviewer",
    "confident_failures": "engine.evaluation.reviewer",
    "reviewer_report": "engine.evaluation.reviewer",
    "section_html": "engine.evaluation.reviewer",
    "TokenInfluence": "engine.evaluation.explain",
    "can_explain": "engine.evaluation.explain",
    "image_heatmaps": "engine.evaluation.explain",
    "overlay": "engine.evaluation.explain",
    "token_influence": "engine.evaluation.explain",
    "SplitPredictions": "engine.evaluation.predictions",
    "Calibration": "engine.evaluation.report",
    "ClassMetrics": "engine.evaluation.report",
    "Curve": "engine.evaluation.report",
    "Evaluation": "engine.evaluation.report",
    "OperatingPoint": "engine.evaluation.report",
    "SubgroupError": "engine.evaluation.subgroups",
    "SubgroupRow": "engine.evaluation.subgroups",
    "SubgroupTable": "engine.evaluation.subgroups",
    "run_subgroups": "engine.evaluation.subgroups",
    "saved_subgroups": "engine.evaluation.subgroups",
    "subgroup_attributes": "engine.evaluation.subgroups",
    # export
    "MANIFEST": "engine.export",
    "ExportConflict": "engine.export",
    "export_run": "engine.export",
    "hf_refusal": "engine.export.hf_format",
    "MODEL_CARD": "engine.export.manifest",
    "ClusterJob": "engine.cluster_job",
    "ClusterJobError": "engine.cluster_job",
    "fresh_folder": "engine.cluster_job",
    "write_cluster_job": "engine.cluster_job",
    # the build: edition, version, bundled files; atomic writes
    "EDITIONS": "engine.edition",
    "bundle_dir": "engine.edition",
    "version_line": "engine.edition",
    "write_atomic": "engine.files",
    "write_control": "engine.distributed",
    "event_from_json": "engine.events",
    "write_bytes_atomic": "engine.files",
}


def current_edition() -> str:
    """This build's edition (``engine.edition.edition()``; the module's name takes the
    function's)."""
    from engine.edition import edition

    return edition()


__all__ = [
    "CHOSEN_FIELDS",
    "EDITIONS",
    "MANIFEST",
    "MODEL_CARD",
    "AdaptConfig",
    "AdviceGiven",
    "BinaryFileError",
    "Calibration",
    "Cancelled",
    "ClassMetrics",
    "ClusterJob",
    "ClusterJobError",
    "Comparison",
    "ConfigError",
    "Curve",
    "Curves",
    "DataConfig",
    "DatasetError",
    "DicomFrames",
    "DicomWindow",
    "EpochEnded",
    "Evaluation",
    "Event",
    "ExportConflict",
    "FileReadError",
    "ImageError",
    "IntensityStretch",
    "Interval",
    "LabelIssue",
    "LabelReview",
    "LogMessage",
    "Method",
    "Modality",
    "ModelError",
    "OperatingPoint",
    "Predictor",
    "Problem",
    "Progress",
    "ReviewError",
    "ReviewerReport",
    "RunConfig",
    "RunDetails",
    "RunDir",
    "RunEnded",
    "RunFacts",
    "RunInfo",
    "RunStarted",
    "RunStatus",
    "SplitPredictions",
    "StageProgressed",
    "StepEnded",
    "SubgroupError",
    "SubgroupRow",
    "SubgroupTable",
    "Table",
    "Task",
    "TextIndex",
    "TokenInfluence",
    "Workspace",
    "advise",
    "build_model",
    "bundle_dir",
    "can_explain",
    "checklist_html",
    "class_intervals",
    "code_requests",
    "compare_runs",
    "confident_failures",
    "current_edition",
    "curves",
    "decode_text",
    "default_lora_targets",
    "default_workspace",
    "detect_modality",
    "error_sentence",
    "estimate_epoch_seconds",
    "estimate_peak_memory",
    "evaluate",
    "evaluate_run",
    "event_from_json",
    "examples_in_cell",
    "export_run",
    "field_help",
    "find_base_run",
    "find_learning_rate",
    "fresh_folder",
    "hf_refusal",
    "image_heatmaps",
    "image_stats",
    "is_dicom",
    "is_resumable",
    "is_trusted",
    "list_catalog",
    "load_evaluation",
    "load_image",
    "load_predictions",
    "lora_candidates",
    "lora_param_count",
    "modality_of",
    "model_folder",
    "operating_point",
    "overlay",
    "read_head",
    "read_table",
    "resolve_entry",
    "resolve_frozen_groups",
    "resume",
    "review_labels",
    "reviewer_report",
    "run_details",
    "run_facts",
    "run_subgroups",
    "saved_subgroups",
    "scan_folder",
    "scan_image_source",
    "scan_text_source",
    "section_html",
    "split_frame",
    "split_groups",
    "subgroup_attributes",
    "token_influence",
    "train",
    "train_base",
    "trust_folder",
    "untrust",
    "version_line",
    "weights_file",
    "weights_status",
    "write_atomic",
    "write_bytes_atomic",
    "write_cluster_job",
    "write_control",
    "write_digits_dataset",
]

__getattr__ = lazy_getattr(__name__, _LAZY)
