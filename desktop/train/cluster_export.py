"""The "Export as cluster job…" dialog: nodes, GPUs per node, the run folder's place on the
cluster and the local folder to write; it writes config.json, launch.sh and job.sbatch into a new
subfolder there (engine.write_cluster_job), never over existing files."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine import RunConfig

if TYPE_CHECKING:
    from desktop.train.device_picker import Devices

INTRO = (
    "Writes these settings with <b>launch.sh</b> (torchrun with c10d rendezvous, run once per "
    "node) and <b>job.sbatch</b> (a SLURM template: <code>sbatch job.sbatch</code>). The data "
    "folder in config.json must exist on the cluster's nodes; edit it there if it lives "
    "elsewhere."
)


class ClusterJobDialog(QDialog):
    """Asks for the job's shape and where to write it; writes it on OK."""

    def __init__(self, config: RunConfig, devices: Devices, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("clusterJobDialog")
        self.setWindowTitle("Export as cluster job")
        self.config = config
        self.written: list[Path] = []
        intro = QLabel(INTRO)
        intro.setWordWrap(True)
        self.nodes = QSpinBox()
        self.nodes.setObjectName("nodesSpin")
        self.nodes.setRange(1, 4096)
        self.nodes.setToolTip("How many machines the job runs on.")
        self.gpus = QSpinBox()
        self.gpus.setObjectName("gpusPerNodeSpin")
        self.gpus.setRange(1, 64)
        self.gpus.setValue(max(1, len(devices.gpus)))
        self.gpus.setToolTip("Processes per machine: one per GPU.")
        self.workspace = QLineEdit("workspace")
        self.workspace.setObjectName("clusterWorkspaceEdit")
        self.workspace.setToolTip(
            "Where the run folder goes on the cluster; a relative path is taken from the job's "
            "folder. REFIT_WORKSPACE overrides it when the job runs."
        )
        self.folder = QLineEdit()
        self.folder.setObjectName("jobFolderEdit")
        self.folder.setPlaceholderText("A folder on the cluster's shared file system")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        where = QHBoxLayout()
        where.addWidget(self.folder, 1)
        where.addWidget(browse)
        form = QFormLayout()
        form.addRow("Nodes", self.nodes)
        form.addRow("GPUs per node", self.gpus)
        form.addRow("Run folder on the cluster", self.workspace)
        form.addRow("Write into", where)
        self.message = QLabel()
        self.message.setObjectName("clusterJobMessage")
        self.message.setWordWrap(True)
        self.message.setOpenExternalLinks(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
        )
        self.buttons.accepted.connect(self.write)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

    def write(self) -> bool:
        """Write the job into a new subfolder of the chosen folder; say where, or why not."""
        from engine import ClusterJob, ClusterJobError, fresh_folder, write_cluster_job

        parent = self.folder.text().strip()
        if not parent:
            self._say("Choose the folder to write the job into.", error=True)
            return False
        job = ClusterJob(
            nodes=self.nodes.value(),
            gpus_per_node=self.gpus.value(),
            workspace=self.workspace.text().strip(),
        )
        try:
            target = fresh_folder(parent)
            self.written = write_cluster_job(self.config, target, job)
        except (ClusterJobError, OSError) as exc:
            self._say(str(exc), error=True)
            return False
        link = QUrl.fromLocalFile(str(target)).toString()
        self._say(
            f'Wrote config.json, launch.sh and job.sbatch to <a href="{link}">'
            f"{html.escape(str(target))}</a>. On the cluster: <code>sbatch job.sbatch</code>."
        )
        return True

    def _say(self, text: str, *, error: bool = False) -> None:
        from desktop.widgets.palette_colors import level_color

        self.message.setText(html.escape(text) if error else text)
        color = level_color("error", self.palette())
        self.message.setStyleSheet(f"color: {color};" if error else "")

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the cluster job into")
        if folder:
            self.folder.setText(folder)
