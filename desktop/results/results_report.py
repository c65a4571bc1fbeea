"""A run's evaluation as one self-contained report: HTML (images inline) or PDF (same content).

The HTML names its pictures ``img-<name>.png``; the HTML file gets them inline as base64 data
URIs, the PDF gets them as QTextDocument resources (rich text has no data URIs).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

from desktop.modalities import views_of
from desktop.results.evaluation_jobs import ReportMaterial, RunFacts, report_material_job
from desktop.results.metrics_view import decimal as _dec
from desktop.results.metrics_view import interval_text
from desktop.results.metrics_view import percent as _pct

if TYPE_CHECKING:
    from engine import ClassMetrics, Evaluation, Interval, OperatingPoint

SPLIT_NAMES = {"val": "VALIDATION", "test": "TEST"}
SPLIT_NOTES = {
    "val": "Validation split: the examples used to pick the best epoch and settings. Good for "
    "choosing between models; slightly optimistic as a final estimate.",
    "test": "Test split: examples kept locked during training and model choice. This is the "
    "honest estimate of how the model does on new data.",
}
IMAGE_TITLES = (
    ("confusion", "Confusion matrix (rows: true class, columns: predicted; shading: share of row)"),
    ("roc", "ROC curves"),
    ("pr", "Precision–recall curves"),
    ("reliability", "Reliability diagram"),
)
TABLE = '<table class="data" cellspacing="0" cellpadding="4" border="1">'
CSS = """
body { font-family: sans-serif; font-size: 10pt; color: #222; max-width: 60em; margin: 2em auto; }
h1 { font-size: 18pt; margin-bottom: 0; }
h2 { font-size: 13pt; margin-top: 1.4em; border-bottom: 1px solid #ccc; }
table.data { border-collapse: collapse; }
table.data td, table.data th { border: 1px solid #bbb; padding: 3px 8px; }
table.data th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; }
.badge { color: white; font-weight: bold; padding: 2px 8px; }
.note { color: #555; }
.warning { color: #a35a00; font-weight: bold; }
"""


@dataclass
class Report:
    """The report's HTML with named images, ready to save as HTML or PDF."""

    title: str
    body: str
    images: dict[str, QImage] = field(default_factory=dict)

    def html(self, *, embed: bool = True) -> str:
        """The whole document; ``embed`` puts the images inline (a file that stands alone)."""
        body = self.body
        if embed:
            for name, image in self.images.items():
                body = body.replace(f'src="img-{name}.png"', f'src="{png_data_uri(image)}"')
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>"
        )

    def save(self, path: Path) -> Path:
        """Write an HTML file, or a PDF when ``path`` ends in .pdf (atomically either way)."""
        from engine import write_atomic, write_bytes_atomic

        path = Path(path)
        if path.suffix.lower() == ".pdf":
            return write_atomic(path, self._write_pdf)
        return write_bytes_atomic(path, self.html(embed=True).encode("utf-8"))

    def _write_pdf(self, target: Path) -> None:
        document = QTextDocument()
        document.setDefaultStyleSheet(CSS)
        for name, image in self.images.items():
            document.addResource(
                QTextDocument.ResourceType.ImageResource.value, QUrl(f"img-{name}.png"), image
            )
        document.setHtml(self.html(embed=False))
        writer = QPdfWriter(str(target))
        writer.setTitle(self.title)
        writer.setCreator("Refit Studio")
        writer.setResolution(150)
        writer.setPageLayout(
            QPageLayout(
                QPageSize(QPageSize.PageSizeId.A4),
                QPageLayout.Orientation.Portrait,
                QMarginsF(15, 15, 15, 15),
                QPageLayout.Unit.Millimeter,
            )
        )
        document.print_(writer)
        del writer  # the PDF is finished when the writer goes away


def png_data_uri(image: QImage) -> str:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return "data:image/png;base64," + base64.b64encode(bytes(data.data())).decode("ascii")


def build_report(
    facts: RunFacts,
    evaluation: Evaluation,
    *,
    point: OperatingPoint | None = None,
    comparison_html: str = "",
    images: Mapping[str, QImage] | None = None,
    material: ReportMaterial | None = None,
) -> Report:
    """The report of ``evaluation`` of ``facts``' run, in the numbered sections of a reviewer's
    checklist (CLAIM 2024 / TRIPOD+AI, engine.reviewer_report): intended use, data,
    preprocessing, split, model, metrics with intervals and curves, calibration, subgroups, the
    most confident mistakes, limitations, fingerprint; then the checklist and the comparisons
    made in the Compare tab. ``material``: the sections and the mistakes' pictures read in a
    worker (report_material_job); without it they are read here."""
    from engine import checklist_html, section_html

    images = dict(images or {})
    title = f"Refit Studio report: {facts.label}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        _split_banner(evaluation.split),
        *(f'<p class="warning">{html.escape(w)}</p>' for w in evaluation.warnings),
        _facts_table(facts, evaluation),
    ]
    if material is None:
        material = _material(facts, evaluation)
    review = material.review
    for section in review.sections:
        if section.number == 6:  # the page's own numbers: the threshold chosen, every class
            parts += [
                f"<h2>6 {html.escape(section.title)}</h2>",
                _headline_table(evaluation, point),
                _interval_method(evaluation),
                "<h3>Per class</h3>",
                _per_class_table(evaluation),
                "<h3>Confusion matrix</h3>",
                _confusion_table(evaluation),
                *_pictures(images, ("confusion", "roc", "pr")),
            ]
            continue
        parts.append(section_html(section))
        if section.number == 7:
            parts += _pictures(images, ("reliability",))
        if section.number == 9:
            parts.append(_failure_pictures(review.failures, images, material))
    parts.append(checklist_html(review.checklist))
    if comparison_html:
        parts += ["<h2>Comparisons</h2>", comparison_html]
    stamp = datetime.now().isoformat(sep=" ", timespec="seconds")
    parts.append(f'<p class="note">Written by Refit Studio on {stamp}.</p>')
    return Report(title=title, body="\n".join(parts), images=images)


def _pictures(images: Mapping[str, QImage], names: tuple[str, ...]) -> list[str]:
    captions = dict(IMAGE_TITLES)
    return [
        f'<p><img src="img-{name}.png" width="{min(560, images[name].width())}"><br>'
        f'<span class="note">{html.escape(captions[name])}</span></p>'
        for name in names
        if name in images
    ]


THUMB = 128


def _material(facts: RunFacts, evaluation: Evaluation) -> ReportMaterial:
    """The report's material read here (a caller without a worker: tests, scripts)."""
    from engine import Task

    job = report_material_job(Path(facts.path), evaluation, THUMB, heatmaps=False)
    return cast(ReportMaterial, job(Task()))


def _failure_pictures(failures: Any, images: dict[str, QImage], material: ReportMaterial) -> str:
    """The mistakes' pictures in a row, numbered as in the table (added to ``images``); a file
    without one (gone, moved, unreadable) is left out (the table still lists it)."""
    cells = []
    for i, failure in enumerate(failures, 1):
        picture = material.pictures.get(failure.path)
        if picture is None or picture.isNull():
            continue
        name = f"failure-{i}"
        images[name] = picture
        cells.append(f'<td><img src="img-{name}.png" width="{picture.width()}"><br>#{i}</td>')
    if not cells:
        return ""
    shown = material.heatmaps
    legend = (
        f'<p class="note">{shown} of them with a Grad-CAM heatmap of the predicted class (red: '
        "the regions that pushed the model towards its wrong answer).</p>"
        if shown
        else ""
    )
    return f"<table><tr>{''.join(cells)}</tr></table>{legend}"


def _split_banner(split: str) -> str:
    color = "#c0392b" if split == "test" else "#2c6fb7"
    name = SPLIT_NAMES.get(split, split.upper())
    return (
        f'<p><span class="badge" style="background-color:{color};">&nbsp;{name} SPLIT&nbsp;</span>'
        f'&nbsp; <span class="note">{html.escape(SPLIT_NOTES.get(split, ""))}</span></p>'
    )


def _rows(pairs: list[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs
    )
    return f"{TABLE}{cells}</table>"


def _facts_table(facts: RunFacts, ev: Evaluation) -> str:
    best = facts.best.get("val_accuracy")
    pairs = [
        ("Run", facts.run_id),
        ("Backbone", facts.backbone),
        ("Method", facts.method),
        ("Data", views_of(facts.modality).modality.noun),
        ("Classes", ", ".join(ev.classes)),
        ("Checkpoint", ev.checkpoint),
        ("Examples evaluated", f"{ev.n} ({SPLIT_NAMES.get(ev.split, ev.split).lower()} split)"),
        ("Evaluated", ev.created.replace("T", " ")),
    ]
    if facts.device:
        pairs.append(("Trained on", facts.device))
    if best is not None:
        pairs.append(("Best validation accuracy while training", _pct(best)))
    return _rows(pairs)


def _with_ci(text: str, interval: Interval | None, as_percent: bool = True) -> str:
    """A number with its 95% interval in brackets, e.g. '91.2% (95% CI 87.1–94.1%)'."""
    ci = interval_text(interval, as_percent)
    return f"{text} ({ci})" if ci else text


def _headline_table(ev: Evaluation, point: OperatingPoint | None) -> str:
    iv = getattr(ev, "intervals", None)
    pairs = [
        ("Accuracy", _with_ci(_pct(ev.accuracy), iv and iv.accuracy)),
        ("Balanced accuracy", _with_ci(_pct(ev.balanced_accuracy), iv and iv.balanced_accuracy)),
        ("Macro F1", _with_ci(_dec(ev.macro_f1), iv and iv.macro_f1, as_percent=False)),
        (
            "Expected calibration error (ECE)",
            _with_ci(_dec(ev.calibration.ece), iv and iv.calibration_error, as_percent=False),
        ),
    ]
    point = point or ev.operating
    if ev.positive is not None and point is not None:
        from engine import class_intervals

        curve = ev.roc.get(ev.positive)
        ci = class_intervals(ev.positive, point.tp, point.fp, point.tn, point.fn)
        auc = iv.roc_auc.get(ev.positive) if iv else None
        pairs += [
            ("Positive class", ev.positive),
            ("Threshold on P(positive)", f"{point.threshold:.2f}"),
            ("Sensitivity", _with_ci(_pct(point.sensitivity), ci.sensitivity)),
            ("Specificity", _with_ci(_pct(point.specificity), ci.specificity)),
            ("Precision (PPV)", _with_ci(_pct(point.precision), ci.ppv)),
            ("NPV", _with_ci(_pct(_ratio(point.tn, point.tn + point.fn)), ci.npv)),
            ("TP / FN / FP / TN", f"{point.tp} / {point.fn} / {point.fp} / {point.tn}"),
            ("ROC AUC", _with_ci(_dec(curve.auc if curve else None), auc, False)),
        ]
    else:
        for name, curve in ev.roc.items():
            auc = iv.roc_auc.get(name) if iv else None
            pairs.append((f"ROC AUC ({name} vs rest)", _with_ci(_dec(curve.auc), auc, False)))
        if iv is not None and iv.macro_roc_auc is not None:
            aucs = [c.auc for c in ev.roc.values() if c.auc == c.auc]
            mean = sum(aucs) / len(aucs) if aucs else None
            pairs.append(
                ("ROC AUC (mean over classes)", _with_ci(_dec(mean), iv.macro_roc_auc, False))
            )
    return _rows(pairs)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _interval_method(ev: Evaluation) -> str:
    """How the intervals were computed, and why any is missing."""
    iv = getattr(ev, "intervals", None)
    if iv is None:
        return ""
    notes = iv.notes([c.name for c in ev.per_class if c.measured])
    text = " ".join([iv.method, *notes])
    return f'<p class="note">{html.escape(text)}</p>'


def _per_class_table(ev: Evaluation) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Class", "Precision", "Recall", "F1", "Support"))
    iv = getattr(ev, "intervals", None)
    rows = "".join(
        f"<tr><td>{html.escape(m.name)}</td>"
        f"{_class_numbers(m, iv.of_class(m.name) if iv else None)}"
        f"<td class='num'>{m.support}</td></tr>"
        for m in ev.per_class
    )
    return f"{TABLE}<tr>{head}</tr>{rows}</table>"


def _class_numbers(m: ClassMetrics, ci: Any = None) -> str:
    """Precision and recall with their 95% intervals (when known), and F1."""
    if not m.measured:  # a class the split has no example of: no numbers, not 0%
        return "<td class='num' colspan='3'>no examples</td>"
    precision = html.escape(_with_ci(_pct(m.precision), ci.ppv if ci else None))
    recall = html.escape(_with_ci(_pct(m.recall), ci.sensitivity if ci else None))
    return (
        f"<td class='num'>{precision}</td><td class='num'>{recall}</td>"
        f"<td class='num'>{_dec(m.f1)}</td>"
    )


def _confusion_table(ev: Evaluation) -> str:
    head = "<th>true \\ predicted</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in ev.classes)
    rows = "".join(
        f"<tr><th>{html.escape(name)}</th>"
        + "".join(f"<td class='num'>{v}</td>" for v in row)
        + "</tr>"
        for name, row in zip(ev.classes, ev.confusion, strict=True)
    )
    return f"{TABLE}<tr>{head}</tr>{rows}</table>"
