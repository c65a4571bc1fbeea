"""Not a test: show the Data page alone on a generated dataset and save screenshots.

xvfb-run -a -s "-screen 0 1400x900x24" python tests/desktop/look_data_page.py OUT_DIR [--dark]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw
from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QSettings, QThread
from PySide6.QtWidgets import QApplication, QMainWindow

from desktop.context import AppContext, AppSignals
from desktop.data.page import DataPage
from desktop.state import ConfigState
from desktop.theme import apply_dark_palette
from desktop.worker import WorkerPool

CLASSES = {"benign": 40, "malignant": 22, "normal tissue": 31, "artefact": 6}


def make_dataset(root: Path) -> Path:
    for c, (name, n) in enumerate(CLASSES.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            img = Image.new("RGB", (160, 120), (230 - 40 * c, 190 - 10 * (i % 7), 170 + 20 * c))
            draw = ImageDraw.Draw(img)
            r = 18 + (i * 7) % 30
            draw.ellipse((80 - r, 60 - r, 80 + r, 60 + r), fill=(120 - 20 * c, 40, 90 + 10 * i))
            img.save(folder / f"{name.replace(' ', '_')}_{i:03d}.png")
    (root / "benign" / "scan_17.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    (root / "normal tissue" / "README.txt").write_text("scanned 2024")
    Image.open(root / "benign" / "benign_000.png").save(root / "malignant" / "copy.png")
    (root / "only_one").mkdir()
    Image.new("RGB", (20, 20)).save(root / "only_one" / "x.png")
    return root


def wait(predicate, ms: int = 30000) -> None:
    deadline = QDeadlineTimer(ms)
    while not predicate() and not deadline.hasExpired():
        QCoreApplication.processEvents()
        QThread.msleep(20)


def settle(ms: int = 300) -> None:
    wait(lambda: False, ms)


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    dark = "--dark" in sys.argv
    app = QApplication(sys.argv[:1])
    if dark:
        apply_dark_palette(app)
    tmp = Path(tempfile.mkdtemp())
    ctx = AppContext(
        state=ConfigState(),
        pool=WorkerPool(),
        settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat),
        signals=AppSignals(),
        workspace=tmp,
    )
    window = QMainWindow()
    page = DataPage(ctx)
    window.setCentralWidget(page)
    window.resize(1280, 820)
    window.show()
    suffix = "-dark" if dark else ""
    settle()
    window.grab().save(str(out / f"empty{suffix}.png"))

    page.open_folder(str(make_dataset(tmp / "biopsies")))
    settle(50)
    window.grab().save(str(out / f"scanning{suffix}.png"))
    wait(lambda: page.index is not None and not ctx.pool.busy)
    model = page.grid.model
    settle()
    wait(lambda: all(model.is_ready(model.thumb(r).path) for r in range(min(24, model.rowCount()))))
    settle()
    window.grab().save(str(out / f"scanned{suffix}.png"))

    page.problem_list.setCurrentRow(1)
    page.problem_list.problem_activated.emit(page.problem_list.problem(1))
    settle(800)
    if page._preview is not None:
        page._preview.grab().save(str(out / f"preview{suffix}.png"))
        page._preview.close()

    page.grid.view.activated.emit(model.index(3))
    settle(800)
    page._preview.grab().save(str(out / f"preview-image{suffix}.png"))
    page._preview.close()

    split = tmp / "split"
    for name, n in (("train", 30), ("val", 8), ("test", 5)):
        for cls in ("benign", "malignant"):
            (split / name / cls).mkdir(parents=True)
            for i in range(n if cls == "benign" else n // 2):
                color = (i * 8 % 255, len(name) * 40, 100 if cls == "benign" else 200)
                Image.new("RGB", (40 + i, 30), color).save(split / name / cls / f"{i}.png")
    page.open_folder(str(split))
    wait(lambda: page.index is not None and not ctx.pool.busy)
    settle()
    window.grab().save(str(out / f"split{suffix}.png"))

    page.open_folder(str(tmp / "missing"))
    wait(lambda: not ctx.pool.busy)
    settle()
    window.grab().save(str(out / f"missing{suffix}.png"))
    model.loader.wait_for_done()
    ctx.pool.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
