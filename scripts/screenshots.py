"""Open the app on a virtual screen, train briefly on a generated dataset, screenshot each page.

Run:  xvfb-run -a -s "-screen 0 1400x900x24" python scripts/screenshots.py [--out docs/screenshots]
Add --dark for a dark palette. Uses a private workspace; never touches your real runs.

After the image pages (1-5) comes a text demo on a generated CSV of support tickets: the Data
page with its column picker (6-data-text), the Model page with text backbones (7-model-text),
the Layers page in LoRA mode (8-layers-lora) and a short LoRA run (9-train-text). --text-only
skips the image pages; --images-only skips the text demo.

The Results page closes each part: the image run evaluated (10-results-image: numbers, curves,
confusion matrix, threshold), its mistakes with Grad-CAM heatmaps (11-results-gallery), and a
two-class text run (a linear probe on support tickets with a few mislabeled rows) with the
influential words of its mistakes highlighted (12-results-text).

15-layers-advice: the Layers page with Recommended after "Analyse my data" on a generated
out-of-domain scans folder (three grey levels, benchmarks/make_scans.py): accuracy per depth with
the freeze point, the fine-tuning trials and the reason. --advice-only makes just that one.

16-data-dicom: the Data page on generated CT-like DICOM slices of several patients, grouped by
DICOM patient, in the lung window (thumbnails and the window's preview). --dicom-only makes just
that one.
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


TICKETS = {
    "billing": [
        "I was charged twice for my {plan} plan this month",
        "Please refund the {amount} I paid by mistake",
        "Why does my invoice show {amount} instead of the usual price",
        "My card was declined but the money left my account",
        "Can I get a receipt for the {plan} subscription",
        "The discount code {code} was not applied to my bill",
    ],
    "login": [
        "I cannot sign in since the update on {day}",
        "The password reset email never arrives",
        "My account is locked after {n} wrong attempts",
        "Two-factor code is rejected every time",
        "The app logs me out every few minutes",
        "I changed my email and now I cannot log in",
    ],
    "shipping": [
        "My parcel was supposed to arrive on {day} and it did not",
        "The tracking number {code} shows nothing",
        "The box arrived damaged and the {item} is broken",
        "Can you ship to a different address than on the order",
        "Only {n} of my items were delivered",
        "The courier left my {item} at the wrong door",
    ],
}


OPENERS = ("", "", "Hi, ", "Hello, ", "Urgent: ", "Quick question: ", "Dear support, ")


def make_tickets_csv(
    path: Path,
    per_class: int = 24,
    *,
    categories: tuple[str, ...] = tuple(TICKETS),
    mislabeled: float = 0.0,
) -> Path:
    """Support tickets with a message, a category and a priority; two rows have problems.
    ``mislabeled`` of the rows get another category, as in real, hand-labeled data (and an
    opener such as "Hi, ", so that fewer rows repeat one another)."""
    import csv

    rng = random.Random(1)
    words = {
        "plan": ["basic", "family", "pro"],
        "amount": ["$12.99", "$40", "€25"],
        "code": ["SPRING24", "ZX-4471", "RT99812"],
        "day": ["Monday", "Friday", "the 3rd"],
        "n": ["3", "5", "two"],
        "item": ["lamp", "phone case", "kettle"],
    }
    rows = []
    for category in categories:
        for _ in range(per_class):
            text = rng.choice(TICKETS[category]).format(
                **{k: rng.choice(v) for k, v in words.items()}
            )
            text += rng.choice(["", ".", "!", " thanks", " asap"])
            given = category
            if mislabeled:  # no extra random draws otherwise: the default table stays the same
                text = rng.choice(OPENERS) + text
                if rng.random() < mislabeled:
                    given = rng.choice([c for c in categories if c != category])
            rows.append([text, given])
    rng.shuffle(rows)
    rows.insert(5, ["Where is my order", ""])  # no label
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "message", "category", "priority"])
        for i, (text, category) in enumerate(rows):
            writer.writerow([f"T{1000 + i}", text, category, rng.choice(["low", "normal", "high"])])
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--text-epochs", type=int, default=2)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--text-only", action="store_true")
    only.add_argument("--images-only", action="store_true")
    only.add_argument("--advice-only", action="store_true")
    only.add_argument("--dicom-only", action="store_true")
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

    def shot(name: str, widget=None) -> None:
        pump(0.5)
        path = out / f"{name}{suffix}.png"
        (widget or window).grab().save(str(path))
        print("saved", path)

    def train(epochs: int) -> None:
        window.ctx.state.update("schedule", epochs=epochs)
        window.ctx.state.update("data", num_workers=0)
        window.show_page("Train")
        window.train_page.start()
        pump(600, until=lambda: not window.train_page.is_running)
        pump(2)

    rest = not args.dicom_only
    if rest and not args.text_only and not args.advice_only:
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
        train(args.epochs)
        shot("4-train")
        window.show_page("Runs")
        window.runs_page.refresh()
        pump(3)
        shot("5-runs")
        results_image_demo(window, pump, shot)
    if rest and not args.text_only:
        advice_demo(window, tmp / "scans", pump, shot)
    if rest and not args.images_only and not args.advice_only:
        text_demo(window, make_tickets_csv(tmp / "tickets.csv"), pump, shot, train, args)
        two_class = make_tickets_csv(
            tmp / "tickets-billing-login.csv",
            per_class=80,
            categories=("billing", "login"),
            mislabeled=0.12,
        )
        results_text_demo(window, two_class, pump, shot, train)
    if args.dicom_only or not (args.text_only or args.images_only or args.advice_only):
        dicom_demo(window, tmp / "head-ct", pump, shot, train)
    window.close()
    return 0


def dicom_demo(window, root: Path, pump, shot, train=None) -> None:
    """16-data-dicom: a folder of DICOM slices, patients from PatientID, the lung window; then
    17-label-review (three bleed slices filed as normal) and, trained, 18-results-subgroups."""
    sys.path.insert(0, str(ROOT / "tests"))
    from dicom_synth import disc_slice, write_dicom

    for i in range(48):
        disc = bool(i % 2)
        cls = "normal" if i in (13, 25, 37) else ("bleed" if disc else "normal")  # 3 mislabelled
        write_dicom(
            root / cls / f"IMG{i:04d}.dcm",
            disc_slice(i, disc=disc, size=96),
            bits_stored=12,
            slope=1.0,
            intercept=-1024.0,
            window=(40.0, 400.0),
            PatientID=f"MRN-{i // 3:03d}",
            PatientSex="FM"[(i // 3) % 2],
            Manufacturer=("Siemens", "GE", "Philips")[(i // 3) % 3],
        )
    window.ctx.state.update("data", group_by="dicom", dicom_window="lung")
    window.open_folder(str(root))
    pump(60, until=lambda: window.data_page.index is not None and not window.ctx.pool.busy)
    pump(3)
    shot("16-data-dicom")
    review = window.data_page.review_labels()
    pump(300, until=lambda: not review.busy)
    review.wait_for_thumbnails(5000)
    pump(1)
    shot("17-label-review", review)
    review.close()
    if train is None:
        return
    from engine import Method

    window.ctx.state.update("adapt", method=Method("linear-probe"))
    train(1)
    evaluate_newest_run(window, pump)
    view = window.results_page.view
    view.tabs.setCurrentWidget(view.subgroups)
    pump(60, until=lambda: view.subgroups.combo.count() > 0 and not view.subgroups.busy)
    view.subgroups.choose("Manufacturer")
    pump(120, until=lambda: not view.subgroups.busy)
    pump(1)
    shot("18-results-subgroups")


def evaluate_newest_run(window, pump) -> None:
    """Show the Results page for the newest run; a finished run shows the evaluation training
    saved, so Evaluate is clicked only for a run without one."""
    page = window.results_page
    window.show_page("Results")
    page.select_run(page.run_combo.itemData(0))
    pump(60, until=lambda: page.results is not None and not window.ctx.pool.busy)
    if "val" not in page.results.splits:
        page.evaluate()
        pump(300, until=lambda: not page.busy and not window.ctx.pool.busy)
    pump(1)


def worst_cell(evaluation) -> tuple[int, int]:
    """The off-diagonal cell with the most examples (the diagonal's largest when none)."""
    n = len(evaluation.classes)
    off = [(r, c) for r in range(n) for c in range(n) if r != c and evaluation.confusion[r][c]]
    cells = off or [(r, r) for r in range(n)]
    return max(cells, key=lambda rc: evaluation.confusion[rc[0]][rc[1]])


def explain_cell(window, pump, cell: tuple[int, int]) -> None:
    view = window.results_page.view
    view.open_cell(*cell)
    pump(2)
    view.gallery.toggle.setChecked(True)
    pump(300, until=lambda: not view.gallery.busy and not view.gallery._queue)
    pump(1)


def results_image_demo(window, pump, shot) -> None:
    """The image run on the Results page: the overview, then a cell with heatmaps."""
    evaluate_newest_run(window, pump)
    view = window.results_page.view
    view.threshold.set_threshold(0.35)
    pump(1)
    shot("10-results-image")
    cell = worst_cell(view.evaluation)
    if view.evaluation.confusion[cell[0]][cell[1]] < 4:  # too few mistakes to fill a shot
        positive = view.evaluation.classes.index(view.evaluation.positive or "lesion")
        cell = (positive, positive)
    explain_cell(window, pump, cell)
    shot("11-results-gallery")
    try_it_demo(window, pump, shot)
    export_demo(window, pump, shot)


def try_it_demo(window, pump, shot) -> None:
    """The Try it tab: one validation image classified, with its heatmap."""
    view = window.results_page.view
    try_it = view.try_it
    view.tabs.setCurrentWidget(try_it)
    pump(120, until=lambda: try_it.modality == "image" and not try_it.busy)
    val = window.results_page.results.splits["val"].predictions
    try_it.try_image(val.refs[int(val.confidence.argmin())])  # the least sure: an honest shot
    pump(120, until=lambda: not try_it.busy)
    try_it._explain_box().setChecked(True)
    pump(120, until=lambda: not try_it.busy)
    shot("13-results-try-it")


def export_demo(window, pump, shot) -> None:
    """The Export dialog after exporting safetensors and ONNX (checked with onnxruntime)."""
    from desktop.results.export_dialog import ExportDialog

    run = window.results_page.results.facts.path
    dialog = ExportDialog(run, parent=window, pool=window.ctx.pool)
    dialog.show()
    pump(60, until=lambda: not dialog.busy)
    dialog.set_formats(["safetensors", "onnx"])
    dialog.start_export()
    pump(600, until=lambda: not dialog.running and not dialog.busy)
    shot("14-export", dialog)
    dialog.close()
    pump(5, until=lambda: not dialog.busy)


def results_text_demo(window, tickets: Path, pump, shot, train) -> None:
    """A two-class text run: its mistakes with the influential words highlighted."""
    from engine.config import Method

    window.open_folder(str(tickets))
    pump(60, until=lambda: window.data_page.usable and not window.ctx.pool.busy)
    window.ctx.state.update("adapt", method=Method.LINEAR_PROBE)
    train(4)
    evaluate_newest_run(window, pump)
    view = window.results_page.view
    cell = worst_cell(view.evaluation)
    if view.evaluation.confusion[cell[0]][cell[1]] < 3:  # too few mistakes to fill a shot
        cell = (cell[0], cell[0])
    explain_cell(window, pump, cell)
    shot("12-results-text")


def advice_demo(window, root: Path, pump, shot) -> None:
    """Recommended's analysis of out-of-domain scans, shown on the Layers page."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from make_scans import make_scans

    from engine.config import Method

    make_scans(root, 40, levels=3, lesion="medium")
    window.open_folder(str(root))
    pump(60, until=lambda: window.data_page.usable and not window.ctx.pool.busy)
    window.ctx.state.update("adapt", method=Method.AUTO)
    window.ctx.state.update("data", num_workers=0)
    window.show_page("Layers")
    layers = window.layers_page
    pump(120, until=lambda: layers.model is not None)
    layers.advice.analyse()
    pump(900, until=lambda: not layers.advice.is_running)
    pump(2)
    shot("15-layers-advice")


def text_demo(window, tickets: Path, pump, shot, train, args: argparse.Namespace) -> None:
    """A table of labeled texts: columns, text backbones, LoRA, and a short run."""
    from engine.config import Method

    window.open_folder(str(tickets))
    pump(60, until=lambda: window.data_page.usable and not window.ctx.pool.busy)
    pump(2)
    shot("6-data-text")
    window.show_page("Model")
    pump(60, until=lambda: window.model_page.table.rowCount() > 0)
    shot("7-model-text")
    window.show_page("Layers")
    layers = window.layers_page
    pump(120, until=lambda: layers.model is not None and layers.built is not None)
    window.ctx.state.update("adapt", method=Method.LORA)
    pump(60, until=lambda: "counting" not in layers.trainable_label.text())
    pump(2)
    shot("8-layers-lora")
    train(args.text_epochs)
    shot("9-train-text")


if __name__ == "__main__":
    sys.exit(main())
