"""Metrics per subgroup: accuracy, balanced accuracy, ROC AUC, sensitivity and specificity, each
with its 95 % interval, per value of one attribute of the evaluated images (sex, age band, site,
scanner), and a flag on the subgroups that lag the rest.

Why: a model that is 90 % accurate overall can be 70 % accurate on one hospital's scanner or on
the elderly; a clinician needs to see that before trusting it. The attribute comes from

- a manifest CSV's extra columns (any column but file, label, group and split; kept per row by
  :mod:`engine.data.manifest`), source ``"manifest"``; or
- a DICOM header tag of :data:`DICOM_ATTRIBUTES`, read from each evaluated file at evaluation time
  (the header only, at most 4 MiB, through :func:`engine.data.dicom.parse_header`), source
  ``"dicom"``. PatientAge ("045Y") and a manifest column named ``age`` become age bands.

Tags and columns that identify a patient (names, IDs, birth dates, the group key) are refused as
attributes in one sentence: a table of them would list patients. The intervals are those of the
whole evaluation (:func:`engine.evaluation.report.evaluate` on each subgroup's examples), so the
bootstrap resamples patients where the run has them.

Small values: values with fewer than :data:`MIN_IMAGES` images are pooled into one row,
:data:`OTHER` ("other (small groups)"); a pooled row that is still under :data:`MIN_IMAGES` is
shown with its count and the note "too few to judge", and neither row is ever flagged. An
attribute with more than :data:`MAX_VALUES` distinct values (an ID, a free-text column) is refused
in one sentence.

A subgroup *lags* when its accuracy is below the rest's (all other examples) and either its
accuracy interval lies entirely below the rest's accuracy interval (both Wilson; the rest's point
alone would flag chance dips whenever the rest is small, so its uncertainty counts too), or a
two-proportion test (Fisher's exact test, scipy) of its accuracy against the rest's gives
p < 0.05 after Holm's correction across the values tested.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.data.dicom import is_dicom, parse_header
from engine.data.manifest import MAX_ATTRIBUTE, is_image_manifest, read_manifest
from engine.data.problems import DatasetError
from engine.data.safe_read import MIB, read_head
from engine.evaluation.intervals import Interval, wilson
from engine.evaluation.predictions import (
    PredictionError,
    SplitPredictions,
    load_predictions,
    split_data,
    split_groups,
)
from engine.evaluation.report import (
    Evaluation,
    evaluate,
    evaluation_path,
    load_evaluation,
    positive_class,
)
from engine.files import write_json_atomic
from engine.runs import RunDir
from engine.task import Task, as_task

MANIFEST = "manifest"
DICOM = "dicom"
MIN_IMAGES = 5
MAX_VALUES = 50
OTHER = "other (small groups)"
MISSING = "not recorded"
TOO_FEW = f"too few to judge (fewer than {MIN_IMAGES} images)"
ALPHA = 0.05

#: DICOM keywords offered as attributes, with their tags (group << 16 | element).
DICOM_ATTRIBUTES: dict[str, int] = {
    "PatientSex": 0x00100040,
    "PatientAge": 0x00101010,
    "Manufacturer": 0x00080070,
    "ManufacturerModelName": 0x00081090,
    "Modality": 0x00080060,
    "InstitutionName": 0x00080080,
    "BodyPartExamined": 0x00180015,
    "ViewPosition": 0x00185101,
}
#: Names (lower case, letters and digits only) that identify a patient: never an attribute.
IDENTIFYING = frozenset(
    {
        "patientname",
        "patientid",
        "patientbirthdate",
        "birthdate",
        "dateofbirth",
        "dob",
        "otherpatientids",
        "otherpatientnames",
        "patientaddress",
        "patienttelephonenumbers",
        "patientmothersbirthname",
        "name",
        "mrn",
        "group",
    }
)
_AGE_NAMES = frozenset({"age", "patientage", "ageyears"})
AGE_BANDS = ("<18", "18-39", "40-59", "60-79", "80+")
_FIRST, _HEAD = 64 * 1024, 4 * MIB  # DICOM header reads: the first 64 KiB, else 4 MiB
_LISTED = 64  # files whose headers are read to list the DICOM attributes present


class SubgroupError(ValueError):
    """An attribute that cannot give a subgroup table; the message is one sentence."""


def _percent(value: float | None, ci: tuple[float, float] | None, missing: str) -> str:
    if value is None:
        return missing
    return f"{100 * value:.0f}%" + (f" [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else "")


def _decimal(value: float | None, ci: tuple[float, float] | None, missing: str) -> str:
    if value is None:
        return missing
    return f"{value:.3f}" + (f" [{ci[0]:.3f}-{ci[1]:.3f}]" if ci else "")


@dataclass(frozen=True)
class SubgroupRow:
    """The metrics of one value of an attribute (None where they cannot be computed)."""

    value: str
    n: int
    patients: int | None
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    balanced_accuracy: float | None
    auc: float | None
    auc_ci: tuple[float, float] | None
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    lags: bool = False
    note: str = ""
    rest_accuracy: float | None = None  # accuracy of every other example
    p_value: float | None = None  # Holm-adjusted two-proportion test against the rest

    def shown(self, missing: str = "–") -> tuple[str, str, str, str]:
        """Accuracy, ROC AUC, sensitivity and specificity as tables show them, each with its
        interval ('71% [60-80]', '0.912 [0.871-0.941]'; ``missing`` where there is no value)."""
        return (
            _percent(self.accuracy, self.accuracy_ci, missing),
            _decimal(self.auc, self.auc_ci, missing),
            _percent(self.sensitivity, self.sensitivity_ci, missing),
            _percent(self.specificity, self.specificity_ci, missing),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples as lists, NaN as null)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = [_num(x) for x in v] if isinstance(v, tuple) else _num(v)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubgroupRow:
        """The inverse of :meth:`to_dict`."""
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            v = d.get(f.name)
            kw[f.name] = tuple(float(x) for x in v) if isinstance(v, list) else v
        return cls(**kw)


@dataclass(frozen=True)
class SubgroupTable:
    """The rows of one attribute, and the sentences of the rows that lag."""

    attribute: str
    source: str
    rows: tuple[SubgroupRow, ...]
    flagged: tuple[str, ...] = ()
    positive: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The evaluation json's schema: attribute, source, rows, flagged (plus positive)."""
        return {
            "attribute": self.attribute,
            "source": self.source,
            "rows": [r.to_dict() for r in self.rows],
            "flagged": list(self.flagged),
            "positive": self.positive,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubgroupTable:
        """The inverse of :meth:`to_dict`."""
        return cls(
            attribute=str(d["attribute"]),
            source=str(d["source"]),
            rows=tuple(SubgroupRow.from_dict(r) for r in d["rows"]),
            flagged=tuple(str(s) for s in d.get("flagged", ())),
            positive=d.get("positive"),
            notes=tuple(str(s) for s in d.get("notes", ())),
        )


# -- values -------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def age_band(text: str) -> str:
    """The age band of an age: a DICOM Age String ("045Y", "006M", "010W", "003D") or a number of
    years ("45", "45.5"); :data:`MISSING` when it is neither."""
    text = text.strip().upper()
    m = re.fullmatch(r"(\d{1,3})([DWMY])", text)
    if m:
        per_year = {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[m.group(2)]
        years = int(m.group(1)) / per_year
    else:
        try:
            years = float(text) if len(text) <= 8 else math.nan
        except ValueError:
            return MISSING
    if not 0 <= years < 150:
        return MISSING
    if years < 18:
        return "<18"
    if years >= 80:
        return "80+"
    return next(b for b, top in zip(AGE_BANDS[1:4], (40, 60, 80), strict=True) if years < top)


def _clean(value: Any) -> str | None:
    """A header value as a table shows it: text, cut, None when empty or with control characters."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return None
    return text[:MAX_ATTRIBUTE]


def dicom_attributes(
    path: str,
    keywords: Sequence[str] = tuple(DICOM_ATTRIBUTES),
    tags: Mapping[str, int] = DICOM_ATTRIBUTES,
) -> dict[str, str]:
    """The values of ``keywords`` (of ``tags``: keyword -> tag) in the header of the DICOM file at
    ``path``: the first 64 KiB, or 4 MiB when the header is longer; a value cut off by the read is
    left out. Empty for a file that is not DICOM or cannot be read; never raises."""
    for size in (_FIRST, _HEAD):
        try:
            head = read_head(path, size)
        except OSError:
            return {}
        if not is_dicom(head):
            return {}
        try:
            ds = parse_header(head, stop_before_pixels=True)
            last = max(ds.keys(), default=0)
        except Exception:  # a hostile or cut header breaks the parser in many ways
            continue
        whole = len(head) < size
        out: dict[str, str] = {}
        for keyword in keywords:
            tag = tags[keyword]
            if not (whole or last > tag):
                continue
            try:
                value = _clean(ds.get(keyword))
            except Exception:  # a value that does not convert
                value = None
            if value is not None:
                out[keyword] = value
        return out
    return {}


def _split_files(run: RunDir, split: str) -> tuple[list[str | None], tuple[str, ...]]:
    """The absolute path of each example of ``split`` (None for one that is not a file, e.g. a
    text) and their digests, in splits.json order."""
    data = split_data(run)
    samples = getattr(data, split, ())
    paths: list[str | None] = []
    for s in samples:
        p = getattr(s, "path", None)
        if isinstance(p, str) and "digest" in {f.name for f in dataclasses.fields(s)}:
            paths.append(os.path.normpath(p if os.path.isabs(p) else os.path.join(data.root, p)))
        else:
            paths.append(None)
    return paths, tuple(getattr(s, "digest", "") for s in samples)


def _manifest_values(run: RunDir) -> tuple[tuple[str, ...], dict[str, dict[str, str]]]:
    """The run's manifest attribute columns and each listed file's values (none without one)."""
    try:
        source = run.config().data.path
    except Exception:  # a damaged config: no manifest to read
        return (), {}
    if not source or not is_image_manifest(source):
        return (), {}
    try:
        manifest = read_manifest(source)
    except DatasetError:
        return (), {}
    return manifest.attribute_columns, {
        os.path.normpath(r.path): dict(r.attributes) for r in manifest.rows
    }


def subgroup_attributes(run: RunDir, split: str = "val") -> dict[str, str]:
    """The attributes ``split`` of ``run`` can be broken down by, name -> source: the manifest's
    extra columns (not those that identify a patient), then the DICOM tags of
    :data:`DICOM_ATTRIBUTES` that the first files' headers hold. Empty for a plain folder."""
    out: dict[str, str] = {}
    columns, _ = _manifest_values(run)
    for c in columns:
        if _key(c) not in IDENTIFYING:
            out[c] = MANIFEST
    try:
        paths, _ = _split_files(run, split)
    except (PredictionError, OSError, ValueError):
        return out
    present: set[str] = set()
    for p in [p for p in paths if p is not None][:_LISTED]:
        present.update(dicom_attributes(p))
    for keyword in DICOM_ATTRIBUTES:
        if keyword in present and keyword not in out:
            out[keyword] = DICOM
    return out


def resolve_attribute(name: str, available: dict[str, str]) -> tuple[str, str]:
    """(attribute as known, source) for the name a user typed (any case); SubgroupError, one
    sentence, for a name that identifies a patient or is not available."""
    key = _key(name)
    if key in IDENTIFYING or any(key == _key(k) for k in ("PatientName", "PatientID")):
        raise SubgroupError(
            f"'{name[:MAX_ATTRIBUTE]}' identifies a patient, so it is never a subgroup attribute; "
            "choose one such as sex, age, site, manufacturer or modality."
        )
    for known, source in available.items():
        if _key(known) == key:
            return known, source
    listed = ", ".join(available) if available else "none (a plain folder of images)"
    raise SubgroupError(
        f"'{name[:MAX_ATTRIBUTE]}' is not an attribute of this run's examples; the available "
        f"ones are: {listed}."
    )


def attribute_values(
    run: RunDir, preds: SplitPredictions, attribute: str, source: str, task: Task | None = None
) -> list[str]:
    """The value of ``attribute`` for each example of ``preds`` (:data:`MISSING` where it has
    none); age attributes as age bands. SubgroupError when the predictions no longer match the
    run's split."""
    task = as_task(task)
    paths, digests = _split_files(run, preds.split)
    if tuple(digests) != tuple(preds.digests):
        raise SubgroupError(
            f"The saved predictions of run {run.run_id} no longer match its {preds.split} split; "
            "evaluate it again."
        )
    raw: list[str | None]
    if source == MANIFEST:
        _, values = _manifest_values(run)
        raw = [values.get(p, {}).get(attribute) if p else None for p in paths]
    else:
        raw = []
        for i, p in enumerate(paths):
            if i % 100 == 0:
                task.check_cancelled()
                task.report(i, len(paths), f"Reading {attribute} from the DICOM headers")
            raw.append(dicom_attributes(p, (attribute,)).get(attribute) if p else None)
    age = _key(attribute) in _AGE_NAMES
    return [MISSING if v is None else (age_band(v) if age else v) for v in raw]


# -- the table ----------------------------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (as statsmodels' multipletests(method="holm"))."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def subgroup_table(
    preds: SplitPredictions,
    values: Sequence[str],
    attribute: str,
    source: str,
    *,
    groups: Sequence[str] | None = None,
    positive: str | None = None,
) -> SubgroupTable:
    """The subgroup table of ``preds`` by ``values`` (one per example). ``groups`` (a patient
    per example) counts patients and is what the bootstrap resamples; ``positive``: see
    :func:`engine.evaluation.report.evaluate`. SubgroupError for more than MAX_VALUES values."""
    from scipy.stats import fisher_exact

    if len(values) != preds.n:
        raise SubgroupError("A subgroup table needs one value per example.")
    counts = Counter(values)
    if len(counts) > MAX_VALUES:
        raise SubgroupError(
            f"'{attribute}' has {len(counts):,} different values among {preds.n:,} examples, "
            f"more than the {MAX_VALUES} a subgroup table shows; choose an attribute such as sex, "
            "age or site, or group its values into a few in the manifest."
        )
    small = {v for v, c in counts.items() if c < MIN_IMAGES}
    pooled = [OTHER if v in small and len(small) > 1 else v for v in values]
    order = sorted(set(pooled), key=lambda v: (v in (OTHER, MISSING), -pooled.count(v), v))
    arr = np.asarray(pooled, dtype=object)
    correct = preds.preds == preds.labels
    pos = positive_class(preds, positive)
    rows: list[SubgroupRow] = []
    tests: list[tuple[int, float]] = []
    rest_cis: dict[int, tuple[float, float] | None] = {}
    for value in order:
        mask = arr == value
        idx = np.flatnonzero(mask)
        sub = _subset(preds, idx)
        sub_groups = [groups[int(i)] for i in idx] if groups is not None else None
        ev = evaluate(sub, positive=pos, groups=sub_groups)
        k, n = int(correct[idx].sum()), len(idx)
        rest_n = preds.n - n
        rest = float(correct[~mask].mean()) if rest_n else None
        judged = n >= MIN_IMAGES and value != OTHER and rest is not None
        p = None
        if judged:
            table = [[k, n - k], [int(correct[~mask].sum()), rest_n - int(correct[~mask].sum())]]
            p = float(fisher_exact(table).pvalue)
            rest_cis[len(rows)] = _ci(wilson(table[1][0], rest_n))
            tests.append((len(rows), p))
        note = ""
        if n < MIN_IMAGES:
            note = TOO_FEW
        elif value == OTHER:
            note = f"pools {len(small)} values with fewer than {MIN_IMAGES} images each"
        rows.append(_row(value, ev, pos, sub_groups, k, n, rest, p, note))
    adjusted = holm([p for _, p in tests])
    flagged = []
    for (i, _), p_adj in zip(tests, adjusted, strict=True):
        row = rows[i]
        below = row.rest_accuracy is not None and row.accuracy < row.rest_accuracy
        rest_ci = rest_cis[i]
        apart = (
            row.accuracy_ci is not None and rest_ci is not None and row.accuracy_ci[1] < rest_ci[0]
        )
        lags = below and (apart or p_adj < ALPHA)
        sentence = lag_sentence(attribute, row) if lags else ""
        rows[i] = dataclasses.replace(row, p_value=p_adj, lags=lags, note=sentence or row.note)
        if lags:
            flagged.append(sentence)
    return SubgroupTable(attribute, source, tuple(rows), tuple(flagged), pos)


def lag_sentence(attribute: str, row: SubgroupRow) -> str:
    """'Site B: accuracy 71% (95% CI 60-80%) against 90% for the rest: lags.'"""
    name = f"{attribute} {row.value}"
    name = name[:1].upper() + name[1:]
    ci = (
        f" (95% CI {_pct(row.accuracy_ci[0])}-{_pct(row.accuracy_ci[1])}%)"
        if row.accuracy_ci
        else ""
    )
    return (
        f"{name}: accuracy {_pct(row.accuracy)}%{ci} against {_pct(row.rest_accuracy or 0)}% "
        "for the rest: lags."
    )


def _pct(v: float) -> str:
    return f"{100 * v:.0f}"


def _subset(preds: SplitPredictions, idx: np.ndarray) -> SplitPredictions:
    return dataclasses.replace(
        preds,
        refs=tuple(preds.refs[i] for i in idx),
        digests=tuple(preds.digests[i] for i in idx),
        labels=preds.labels[idx],
        probs=preds.probs[idx],
    )


def _ci(interval: Interval | None) -> tuple[float, float] | None:
    if interval is None or not interval.measured:
        return None
    return (float(interval.low), float(interval.high))


def _num(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _num(v.item())
    return v


def _finite(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _row(
    value: str,
    ev: Evaluation,
    pos: str | None,
    groups: Sequence[str] | None,
    k: int,
    n: int,
    rest: float | None,
    p: float | None,
    note: str,
) -> SubgroupRow:
    iv = ev.intervals
    assert iv is not None  # evaluate() always computes them
    if pos is not None:
        auc = _finite(ev.roc[pos].auc)
        auc_ci = _ci(iv.roc_auc.get(pos)) if auc is not None else None
    else:
        aucs = [c.auc for c in ev.roc.values() if not math.isnan(c.auc)]
        auc = float(np.mean(aucs)) if aucs else None
        auc_ci = _ci(iv.macro_roc_auc) if auc is not None else None
    sens = spec = None
    sens_ci = spec_ci = None
    if pos is not None and ev.operating is not None and iv.operating is not None:
        o = ev.operating
        if o.tp + o.fn:
            sens, sens_ci = o.sensitivity, _ci(iv.operating.sensitivity)
        if o.tn + o.fp:
            spec, spec_ci = o.specificity, _ci(iv.operating.specificity)
    return SubgroupRow(
        value=value,
        n=n,
        patients=len(set(groups)) if groups is not None else None,
        accuracy=k / n if n else 0.0,
        accuracy_ci=_ci(iv.accuracy),
        balanced_accuracy=_finite(ev.balanced_accuracy),
        auc=auc,
        auc_ci=auc_ci,
        sensitivity=sens,
        sensitivity_ci=sens_ci,
        specificity=spec,
        specificity_ci=spec_ci,
        note=note,
        rest_accuracy=rest,
        p_value=p,
    )


# -- a run --------------------------------------------------------------------------------------


def run_subgroups(
    run: RunDir,
    split: str,
    attributes: Sequence[str],
    *,
    positive: str | None = None,
    task: Task | None = None,
    save: bool = True,
) -> list[SubgroupTable]:
    """The subgroup tables of the saved predictions of ``split`` by each of ``attributes``
    (names as :func:`resolve_attribute` takes them), saved into the split's evaluation json
    (``"subgroups"``, replacing tables of the same attributes) when ``save`` and one exists.
    SubgroupError (one sentence) for an attribute that cannot be used or no predictions."""
    available = subgroup_attributes(run, split)
    resolved = [resolve_attribute(a, available) for a in attributes]
    preds = load_predictions(run, split)
    if preds is None:
        raise SubgroupError(
            f"Run {run.run_id} has no saved predictions of its {split} split; evaluate it first."
        )
    saved = load_evaluation(run, split)
    if positive is None and saved is not None:
        positive = saved.positive
    groups = split_groups(run, preds)
    tables = [
        subgroup_table(
            preds,
            attribute_values(run, preds, name, source, task),
            name,
            source,
            groups=groups,
            positive=positive,
        )
        for name, source in resolved
    ]
    if save and saved is not None:
        save_subgroups(run, saved, tables)
    return tables


def save_subgroups(run: RunDir, ev: Evaluation, tables: Sequence[SubgroupTable]) -> Evaluation:
    """``ev`` with ``tables`` in its subgroups (replacing those of the same attribute), written
    to its evaluation json."""
    names = {t.attribute for t in tables}
    kept = [t for t in ev.subgroups if t.get("attribute") not in names]
    result = dataclasses.replace(ev, subgroups=tuple(kept + [t.to_dict() for t in tables]))
    write_json_atomic(evaluation_path(run, ev.split), result.to_dict())
    return result


def saved_subgroups(ev: Evaluation) -> list[SubgroupTable]:
    """The subgroup tables saved with ``ev`` (damaged ones left out)."""
    out = []
    for d in ev.subgroups:
        try:
            out.append(SubgroupTable.from_dict(d))
        except (KeyError, TypeError, ValueError):
            continue
    return out


__all__ = [
    "DICOM_ATTRIBUTES",
    "SubgroupError",
    "SubgroupRow",
    "SubgroupTable",
    "age_band",
    "attribute_values",
    "dicom_attributes",
    "holm",
    "resolve_attribute",
    "run_subgroups",
    "save_subgroups",
    "saved_subgroups",
    "subgroup_attributes",
    "subgroup_table",
]
