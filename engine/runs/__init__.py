"""Run folders on disk: one reader and one writer for each file of a run, typed records of
state.json, summary.json, splits.json and metrics.jsonl, and the workspace's run list.

Every reader survives any bytes: a damaged file raises RunFileError, one sentence naming the
file, what is wrong and what to do; the run list marks such a run "damaged" instead of failing.
"""

from __future__ import annotations

from engine.runs.details import RunDetails, RunFacts, run_details, run_facts
from engine.runs.errors import CHOOSE, REMEDY, RunFileError, RunNotFoundError, WorkspaceError
from engine.runs.folder import RUNS_DIR, SMALL_FILE_BYTES, RunDir
from engine.runs.metrics import Curves, curves, epoch_record, step_record
from engine.runs.records import SCHEMA, RunSplits, RunState, RunSummary, SplitRow
from engine.runs.resumable import is_resumable
from engine.runs.workspace import RunInfo, Workspace, default_workspace, run_info

__all__ = [
    "CHOOSE",
    "REMEDY",
    "RUNS_DIR",
    "SCHEMA",
    "SMALL_FILE_BYTES",
    "Curves",
    "RunDetails",
    "RunDir",
    "RunFacts",
    "RunFileError",
    "RunInfo",
    "RunNotFoundError",
    "RunSplits",
    "RunState",
    "RunSummary",
    "SplitRow",
    "Workspace",
    "WorkspaceError",
    "curves",
    "default_workspace",
    "epoch_record",
    "is_resumable",
    "metrics",
    "run_details",
    "run_facts",
    "run_info",
    "step_record",
]
