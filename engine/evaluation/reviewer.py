"""A report a reviewer can read: a run's facts in the order of the CLAIM 2024 and TRIPOD+AI
checklists, as far as the app can know them.

The sections are plain data (:class:`Section`: label/value rows, paragraphs, a table) built from
the run folder (config.json, splits.json, summary.json, the saved evaluation and predictions);
:func:`sections_html` and :func:`sections_markdown` render them for the HTML/PDF report and the
model card, escaping every string on the way out: the intended use is typed by a user and
subgroup values come from DICOM tags or a CSV, so all of it is hostile until escaped.

Only counts, class names, dates to the month, the dataset folder's name and content digests get
here: never a patient's name, ID, birth date, a raw group key or a full path (which may hold a
user or patient name). Nothing here writes a file.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.export.markdown import md_text

SPLITS = (("train", "train"), ("val", "validation"), ("test", "test"))
NOT_KNOWN = "not known to the app — to be completed by the authors"
MAX_DATED_FILES = 20000  # file dates are read from at most this many files (os.stat each)
MAX_DICOM_DATED = 500  # DICOM headers read for the study dates (spread over the splits)
DICOM_PROBE = 20  # files looked at before deciding the data holds no DICOM study dates
STUDY_DATE = {"StudyDate": 0x00080020}
MAX_SUBGROUP_ATTRIBUTES = 20
MAX_SUBGROUP_ROWS = 200
FAILURES_SHOWN = 8
# Attributes a subgroup table must never list by value: the values would be identifiers.
_IDENTIFYING = {"patientname", "patientid", "patientbirthdate", "birthdate", "otherpatientids"}


@dataclass(frozen=True)
class Section:
    """One numbered section: ``rows`` (label, value), then ``paragraphs``, then ``table`` (its
    first row the header). Every string is plain text; renderers escape it."""

    number: int
    title: str
    rows: tuple[tuple[str, str], ...] = ()
    paragraphs: tuple[str, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()
    tables: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = ()  # (caption, table) more


@dataclass(frozen=True)
class Failure:
    """One confident mistake of the evaluated split: its content digest (how a reader finds it in
    the run's splits.json; file names may hold identifiers), classes, and its file for a
    thumbnail (``path`` never goes into text)."""

    digest: str
    true: str
    predicted: str
    confidence: float
    path: str = field(repr=False, default="")


@dataclass(frozen=True)
class ReviewerReport:
    """Everything :func:`reviewer_report` found: the sections and the failures behind section 9."""

    sections: tuple[Section, ...]
    failures: tuple[Failure, ...] = ()
    checklist: tuple[tuple[str, str], ...] = ()


def split_fingerprint(digests: Iterable[str]) -> str:
    """SHA-256 (hex) over the sorted example digests of a split, one per line."""
    return hashlib.sha256("\n".join(sorted(digests)).encode("utf-8")).hexdigest()


def reviewer_report(run: Any, evaluation: Any) -> ReviewerReport:
    """The reviewer's sections 1-11 and the checklist for ``evaluation`` (an Evaluation) of
    ``run`` (a RunDir). Parts of the run that are missing or damaged give 'not known' wording,
    never an exception: a report is still worth writing without them."""
    config = _quiet(run.config, None)
    # Files anyone may have edited: a list where one is expected, else left out.
    splits = _lists_only(_quiet(run.splits, {}), ("train", "val", "test", "classes"))
    summary = _lists_only(_quiet(run.summary, {}), ("classes",))
    failures = _failures(run, evaluation)
    subgroups = _subgroups_of(run, evaluation)
    sections = (
        _intended(config),
        _data(splits, summary),
        _preprocessing(config, summary, splits),
        _split(config, splits, summary),
        _model(config, summary),
        _performance(evaluation),
        _calibration(evaluation),
        _subgroups(subgroups),
        _gallery(failures, evaluation),
        _limitations(config, splits, summary, evaluation, subgroups),
        _fingerprint(splits),
    )
    return ReviewerReport(sections, failures, _checklist(config, subgroups, failures))


# -- rendering ----------------------------------------------------------------------------------

_TABLE = '<table class="data" cellspacing="0" cellpadding="4" border="1">'


def section_html(s: Section) -> str:
    """One section as HTML (heading, rows, paragraphs, tables), every string escaped."""
    e = html.escape
    parts = [f"<h2>{s.number} {e(s.title)}</h2>"]
    if s.rows:
        cells = "".join(f"<tr><th>{e(k)}</th><td>{_html_lines(v)}</td></tr>" for k, v in s.rows)
        parts.append(f"{_TABLE}{cells}</table>")
    parts += [f"<p>{_html_lines(p)}</p>" for p in s.paragraphs]
    for caption, table in (("", s.table), *s.tables):
        if caption:
            parts.append(f"<p><b>{e(caption)}</b></p>")
        if not table:
            continue
        head = "".join(f"<th>{e(h)}</th>" for h in table[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table[1:]
        )
        parts.append(f"{_TABLE}<tr>{head}</tr>{body}</table>")
    return "\n".join(parts)


def checklist_html(checklist: Sequence[tuple[str, str]]) -> str:
    """The closing checklist table: item, where in this report (or who must complete it)."""
    e = html.escape
    rows = "".join(f"<tr><td>{e(i)}</td><td>{e(w)}</td></tr>" for i, w in checklist)
    return (
        "<h2>Checklist (CLAIM 2024 / TRIPOD+AI)</h2>"
        f"{_TABLE}<tr><th>Item</th><th>Where in this report</th></tr>{rows}</table>"
    )


def sections_html(r: ReviewerReport) -> str:
    """Every section and the checklist as one HTML fragment (no images)."""
    return "\n".join([*(section_html(s) for s in r.sections), checklist_html(r.checklist)])


def sections_markdown(
    r: ReviewerReport, *, level: int = 2, after: Mapping[int, str] | None = None
) -> str:
    """Every section and the checklist as Markdown (the model card's short form), every string
    escaped with md_text (a link, tag or table pipe in user text stays literal). ``after``:
    Markdown the caller wrote (and escaped) to put after a section's own, by number."""
    hashes = "#" * level
    out: list[str] = []
    for s in r.sections:
        out += [f"{hashes} {s.number} {md_text(s.title)}", ""]
        out += [f"- {md_text(k)}: {md_text(v)}" for k, v in s.rows]
        if s.rows:
            out.append("")
        for p in s.paragraphs:
            out += [md_text(p), ""]
        for caption, table in (("", s.table), *s.tables):
            if caption:
                out += [md_text(caption), ""]
            if not table:
                continue
            out.append("| " + " | ".join(md_text(h) for h in table[0]) + " |")
            out.append("|" + " --- |" * len(table[0]))
            out += ["| " + " | ".join(md_text(c) or "-" for c in row) + " |" for row in table[1:]]
            out.append("")
        extra = (after or {}).get(s.number, "").strip()
        if extra:
            out += [extra, ""]
    out += [f"{hashes} Checklist (CLAIM 2024 / TRIPOD+AI)", "", "| item | where |", "| --- | --- |"]
    out += [f"| {md_text(i)} | {md_text(w)} |" for i, w in r.checklist]
    return "\n".join(out).strip() + "\n"


def _html_lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in str(text).split("\n"))


# -- sections -----------------------------------------------------------------------------------


def _intended(config: Any) -> Section:
    study = getattr(config, "study", None)
    use = getattr(study, "intended_use", "") or ""
    ref = getattr(study, "reference_standard", "") or ""
    missing = "not given — to be completed by the authors (Train page: Study, or `refit train "
    return Section(
        1,
        "Intended use and reference standard",
        rows=(
            ("Intended use", use or missing + "--intended-use`)"),
            ("Reference standard", ref or missing + "--reference-standard`)"),
        ),
    )


def _data(splits: Mapping[str, Any], summary: Mapping[str, Any]) -> Section:
    root = str(splits.get("root") or "")
    # The folder's name only: a full path may name the user (or a patient).
    name = Path(root).name if root else "not known"
    classes = [str(c) for c in splits.get("classes") or summary.get("classes") or []]
    counts = _class_counts(splits, len(classes))
    images = sum(sum(row) for row in counts.values())
    patients = summary.get("patients") if isinstance(summary.get("patients"), dict) else None
    rows = [
        ("Source", f"the dataset folder '{name}' (one site as far as the app knows)"),
        ("Dates", _dates(splits)),
        ("Classes", f"{len(classes)}: " + ", ".join(classes) if classes else "not known"),
        ("Images", str(images) if images else "not known"),
        ("Patients", _patients_total(patients)),
        ("De-identification", _deidentified(summary)),
    ]
    table: tuple[tuple[str, ...], ...] = ()
    if classes:
        head = ("class", *(word for _, word in SPLITS), "total")
        body = [
            (c, *(str(counts[s][i]) for s, _ in SPLITS), str(sum(counts[s][i] for s, _ in SPLITS)))
            for i, c in enumerate(classes)
        ]
        table = (head, *body)
    return Section(2, "Data", rows=tuple(rows), table=table)


def _preprocessing(config: Any, summary: Mapping[str, Any], splits: Mapping[str, Any]) -> Section:
    if config is None:
        return Section(3, "Preprocessing", paragraphs=("The run's config.json is not readable.",))
    pre = _preprocess(config)
    rows = []
    if pre is not None:
        resize = round(pre.input_size / pre.crop_pct) if pre.crop_pct else pre.input_size
        rows += [
            ("Input size", f"{pre.input_size} x {pre.input_size} pixels, RGB"),
            (
                "Resize and crop",
                f"shorter side resized to {resize} ({pre.interpolation}), centre crop "
                f"{pre.input_size} (crop fraction {pre.crop_pct:g})",
            ),
            (
                "Normalisation",
                "per channel (x - mean) / std, mean "
                + ", ".join(f"{m:.3f}" for m in pre.mean)
                + "; std "
                + ", ".join(f"{s:.3f}" for s in pre.std),
            ),
        ]
    else:
        rows.append(("Input size", "not known (the backbone is not in this installation)"))
    intensity = summary.get("intensity", getattr(config.data, "intensity", ""))
    rows.append(("Intensity stretch", _intensity_words(str(_value(intensity)))))
    if isinstance(summary.get("dicom"), dict):
        window = str(_value(config.data.dicom_window))
        source = (
            "each file's own VOI LUT or window centre/width (percentile when a file has none)"
            if window == "file"
            else "the 0.5-99.5% values of each image"
            if window == "percentile"
            else f"the '{window}' preset chosen for the run"
        )
        rows.append(("DICOM window", f"{window}: {source}"))
    else:
        rows.append(("DICOM window", "not applicable (no DICOM files)"))
    rows.append(
        ("Augmentation (training only)", str(_value(getattr(config.augment, "preset", "?"))))
    )
    return Section(3, "Preprocessing", rows=tuple(rows))


def _label_review(record: Any) -> str:
    """Whether the run's labels were reviewed (engine/evaluation/review_record.py), as the
    Limitations section says it."""
    from engine.evaluation.review_record import checked_review

    kept = checked_review(record)
    if kept is None or "covered" not in kept:
        return (
            "No label review of these images is recorded (`refit scan --review`, or Review "
            "labels on the Data page, before training): label noise in the reference standard "
            "is not measured here."
        )
    covered, images, month = kept["covered"], kept["images"], kept["date"][:7]  # no day
    flagged = (
        f"it flagged {kept['flagged']:,} of the {kept['reviewed']:,} images it reviewed as "
        f"likely label errors ({kept['backbone']} features)"
    )
    after = "; the app relabels nothing, and whether a person checked them is not recorded"
    if images and covered == images:
        return (
            f"A label review in {month} saw all {images:,} images with these labels: "
            f"{flagged}{after}."
        )
    if covered:
        return (
            f"A label review in {month} saw {covered:,} of the {images:,} images with these "
            f"labels (the others were added or relabelled since): {flagged}{after}."
        )
    return (
        f"A label review of this folder in {month} saw none of these images with their present "
        "labels (the folder changed since): treat the labels as not reviewed."
    )


def _leakage(record: Any) -> str:
    """What the scan's leakage checks found before training (counts in the run's summary)."""
    if not isinstance(record, dict):
        return (
            "not recorded in this run (texts, or a run made before the record existed): "
            "`refit scan` on the dataset folder lists them"
        )

    def n(key: str) -> int:
        value = record.get(key)
        return value if isinstance(value, int) and 0 <= value < 10**12 else 0

    def counted(count: int, one: str, many: str) -> str:
        return f"no {one}" if count == 0 else f"{count:,} {one if count == 1 else many}"

    copies = counted(n("copies_left_out"), "exact copy", "exact copies")
    if n("split_folders"):
        found = (
            f"{counted(n('patients_across'), 'patient', 'patients')} with images in two split "
            f"folders, {counted(n('near_duplicates_across'), 'pair', 'pairs')} of near-duplicate "
            f"images across them, {copies} left out of a second split"
        )
        lagging = n("patients_across") + n("near_duplicates_across")
        caution = "; the held-out results are optimistic until they are moved" if lagging else ""
        return f"checked by the scan before training: {found}{caution}"
    kept = counted(n("near_duplicates_kept_together"), "pair", "pairs")
    return (
        f"the app made the split: {kept} of near-duplicate images kept on one side of it; "
        f"{copies} left out of a second split"
    )


def _split(config: Any, splits: Mapping[str, Any], summary: Mapping[str, Any]) -> Section:
    patients = summary.get("patients") if isinstance(summary.get("patients"), dict) else None
    group_by = str(getattr(getattr(config, "data", None), "group_by", "") or "")
    data = getattr(config, "data", None)
    seed = getattr(data, "split_seed", "?")
    if patients:
        how = {"dicom": "the DICOM PatientID", "manifest": "the manifest's group column"}.get(
            group_by, "a pattern on the file paths" if group_by else "the manifest's group column"
        )
        method = (
            f"stratified by class and grouped by patient ({how}; keys kept only as salted "
            "hashes): every patient's images are on one side"
        )
    else:
        method = (
            "stratified by class, image by image: no patient groups were given, so images of "
            "one patient may sit on both sides"
        )
    rows = [
        ("Method", method),
        (
            "Seed and fractions",
            f"seed {seed}; validation {getattr(data, 'val_fraction', 0):.0%}, test "
            f"{getattr(data, 'test_fraction', 0):.0%} (used when the dataset has no val/ or "
            "test/ folder of its own)",
        ),
        ("Leakage checks", _leakage(summary.get("leakage"))),
    ]
    head = ("split", "images", "patients")
    body = []
    for key, word in SPLITS:
        n = len(splits.get(key) or [])
        if not n:
            continue
        p = patients.get(key, {}) if patients else {}
        body.append((word, str(n), str(p.get("patients", "-")) if patients else "not grouped"))
    return Section(4, "Split method", rows=tuple(rows), table=(head, *body) if body else ())


def _model(config: Any, summary: Mapping[str, Any]) -> Section:
    if config is None:
        return Section(5, "Model and training", paragraphs=("config.json is not readable.",))
    m, a, sched = config.model, config.adapt, config.schedule
    backbone = str(m.backbone)
    try:
        from engine.models import resolve_entry

        backbone = f"{resolve_entry(m.backbone).display_name} ({m.backbone})"
    except Exception:  # an entry this installation cannot place: its name is enough
        pass
    weights = (
        "none: trained from random initialisation"
        if not getattr(m, "pretrained", True)
        else f"pretrained ({m.weights or 'the default weights'}), from the local cache (offline)"
    )
    method = str(_value(a.method))
    frozen = {
        "linear-probe": "the whole backbone (only a new head is trained)",
        "full": "none (every layer trained)",
        "lora": f"the backbone, with LoRA adapters (rank {a.lora_rank}) trained",
        "last-n": f"all but the last {a.last_n} layer groups",
        "custom": ", ".join(str(g) for g in a.frozen_groups or []) or "none",
    }.get(method, "see config.json")
    best = summary.get("best_epoch")
    rows = (
        ("Backbone", backbone),
        ("Weights", weights),
        ("Method", method),
        ("Frozen layers", frozen),
        (
            "Epochs",
            "not applicable: a logistic-regression head fitted to convergence on cached features"
            if method == "linear-probe"
            else f"{summary.get('epochs_done', '?')} run of {sched.epochs} planned",
        ),
        ("Best epoch", str(best) if best is not None else "not known"),
        ("Optimiser", f"{_value(config.optim.optimizer)}, learning rate {config.optim.lr:g}"),
    )
    return Section(5, "Model and training", rows=rows)


def _performance(ev: Any) -> Section:
    if ev is None:
        return Section(6, "Performance with 95% intervals", paragraphs=("Not evaluated yet.",))
    iv = ev.intervals
    rows = [
        ("Split", f"{_split_word(ev.split)} ({ev.n} images, {ev.checkpoint} checkpoint)"),
        ("Accuracy", _with(_pct(ev.accuracy), iv and iv.accuracy, True)),
        ("Balanced accuracy", _with(_pct(ev.balanced_accuracy), iv and iv.balanced_accuracy, True)),
        ("Macro F1", _with(_dec(ev.macro_f1), iv and iv.macro_f1, False)),
    ]
    if ev.positive is not None and ev.operating is not None:
        op = ev.operating
        o = iv.operating if iv is not None else None
        rows += [
            (
                f"Sensitivity ('{ev.positive}' at P >= {op.threshold:g})",
                _with(_pct(op.sensitivity), o and o.sensitivity, True),
            ),
            ("Specificity", _with(_pct(op.specificity), o and o.specificity, True)),
            ("ROC AUC", _with(_dec(ev.roc[ev.positive].auc), iv and iv.roc_auc.get(ev.positive))),
        ]
    else:
        for name, curve in ev.roc.items():
            rows.append(
                (f"ROC AUC ({name} vs rest)", _with(_dec(curve.auc), iv and iv.roc_auc.get(name)))
            )
    paragraphs = (iv.method,) if iv is not None else ()
    return Section(6, "Performance with 95% intervals", rows=tuple(rows), paragraphs=paragraphs)


def _calibration(ev: Any) -> Section:
    if ev is None:
        return Section(7, "Calibration", paragraphs=("Not evaluated yet.",))
    ece = ev.calibration.ece
    return Section(
        7,
        "Calibration",
        rows=(("Expected calibration error (ECE, 15 bins)", _dec(ece)),),
        paragraphs=(
            "The reliability diagram compares the predicted class's probability with how often "
            "it was right (the diagonal is perfect calibration).",
        ),
    )


def _subgroups(subgroups: list[dict[str, Any]] | None) -> Section:
    title = "Subgroups"
    if not subgroups:
        return Section(
            8,
            title,
            paragraphs=(
                "No subgroup analysis was run (`refit evaluate RUN --subgroup ATTRIBUTE`).",
            ),
        )
    head = (
        "value",
        "images",
        "patients",
        "accuracy",
        "balanced accuracy",
        "ROC AUC",
        "sensitivity",
        "specificity",
        "flag",
    )
    tables: list[tuple[str, tuple[tuple[str, ...], ...]]] = []
    flagged: list[str] = []
    for group in subgroups[:MAX_SUBGROUP_ATTRIBUTES]:
        attribute = _plain(group.get("attribute"), "?")
        source = _plain(group.get("source"), "")
        caption = f"By {attribute}" + (f" ({source})" if source else "")
        if attribute.replace(" ", "").lower() in _IDENTIFYING:
            tables.append((caption + ": withheld, its values identify patients", ()))
            continue
        body = []
        for row in list(group.get("rows") or [])[:MAX_SUBGROUP_ROWS]:
            if not isinstance(row, Mapping):
                continue
            lags = bool(row.get("lags"))
            note = _plain(row.get("note"), "")
            body.append(
                (
                    _plain(row.get("value"), "?"),
                    _plain(row.get("n"), "?"),
                    _plain(row.get("patients"), "-"),
                    _rate_ci(row.get("accuracy"), row.get("accuracy_ci"), True),
                    _rate_ci(row.get("balanced_accuracy"), None, True),
                    _rate_ci(row.get("auc"), row.get("auc_ci"), False),
                    _rate_ci(row.get("sensitivity"), row.get("sensitivity_ci"), True),
                    _rate_ci(row.get("specificity"), row.get("specificity_ci"), True),
                    "; ".join(x for x in ("LAGS the rest" if lags else "", note) if x) or "",
                )
            )
        tables.append((caption, (head, *body)))
        flagged += [_plain(s, "") for s in list(group.get("flagged") or [])[:50] if s]
    return Section(8, title, paragraphs=tuple(flagged), tables=tuple(tables))


def _gallery(failures: Sequence[Failure], ev: Any) -> Section:
    title = "Failure gallery"
    if ev is None:
        return Section(9, title, paragraphs=("Not evaluated yet.",))
    if not failures:
        return Section(
            9,
            title,
            paragraphs=(
                "No mistakes to show: the model made none on this split, or its predictions "
                "were not saved (evaluate the run again).",
            ),
        )
    head = ("#", "true class", "predicted", "confidence", "content digest (splits.json)")
    body = [
        (str(i), f.true, f.predicted, f"{f.confidence:.1%}", f.digest[:16])
        for i, f in enumerate(failures, 1)
    ]
    return Section(
        9,
        title,
        paragraphs=(
            (
                f"The {len(failures)} most confident mistakes"
                if len(failures) > 1
                else "The one mistake"
            )
            + f" of the {_split_word(ev.split)} split, named by content digest (file names can "
            "hold identifiers); the report saved from the Results page shows each with its "
            "Grad-CAM heatmap, and the page's Mistakes tab shows them all.",
        ),
        table=(head, *body),
    )


def _limitations(
    config: Any,
    splits: Mapping[str, Any],
    summary: Mapping[str, Any],
    ev: Any,
    subgroups: Any,
) -> Section:
    out = []
    if ev is not None:
        iv = ev.intervals
        acc = iv.accuracy if iv is not None else None
        width = (acc.high - acc.low) if acc is not None and acc.measured else None
        if ev.n < 200 or (width is not None and width > 0.1):
            wide = f" (accuracy interval {width:.0%} wide)" if width is not None else ""
            out.append(
                f"The {_split_word(ev.split)} split holds {ev.n} images: its intervals are "
                f"wide{wide}; a larger evaluation set would narrow them."
            )
        if ev.split == "val":
            out.append(
                "These numbers are on the validation split, which chose the best epoch: they are "
                "slightly optimistic; a locked test split gives the honest estimate."
            )
    out.append(
        "All images come from one dataset folder; the app cannot tell whether it spans several "
        "sites, scanners or periods, and no external test set was used: performance elsewhere "
        "is not known."
    )
    if not isinstance(summary.get("patients"), dict):
        out.append(
            "The split was made image by image, not by patient: if a patient has several images, "
            "the numbers are optimistic (set data.group_by, or a manifest's group column)."
        )
    out.append(_label_review(summary.get("label_review")))
    if not subgroups:
        out.append("No subgroup analysis was run: differences between patient groups are unknown.")
    dicom = summary.get("dicom")
    if isinstance(dicom, dict):
        files, declared = _int(dicom.get("files")), _int(dicom.get("declare_deidentified"))
        if declared < files:
            out.append(
                f"{files - declared} of {files} DICOM files do not declare themselves "
                "de-identified: check them before sharing the data."
            )
    study = getattr(config, "study", None)
    if not getattr(study, "intended_use", ""):
        out.append("No intended use was given, so no claim of fitness for a purpose is made.")
    return Section(10, "Limitations", paragraphs=tuple(out))


def _fingerprint(splits: Mapping[str, Any]) -> Section:
    body = []
    every: list[str] = []
    for key, word in SPLITS:
        digests = [str(r[2]) for r in splits.get(key) or [] if isinstance(r, list) and len(r) > 2]
        every += digests
        body.append((word, str(len(digests)), split_fingerprint(digests) if digests else "-"))
    rows = (("Whole dataset", split_fingerprint(every) if every else "not known"),)
    return Section(
        11,
        "Data fingerprint",
        rows=rows,
        paragraphs=(
            "SHA-256 over the sorted content digests of the examples (one per line, as stored "
            "in the run's splits.json): the same files give the same value, whatever their names.",
        ),
        table=(("split", "examples", "SHA-256"), *body),
    )


def _checklist(
    config: Any, subgroups: Any, failures: Sequence[Failure]
) -> tuple[tuple[str, str], ...]:
    study = getattr(config, "study", None)
    typed = "section 1" if getattr(study, "intended_use", "") else "section 1 (" + NOT_KNOWN + ")"
    ref = "section 1" if getattr(study, "reference_standard", "") else f"section 1 ({NOT_KNOWN})"
    return (
        ("Intended use, clinical role (CLAIM; TRIPOD+AI objectives)", typed),
        ("Reference standard / outcome definition (CLAIM; TRIPOD+AI outcome)", ref),
        ("Data sources and dates (CLAIM; TRIPOD+AI source of data)", "section 2"),
        ("Eligibility criteria, participant characteristics", NOT_KNOWN),
        ("De-identification (CLAIM)", "section 2"),
        ("Data preprocessing (CLAIM; TRIPOD+AI data preparation)", "section 3"),
        ("Data partitions, patient-level split, leakage (CLAIM)", "section 4"),
        ("Sample size justification", NOT_KNOWN),
        ("Missing data handling", NOT_KNOWN),
        ("Model, initialisation, training details (CLAIM; TRIPOD+AI model)", "section 5"),
        ("Performance metrics with uncertainty (CLAIM; TRIPOD+AI performance)", "section 6"),
        ("Calibration (TRIPOD+AI)", "section 7"),
        (
            "Subgroup and fairness analysis (CLAIM; TRIPOD+AI fairness)",
            "section 8" if subgroups else f"section 8: not run ({NOT_KNOWN})",
        ),
        ("Failure analysis (CLAIM)", "section 9" if failures else "section 9 (none shown)"),
        ("Limitations (CLAIM; TRIPOD+AI)", "section 10"),
        ("Data fingerprint / availability", "section 11"),
        ("External validation", NOT_KNOWN),
        ("Ethics approval, funding, registration, code availability", NOT_KNOWN),
    )


# -- what the run holds -------------------------------------------------------------------------


def _quiet(reader: Any, default: Any) -> Any:
    """A run file's content, or ``default`` when it is missing or damaged."""
    try:
        return reader()
    except Exception:  # a damaged file costs the report a section's detail, never the report
        return default


def _lists_only(record: Any, keys: Sequence[str]) -> dict[str, Any]:
    """``record`` (a run file's JSON) as a dict whose ``keys`` are lists where present."""
    if not isinstance(record, dict):
        return {}
    return {k: v for k, v in record.items() if k not in keys or isinstance(v, list)}


def _class_counts(splits: Mapping[str, Any], n: int) -> dict[str, list[int]]:
    counts = {}
    for key, _ in SPLITS:
        row = [0] * n
        for r in splits.get(key) or []:
            try:
                label = int(r[1])
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            if 0 <= label < n:
                row[label] += 1
        counts[key] = row
    return counts


def _dates(splits: Mapping[str, Any]) -> str:
    """The studies' dates (DICOM StudyDate) where the files are DICOM, else the files' dates;
    year and month only (a day could help identify a patient's visit); from the files still on
    disk."""
    files = [
        str(r[0]).partition("#frame=")[0]
        for key, _ in SPLITS
        for r in splits.get(key) or []
        if isinstance(r, (list, tuple)) and r and isinstance(r[0], str)
    ]
    studies = _study_months(files)
    if studies:
        return (
            f"studies from {min(studies)} to {max(studies)} (the DICOM study dates of "
            f"{len(studies)} file{'s' if len(studies) != 1 else ''})"
        )
    stamps: list[float] = []
    for path in files[:MAX_DATED_FILES]:
        try:
            stamps.append(os.stat(path).st_mtime)
        except (OSError, ValueError):
            continue
    if not stamps:
        return "not known (the files are no longer where the run found them)"

    def month(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")

    return (
        f"files modified {month(min(stamps))} to {month(max(stamps))} (file dates, which may "
        "differ from the study dates)"
    )


def _study_months(files: list[str]) -> list[str]:
    """'YYYY-MM' of the StudyDate of up to ``MAX_DICOM_DATED`` of ``files`` (spread over them);
    none when the first ``DICOM_PROBE`` looked at hold no DICOM study date (photos)."""
    from engine.evaluation.subgroups import dicom_attributes

    step = max(1, len(files) // MAX_DICOM_DATED)
    months: list[str] = []
    for looked, path in enumerate(files[::step][:MAX_DICOM_DATED]):
        if looked >= DICOM_PROBE and not months:
            break
        value = dicom_attributes(path, ("StudyDate",), STUDY_DATE).get("StudyDate", "")
        # isascii: "²" is a digit to isdigit() and not to int().
        real = len(value) == 8 and value.isascii() and value.isdigit()
        real = real and 1900 <= int(value[:4]) <= 2200
        if real and 1 <= int(value[4:6]) <= 12:
            months.append(f"{value[:4]}-{value[4:6]}")
    return months


def _patients_total(patients: Mapping[str, Any] | None) -> str:
    if not patients:
        return "not known (no patient groups were given)"
    total = sum(_int(v.get("patients")) for v in patients.values() if isinstance(v, Mapping))
    return f"{total} (grouped by patient)"


def _deidentified(summary: Mapping[str, Any]) -> str:
    dicom = summary.get("dicom")
    if not isinstance(dicom, dict):
        return "not applicable (no DICOM files)"
    from engine.training.patients import deidentified_sentence

    record = {k: _int(dicom.get(k)) for k in ("files", "declare_deidentified")}
    return deidentified_sentence(record)


def _preprocess(config: Any) -> Any:
    try:
        from engine.models import resolve_entry

        return resolve_entry(config.model.backbone).preprocess
    except Exception:  # a backbone this installation cannot place: 'not known'
        return None


def _intensity_words(value: str) -> str:
    return {
        "percentile": "percentile: each image's 0.5-99.5% brightness stretched to 0-255",
        "off": "off: pixels as decoded",
        "auto": "auto (stretch when the scan found many low-contrast images)",
    }.get(value, value or "not known")


def confident_failures(run: Any, evaluation: Any) -> tuple[Failure, ...]:
    """The most confident mistakes of ``evaluation``'s split of ``run`` (a RunDir), as section 9
    shows them: what a report makes heatmaps of before it is written."""
    return _failures(run, evaluation)


def _failures(run: Any, ev: Any) -> tuple[Failure, ...]:
    """The most confident mistakes of the evaluated split (from its saved predictions)."""
    if ev is None:
        return ()
    try:
        from engine.evaluation.predictions import load_predictions

        preds = load_predictions(run, ev.split)
    except Exception:  # no usable predictions: the section says so
        return ()
    if preds is None or not preds.n:
        return ()
    import numpy as np

    wrong = np.flatnonzero(~preds.correct)
    order = wrong[np.argsort(-preds.confidence[wrong], kind="stable")][:FAILURES_SHOWN]
    p = preds.preds
    return tuple(
        Failure(
            digest=str(preds.digests[i]),
            true=preds.classes[int(preds.labels[i])],
            predicted=preds.classes[int(p[i])],
            confidence=float(preds.confidence[i]),
            path=str(preds.refs[i]),
        )
        for i in order
    )


def _subgroups_of(run: Any, ev: Any) -> list[dict[str, Any]] | None:
    """evaluation["subgroups"]: the evaluation's own attribute, else its saved file's key."""
    if ev is None:
        return None
    raw = getattr(ev, "subgroups", None)
    if not raw:  # none on the object (an Evaluation loaded without them): its saved file's
        try:
            from engine.evaluation.report import evaluation_path
            from engine.files import read_json_object

            raw = read_json_object(evaluation_path(run, ev.split)).get("subgroups")
        except Exception:  # no saved file (or a damaged one): no subgroups to show
            raw = None
    if not isinstance(raw, list | tuple):
        return None
    out = []
    for g in raw:
        d = g.to_dict() if hasattr(g, "to_dict") else g
        if isinstance(d, Mapping):
            out.append(dict(d))
    return out or None


# -- numbers and words --------------------------------------------------------------------------


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return 0


def _plain(v: Any, default: str) -> str:
    """A value from a hostile file as one short line of text."""
    if v is None:
        return default
    text = " ".join(str(v).split())
    return text[:200]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return None if math.isnan(v) or math.isinf(v) else float(v)


def _rate_ci(value: Any, ci: Any, percent: bool) -> str:
    v = _num(value)
    if v is None:
        return "-"
    text = f"{100 * v:.1f}%" if percent else f"{v:.3f}"
    if isinstance(ci, list | tuple) and len(ci) == 2:
        lo, hi = _num(ci[0]), _num(ci[1])
        if lo is not None and hi is not None:
            text += f" ({100 * lo:.1f}-{100 * hi:.1f}%)" if percent else f" ({lo:.3f}-{hi:.3f})"
    return text


def _pct(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.1%}"


def _dec(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def _with(text: str, interval: Any, percent: bool = False) -> str:
    if interval is None:
        return text
    return f"{text} ({interval.text(percent)})"


def _split_word(split: str) -> str:
    return dict(SPLITS).get(split, split)
