"""Open the app on a virtual screen, train briefly on a generated dataset, screenshot each page.

Run:  xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshots.py [--out docs/screenshots]
Add --dark for a dark palette. Uses a private workspace; never touches your real runs.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_dataset(root: Path, per_class: int = 40) -> Path:
    """Two visually distinct classes of small photos-like images."""
    rng = random.Random(0)
    for cls in ("healthy", "lesion"):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = Image.new("RGB", (160, 120), tuple(rng.randint(170, 230) for _ in range(3)))
            d = ImageDraw.Draw(img)
            for _ in range(6):
                x, y, r = rng.randint(0, 160), rng.randint(0, 120), rng.randint(4, 14)
                tone = rng.randint(120, 170)
                d.ellipse([x - r, y - r, x + r, y + r], fill=(tone, tone - 20, tone - 30))
            if cls == "lesion":
                x, y, r = rng.randint(40, 120), rng.randint(30, 90), rng.randint(18, 30)
                d.ellipse([x - r, y - r, x + r, y + r], fill=(90, 40, 30))
            img.save(folder / f"{cls}_{i:03d}.jpg", quality=90)
    (root / "lesion" / "scan_notes.txt").write_text("not an image")
    (root / "healthy" / "cut_off.jpg").write_bytes(
        (root / "healthy" / "healthy_000.jpg").read_bytes()[:900]
    )
    return root


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="refit-shots-"))
    os.environ["REFIT_HOME"] = str(tmp / "workspace")
    data = make_dataset(tmp / "skin-photos")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from desktop.theme import apply_app_style

    apply_app_style(app)
    if args.dark:
        from desktop.theme import apply_dark_palette

        apply_dark_palette(app)
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(workspace=tmp / "workspace", settings=settings)
    window.resize(1360, 860)
    window.show()
    suffix = "-dark" if args.dark else ""

    def pump(seconds: float, until=None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until is not None and until():
                return
            time.sleep(0.02)

    def shot(name: str) -> None:
        pump(0.5)
        path = out / f"{name}{suffix}.png"
        window.grab().save(str(path))
        print("saved", path)

    window.open_folder(str(data))
    pump(60, until=lambda: not window.ctx.pool.busy)
    pump(3)
    shot("1-data")
    window.show_page("Model")
    pump(60, until=lambda: window.model_page.table.rowCount() > 0)
    shot("2-model")
    window.show_page("Layers")
    pump(60, until=lambda: window.layers_page.model is not None)
    pump(30, until=lambda: "About" in window.layers_page.estimate_label.text())
    shot("3-layers")
    window.ctx.state.update("schedule", epochs=args.epochs)
    window.ctx.state.update("data", num_workers=0)
    window.show_page("Train")
    window.train_page.start()
    pump(600, until=lambda: not window.train_page.is_running)
    pump(2)
    shot("4-train")
    window.show_page("Runs")
    window.runs_page.refresh()
    pump(3)
    shot("5-runs")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
