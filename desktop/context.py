"""What every page shares: the config being edited, the worker threads, settings, workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

from desktop.state import ConfigState
from desktop.worker import WorkerPool


class AppSignals(QObject):
    """App-wide notifications between pages (kept here so pages never import each other)."""

    dataset_scanned = Signal(object)  # DatasetIndex or TextIndex of the current folder or file
    model_built = Signal(object)  # engine.models.Classifier summary for the layers page
    run_started = Signal(str)  # run folder
    run_finished = Signal(str)  # run folder
    status_message = Signal(str)  # a line for the status bar
    open_folder_requested = Signal(str)  # a page asks the window to open a dataset folder
    choose_folder_requested = Signal()  # a page asks for the Open Folder dialog
    choose_file_requested = Signal()  # a page asks for the Open Table File dialog
    backbone_mismatch = Signal(str)  # why the backbone does not fit the data; "" when it does
    sample_requested = Signal()  # a page asks for the sample dataset
    show_page_requested = Signal(str)  # a page asks to switch to another page, by title
    resume_requested = Signal(str)  # a stopped run's folder for the Train page to continue
    advice_given = Signal(object)  # AdviceGiven.advice of a Recommended run that just started


@dataclass
class AppContext:
    state: ConfigState
    pool: WorkerPool
    settings: QSettings
    signals: AppSignals
    workspace: Path
