"""`refit-studio [DIR]`: start the desktop app, with DIR loaded when given."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


def _ensure_streams() -> None:
    """A windowed (frozen) build has no stdout/stderr; libraries that print would crash."""
    if sys.stdout is None or sys.stderr is None:
        from engine import default_workspace

        log_dir = default_workspace() / "logs"
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            stream = open(log_dir / "refit-studio.log", "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        except OSError:  # a workspace that is a file or read-only: the Runs page says so
            stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        sys.stdout = sys.stdout or stream
        sys.stderr = sys.stderr or stream


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the desktop app."""
    multiprocessing.freeze_support()
    _ensure_streams()
    parser = argparse.ArgumentParser(prog="refit-studio", description="Refit Studio desktop app")
    parser.add_argument("folder", nargs="?", help="A labeled folder to open.")
    parser.add_argument(
        "--workspace",
        help="Folder holding runs (default: $REFIT_HOME or the per-user data folder).",
    )
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from engine import default_workspace

    QApplication.setOrganizationName("Refit Studio")
    QApplication.setApplicationName("Refit Studio")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    # Wayland's app id and X11's window class: docks match the window to refit-studio.desktop.
    app.setDesktopFileName("refit-studio")
    from desktop.gc_guard import GuiCollector

    GuiCollector(app).start()  # reference cycles are freed in this thread only (gc_guard.py)
    from PySide6.QtGui import QIcon

    from desktop.resources import resource_path
    from desktop.theme import apply_app_style

    app.setWindowIcon(QIcon(str(resource_path("icons", "refit-studio.svg"))))
    apply_app_style(app)
    if args.workspace:
        os.environ["REFIT_HOME"] = str(Path(args.workspace).expanduser())
    window = MainWindow(workspace=default_workspace())
    window.show()
    if args.folder:
        window.open_folder(args.folder)
    _close_on_signals(window)
    from engine import version_line

    print(
        f"{version_line()}. Runs are stored in {window.ctx.workspace}. Close the window or press "
        "Ctrl+C here to quit.",
        file=sys.stderr,
        flush=True,
    )
    code = app.exec()
    from desktop.worker import running_threads

    if running_threads():  # a job stuck inside one library call: neither wait nor crash on it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl+C in the terminal that started the app, or SIGTERM (a logout, `kill`), closes the
    window the way its close button does instead of killing the process mid-write. Python runs
    signal handlers only between bytecodes, so a timer wakes the interpreter now and then."""
    from PySide6.QtCore import QTimer

    def close(_signum: int, _frame: object) -> None:
        window.close_without_asking()

    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), close)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
