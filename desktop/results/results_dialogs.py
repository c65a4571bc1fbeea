"""The Results page's questions: unlock the test split? where to save the report?"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

HTML_FILTER = "HTML report (*.html)"
PDF_FILTER = "PDF report (*.pdf)"


def confirm_test_split(parent: QWidget, run_label: str, count: int) -> bool:
    """Ask before the locked test split is opened; True when the user goes ahead."""
    box = QMessageBox(parent)
    box.setObjectName("testSplitConfirmation")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Evaluate on the locked test split")
    box.setText(f"Evaluate {run_label} on its {count} locked test examples?")
    box.setInformativeText(
        "The test split was kept out of training and out of every choice you made, so it can "
        "give one honest estimate of how the model will do on new data. Do this once, at the "
        "end, with the model you have chosen.\n\nIf you change settings or pick another run "
        "because of the test results, the test score is no longer honest: use the validation "
        "results to compare and tune."
    )
    go = box.addButton("Evaluate on test split", QMessageBox.ButtonRole.AcceptRole)
    go.setObjectName("confirmTestButton")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.exec()
    return box.clickedButton() is go


def save_report_as(
    parent: QWidget, settings: QSettings, name: str, write: Callable[[Path], Path]
) -> Path | None:
    """Ask where, then ``write(path)``; a failure is told in a message box. The path written,
    or None (cancelled or failed)."""
    target = ask_report_path(parent, settings, name)
    if target is None:
        return None
    try:
        return write(target)
    except OSError as exc:
        QMessageBox.warning(
            parent, "Save report", f"Could not write {target}: {exc.strerror or exc}."
        )
        return None


def ask_report_path(parent: QWidget, settings: QSettings, name: str) -> Path | None:
    """Where to save the report: the file dialog's filter picks HTML or PDF (the suffix follows
    the filter when the name has none). None when the user cancels."""
    start = Path(str(settings.value("report_folder", str(Path.home()))))
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Save report", str(start / name), f"{HTML_FILTER};;{PDF_FILTER}"
    )
    if not path:
        return None
    target = Path(path)
    if chosen == PDF_FILTER and target.suffix.lower() != ".pdf":
        target = target.with_suffix(".pdf")
    elif target.suffix.lower() not in (".pdf", ".html", ".htm"):
        target = target.with_suffix(".html")
    settings.setValue("report_folder", str(target.parent))
    return target
