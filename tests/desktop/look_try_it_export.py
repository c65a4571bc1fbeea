"""Not a test: render the Try-it widget and the Export dialog on tiny trained runs and save PNGs.

QT_QPA_PLATFORM=offscreen python tests/desktop/look_try_it_export.py OUT_DIR [--dark]

Trains a 3-class shapes run and a 3-class LoRA text run (seconds each, random-init models, so
the probabilities are near-uniform: this is for looking at the layout, not the model).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

TEXT = (
    "Hello, my parcel still has not arrived and the courier tracking page shows an error "
    "again. Can you check the shipping status please?"
)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    dark = "--dark" in sys.argv
    app = QApplication(sys.argv[:1])
    from desktop.theme import apply_app_style, apply_dark_palette

    apply_app_style(app)
    if dark:
        apply_dark_palette(app)
    tmp = Path(tempfile.mkdtemp(prefix="refit-look-"))
    os.environ["REFIT_HOME"] = str(tmp / "home")
    from trained_runs import train_image_run, train_text_run

    image_run = train_image_run(tmp / "img", classes=("circle", "square", "triangle"))
    text_run = train_text_run(tmp / "txt", classes=3)
    suffix = "-dark" if dark else ""

    def pump(seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until()):
            app.processEvents()
            time.sleep(0.02)
        app.processEvents()

    def shot(widget: QWidget, name: str) -> None:
        pump(0.2)
        path = out / f"{name}{suffix}.png"
        widget.grab().save(str(path))
        print("saved", path)

    from desktop.context import AppContext, AppSignals
    from desktop.state import ConfigState
    from desktop.worker import WorkerPool

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    ctx = AppContext(ConfigState(), WorkerPool(), settings, AppSignals(), tmp / "ws")
    try_it(ctx, image_run, text_run, tmp, pump, shot)
    export(ctx, image_run, text_run, tmp, pump, shot)
    ctx.pool.stop_all()
    return 0


def try_it(ctx, image_run: Path, text_run: Path, tmp: Path, pump, shot) -> None:
    from synthetic import draw_shape

    from desktop.results.try_it import TryItWidget

    widget = TryItWidget(ctx)
    widget.resize(900, 520)
    widget.show()
    widget.set_run(image_run)
    pump(60, lambda: widget.facts is not None)
    shot(widget, "try-image-empty")
    picture = tmp / "photo.png"
    draw_shape("triangle", random.Random(3), 200).save(picture)
    widget.try_image(str(picture))
    pump(60, lambda: not widget.busy)
    shot(widget, "try-image")
    widget.image_panel.heatmap_box.setChecked(True)
    pump(60, lambda: not widget.busy)
    shot(widget, "try-image-heatmap")
    notes = tmp / "notes.txt"
    notes.write_text("not a picture")
    widget.try_image(str(notes))
    pump(60, lambda: not widget.busy)
    shot(widget, "try-image-bad-file")
    widget.set_run(text_run)
    pump(60, lambda: widget.facts is not None)
    widget.classify_text(TEXT)
    pump(60, lambda: not widget.busy)
    shot(widget, "try-text")
    widget.text_panel.influence_box.setChecked(True)
    pump(60, lambda: not widget.busy)
    shot(widget, "try-text-influence")


def export(ctx, image_run: Path, text_run: Path, tmp: Path, pump, shot) -> None:
    from desktop.results.export_dialog import ExportDialog

    dialog = ExportDialog(image_run, pool=ctx.pool)
    dialog.show()
    pump(30, lambda: dialog.facts is not None)
    shot(dialog, "export-image")
    dialog.folder_edit.setText(str(tmp / "exported"))
    dialog.set_formats(["safetensors", "torchscript", "onnx"])
    dialog.start_export()
    pump(0.3)
    shot(dialog, "export-running")
    pump(300, lambda: not dialog.busy)
    shot(dialog, "export-done")
    dialog.close()
    lora = ExportDialog(text_run, pool=ctx.pool)
    lora.show()
    pump(30, lambda: lora.facts is not None)
    lora.folder_edit.setText(str(tmp / "text-export"))
    lora.set_formats(["hf"])
    lora.start_export()
    pump(300, lambda: not lora.busy)
    shot(lora, "export-lora-text")
    dataset = Path(ctx.workspace).parent / "img" / "shapes"
    lora.close()
    refused = ExportDialog(image_run, pool=ctx.pool)
    refused.show()
    pump(30, lambda: refused.facts is not None)
    refused.folder_edit.setText(str(dataset / "export"))
    refused.start_export()
    pump(60, lambda: not refused.busy)
    shot(refused, "export-refused")


if __name__ == "__main__":
    sys.exit(main())
