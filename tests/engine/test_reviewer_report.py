"""A report a reviewer can read: the HTML/PDF report and the model card follow the CLAIM 2024 /
TRIPOD+AI items the app can know, render typed text inert, and carry no patient identifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from dicom_synth import disc_slice, write_dicom
from PIL import Image

from engine.config import STUDY_TEXT_MAX, RunConfig, clean_study_text
from engine.evaluation.predictions import SplitPredictions
from engine.evaluation.report import evaluate, evaluation_path, load_evaluation
from engine.evaluation.reviewer import (
    _dates,
    reviewer_report,
    section_html,
    sections_html,
    sections_markdown,
)
from engine.runs import RunDir

BACKBONE = "timm:test_efficientnet"
HOSTILE_USE = "<script>alert(1)</script> triage [click](javascript:alert(1)) | x"
REFERENCE = "Biopsy result within 30 days"
# Planted identifiers of the generated DICOMs: none may appear in a report or card.
PLANTED = ("Planted^Secret", "PLANTID", "19450607", "Secret")
TITLES = (
    "1 Intended use and reference standard",
    "2 Data",
    "3 Preprocessing",
    "4 Split method",
    "5 Model and training",
    "6 Performance with 95% intervals",
    "7 Calibration",
    "8 Subgroups",
    "9 Failure gallery",
    "10 Limitations",
    "11 Data fingerprint",
)


# -- the study text -------------------------------------------------------------------------------


def test_study_text_is_kept_plain_and_capped_and_old_configs_load():
    assert RunConfig.from_dict({}).study.intended_use == ""  # a config from before the section
    text = "a\x1b[31m\u202eb\x00\tc\nd" + "x" * (3 * STUDY_TEXT_MAX)
    cleaned = clean_study_text(text)
    assert cleaned.startswith("a[31mb c\nd") and len(cleaned) == STUDY_TEXT_MAX
    config = RunConfig.from_dict({"study": {"intended_use": text, "reference_standard": " r "}})
    assert config.study.intended_use == cleaned and config.study.reference_standard == "r"
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again.study == config.study


def test_refit_train_flags_set_the_study(tmp_path):
    from engine.cli.app import build_parser
    from engine.cli.config_flags import config_from_args

    (tmp_path / "d" / "a").mkdir(parents=True)
    args = build_parser().parse_args(
        ["train", str(tmp_path / "d"), "--intended-use", "triage", "--reference-standard", "CT"]
    )
    config = config_from_args(args)
    assert (config.study.intended_use, config.study.reference_standard) == ("triage", "CT")


# -- a run made by hand (fast): a plain image folder, no groups, no DICOM -------------------------


@pytest.fixture(scope="module", autouse=True)
def _catalog() -> None:
    """The heavy imports once per module: timm (the backbone's preprocessing, the report's
    section 3) and scikit-learn (the evaluation of the hand-made runs)."""
    import sklearn.metrics  # noqa: F401

    from engine.models import resolve_entry

    resolve_entry(BACKBONE)


def _hand_run(tmp_path: Path, *, study: dict | None = None, subgroups: list | None = None):
    """A run folder as training leaves it, written directly: config, splits, summary, and a
    saved evaluation with its predictions (some confident mistakes)."""
    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    data = tmp_path / "home" / "alice" / "photos"
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for split, n in (("train", 20), ("val", 30)):
        for i in range(n):
            f = data / f"{split}{i}.png"
            f.parent.mkdir(parents=True, exist_ok=True)
            if split == "val" and i < 3:  # the three sure mistakes: real pictures
                Image.new("RGB", (64, 48), (40 * i, 90, 200)).save(f)
            else:
                f.write_bytes(b"not really a png")
            rows[split].append([str(f), i % 2, f"{split}digest{i:04d}"])
    config = RunConfig.from_dict(
        {"data": {"path": str(data)}, "study": study or {}, "model": {"backbone": BACKBONE}}
    )
    run.config_path.write_text(config.to_json())
    run.splits_path.write_text(
        json.dumps({"root": str(data), "modality": "image", "classes": ["cat", "dog"], **rows})
    )
    run.summary_path.write_text(json.dumps({"best_epoch": 2, "epochs_done": 3}))
    labels = np.array([r[1] for r in rows["val"]])
    logits = rng.normal(size=(30, 2))
    logits[np.arange(30), labels] += 1.0
    logits[:3, :] = [[0.0, 6.0] if lab == 0 else [6.0, 0.0] for lab in labels[:3]]  # sure, wrong
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    preds = SplitPredictions(
        run_id="r1",
        split="val",
        classes=("cat", "dog"),
        refs=tuple(r[0] for r in rows["val"]),
        digests=tuple(r[2] for r in rows["val"]),
        labels=labels,
        probs=probs,
        checkpoint="best",
        modality="image",
    )
    from engine.evaluation.predictions import predictions_path

    predictions_path(run, "val").parent.mkdir(parents=True, exist_ok=True)
    preds.save(predictions_path(run, "val"))
    ev = evaluate(preds)
    saved = ev.to_dict()
    if subgroups is not None:
        saved["subgroups"] = subgroups
    evaluation_path(run, "val").parent.mkdir(parents=True, exist_ok=True)
    evaluation_path(run, "val").write_text(json.dumps(saved))
    return run, load_evaluation(run, "val")


def test_a_plain_image_folder_run_has_every_section_in_not_known_words(tmp_path):
    run, ev = _hand_run(tmp_path)
    review = reviewer_report(run, ev)
    assert [f"{s.number} {s.title}" for s in review.sections] == list(TITLES)
    text = sections_html(review)
    for words in (
        "not given — to be completed by the authors",  # no intended use typed
        "not known (no patient groups were given)",
        "not applicable (no DICOM files)",
        "image by image, not by patient",
        "No subgroup analysis was run (`refit evaluate RUN --subgroup ATTRIBUTE`).",
        "not known to the app — to be completed by the authors",  # in the checklist
        "95% CI",
    ):
        assert words in text, words
    # the folder's name, never its full path (which names the user)
    assert "the dataset folder &#x27;photos&#x27;" in text and "alice" not in text
    # the three planted confident mistakes lead the gallery, named by digest, not file name
    assert [f.digest for f in review.failures[:3]] == [
        "valdigest0000",
        "valdigest0001",
        "valdigest0002",
    ]
    assert "valdigest0000" in text and "val0.png" not in text
    months = re.search(r"files modified (\d{4}-\d{2}) to (\d{4}-\d{2})", text)
    assert months is not None
    assert f"{len(review.checklist)}" and "Checklist (CLAIM 2024 / TRIPOD+AI)" in text
    md = sections_markdown(review)
    assert all(f"## {t}" in md for t in TITLES)


def test_a_run_without_evaluation_or_readable_files_still_reports(tmp_path):
    run = RunDir(tmp_path / "empty")
    run.path.mkdir()
    (run.path / "splits.json").write_text("{broken")
    review = reviewer_report(run, None)
    assert len(review.sections) == 11
    assert "Not evaluated yet." in sections_html(review)


def test_hostile_study_dates_are_left_out_of_the_reports_dates(tmp_path):
    # "²²²²²²²²" (bytes 0xB2, Latin-1) passed str.isdigit and then broke int(): no report.
    hostile = ("2019-13-99", "19450607" + "9" * 65536, "\u00b2" * 8, "20191399", "20190613")
    files = []
    for n, date in enumerate(hostile):
        path = tmp_path / f"s{n}.dcm"
        write_dicom(path, disc_slice(n, disc=True), StudyDate=date)
        files.append([str(path), 0])
    splits = {"train": files, "val": [[f"{files[0][0]}#frame=1", 0], 7, None]}
    said = _dates(splits)
    assert said.startswith("studies from 2019-06 to 2019-06 (the DICOM study dates of 1 file)")


@pytest.mark.parametrize(
    ("splits", "summary"),
    [
        ('{"train": 5, "val": {"a": 1}, "test": "x"}', "{}"),
        ('{"train": [["a.png", 0]], "classes": 5, "root": 7}', '{"classes": 3}'),
        ("[1, 2]", "[3]"),
    ],
)
def test_a_splits_or_summary_file_edited_into_other_types_still_reports(tmp_path, splits, summary):
    run = RunDir(tmp_path / "edited")
    run.path.mkdir()
    (run.path / "splits.json").write_text(splits)
    (run.path / "summary.json").write_text(summary)
    review = reviewer_report(run, None)
    assert len(review.sections) == 11
    assert "not known (the files are no longer where the run found them)" in sections_html(review)


def test_typed_study_text_renders_inert_in_html_and_markdown(tmp_path):
    run, ev = _hand_run(
        tmp_path, study={"intended_use": HOSTILE_USE, "reference_standard": REFERENCE}
    )
    review = reviewer_report(run, ev)
    page = sections_html(review)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert REFERENCE in page
    md = sections_markdown(review)
    # brackets escaped: no link; the pipe escaped: no table cell; the tag as text
    assert "<script>" not in md and "[click](javascript:" not in md
    assert "triage \\[click\\](javascript:alert(1)) \\| x" in md
    assert "- Intended use: &lt;script&gt;" in md


SUBGROUPS = [
    {
        "attribute": "Manufacturer",
        "source": "dicom",
        "rows": [
            {
                "value": "Acme <b>CT</b>",
                "n": 40,
                "patients": 12,
                "accuracy": 0.9,
                "accuracy_ci": [0.8, 0.95],
                "balanced_accuracy": 0.88,
                "auc": 0.93,
                "auc_ci": [0.85, 0.98],
                "sensitivity": 0.9,
                "sensitivity_ci": [0.7, 0.97],
                "specificity": 0.9,
                "specificity_ci": [0.75, 0.96],
                "lags": False,
                "note": "",
            },
            {
                "value": "OldScan",
                "n": 10,
                "patients": 3,
                "accuracy": 0.5,
                "accuracy_ci": [0.24, 0.76],
                "balanced_accuracy": 0.5,
                "auc": None,
                "auc_ci": None,
                "sensitivity": 0.4,
                "sensitivity_ci": [0.1, 0.8],
                "specificity": 0.6,
                "specificity_ci": [0.2, 0.9],
                "lags": True,
                "note": "few patients",
            },
        ],
        "flagged": ["OldScan lags the rest: accuracy 50.0% vs 90.0%."],
    },
    {"attribute": "PatientID", "source": "dicom", "rows": [{"value": "PLANTID-1", "n": 3}]},
    "not a dict",
]


def test_subgroups_render_as_a_table_with_the_lag_flag(tmp_path):
    run, ev = _hand_run(tmp_path, subgroups=SUBGROUPS)
    review = reviewer_report(run, ev)
    (eight,) = [s for s in review.sections if s.number == 8]
    page = section_html(eight)
    assert "By Manufacturer (dicom)" in page
    assert "Acme &lt;b&gt;CT&lt;/b&gt;" in page and "<b>CT</b>" not in page
    assert "90.0% (80.0-95.0%)" in page and "0.930 (0.850-0.980)" in page
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    old = next(r for r in rows if "OldScan" in r)
    assert "LAGS the rest; few patients" in old and "50.0% (24.0-76.0%)" in old
    assert "OldScan lags the rest" in page
    assert "PLANTID" not in page and "withheld" in page  # an identifying attribute
    md = sections_markdown(review)
    assert "| OldScan | 10 | 3 |" in md
    checklist = dict(review.checklist)
    assert checklist["Subgroup and fairness analysis (CLAIM; TRIPOD+AI fairness)"] == "section 8"


# -- a run trained on generated DICOMs, grouped by patient (slow) ----------------------------------


def _dicom_patients(root: Path, patients_per_class: int = 6, images_each: int = 2) -> Path:
    n = 0
    for label, disc in (("disc", True), ("none", False)):
        for _ in range(patients_per_class):
            for i in range(images_each):
                write_dicom(
                    root / label / f"s{n:03d}_{i}.dcm",
                    disc_slice(n * 10 + i, disc=disc),
                    bits_stored=12,
                    slope=1.0,
                    intercept=-1024.0,
                    window=(40.0, 400.0),
                    PatientName=f"Planted^Secret{n}",
                    PatientID=f"PLANTID{n:04d}",
                    PatientBirthDate="19450607",
                    StudyDate=f"2019{n % 12 + 1:02d}{14 + i:02d}",
                    **({"PatientIdentityRemoved": "YES"} if n % 2 else {}),
                )
            n += 1
    return root


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory):
    from engine.cli import main
    from engine.runs import Workspace

    tmp = tmp_path_factory.mktemp("reviewer")
    root = _dicom_patients(tmp / "scans")
    ws = str(tmp / "ws")
    argv = ["--workspace", ws, "train", str(root), "--backbone", BACKBONE, "--no-pretrained"]
    argv += ["--workers", "0", "--method", "linear-probe", "--quiet", "--group-by", "dicom"]
    argv += ["--val-fraction", "0.4", "--intended-use", HOSTILE_USE]
    argv += ["--reference-standard", REFERENCE]
    assert main(argv) == 0
    (info,) = Workspace(ws).list_runs()
    return Workspace(ws).open_run(info.run_id)


def _no_identifiers(text: str) -> None:
    for planted in PLANTED:
        assert planted not in text, planted


@pytest.mark.slow
def test_a_dicom_run_grouped_by_patient_reports_every_item(dicom_run, tmp_path):
    run = dicom_run
    ev = load_evaluation(run, "val")
    assert ev is not None
    review = reviewer_report(run, ev)
    page = sections_html(review)
    assert [f"{s.number} {s.title}" for s in review.sections] == list(TITLES)
    assert "&lt;script&gt;" in page and "<script>" not in page and REFERENCE in page
    patients = run.summary()["patients"]
    for key, word in (("train", "train"), ("val", "validation")):
        row = f"<td>{word}</td><td>{patients[key]['images']}</td><td>{patients[key]['patients']}"
        assert row in page, row
    assert "grouped by patient (the DICOM PatientID" in page
    assert "12 (grouped by patient)" in page
    assert "12 of 24 DICOM files declare PatientIdentityRemoved=YES." in page
    assert "12 of 24 DICOM files do not declare themselves de-identified" in page
    assert "DICOM window</th><td>file: each file&#x27;s own VOI LUT" in page
    assert "(95% CI " in page
    # the app made the split; the run recorded what the scan's leakage checks found
    assert "Leakage checks</th><td>the app made the split: " in page
    # the studies' own dates, to the month (never the day of a visit)
    assert "studies from 2019-01 to 2019-12 (the DICOM study dates of 24 files)" in page
    assert "20190114" not in page and "2019-01-14" not in page
    _no_identifiers(page)
    _no_identifiers(sections_markdown(review))
    assert str(tmp_path) not in page

    from engine.export import write_model_card

    card = write_model_card(run, tmp_path / "card").read_text()
    for title in TITLES:
        assert f"## {title}" in card, title
    assert "## Checklist (CLAIM 2024 / TRIPOD+AI)" in card and "## Validation metrics" in card
    # the config is a fenced JSON block (literal text); the Markdown around it escapes the text
    before, fenced, after = re.split(r"^```(?:json)?$", card, flags=re.MULTILINE)
    assert "<script>" not in before + after and "\\[click\\]" in before
    assert json.loads(fenced)["study"]["intended_use"] == HOSTILE_USE
    assert "Dataset: `scans`" in card
    assert "12 of 24 DICOM files declare PatientIdentityRemoved=YES." in card
    _no_identifiers(card)


@pytest.mark.slow
def test_the_desktop_report_has_the_sections_and_renders_as_pdf(dicom_run, tmp_path, qtbot):
    from PySide6.QtGui import QImage

    from desktop.results.results_report import build_report
    from engine import run_facts

    ev = load_evaluation(dicom_run, "val")
    pic = QImage(40, 30, QImage.Format.Format_RGB32)
    pic.fill(0x3366AA)
    report = build_report(run_facts(dicom_run), ev, images={"reliability": pic, "roc": pic})
    page = report.html()
    positions = [page.index(f"<h2>{t}</h2>") for t in TITLES]
    assert positions == sorted(positions)
    assert page.index("img-reliability") if False else "data:image/png;base64," in page
    calibration = page.split("<h2>7 Calibration</h2>")[1].split("<h2>")[0]
    assert '<img src="data:image/png' in calibration
    assert "<script>" not in page.split("<body>")[1]
    failures = reviewer_report(dicom_run, ev).failures  # each a thumbnail (the files are there)
    assert len(re.findall(r"<br>#\d+</td>", page)) == len(failures)
    _no_identifiers(page)
    html_file = report.save(tmp_path / "report.html")
    pdf = report.save(tmp_path / "report.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 2000
    _no_identifiers(html_file.read_text())


def test_the_train_pages_study_fields_edit_the_config(qtbot):
    from desktop.state import ConfigState
    from desktop.train.study_form import StudyForm

    state = ConfigState(RunConfig())
    form = StudyForm(state)
    qtbot.addWidget(form)
    edit = form.editors["intended_use"]
    edit.setText("triage\x07 of <b>CT</b>")
    edit.editingFinished.emit()
    assert state.config.study.intended_use == "triage of <b>CT</b>"  # cleaned by the engine
    state.update("study", reference_standard="biopsy")
    assert form.editors["reference_standard"].text() == "biopsy"


def test_the_desktop_report_shows_the_confident_mistakes_as_thumbnails(tmp_path, qtbot):
    from desktop.results.results_report import build_report
    from engine import RunFacts

    run, ev = _hand_run(tmp_path)
    facts = RunFacts(
        path=run.path,
        run_id="r1",
        label="r1",
        backbone=BACKBONE,
        method="linear-probe",
        modality="image",
        status="completed",
        classes=("cat", "dog"),
        val_size=30,
        test_size=0,
    )
    page = build_report(facts, ev).html()
    gallery = page.split("<h2>9 Failure gallery</h2>")[1].split("<h2>")[0]
    # the three sure mistakes have real pictures; the other files are not images: left out
    assert re.findall(r"<br>#(\d+)</td>", gallery) == ["1", "2", "3"]
    assert gallery.count("data:image/png;base64,") == 3
    assert "alice" not in page and "val0.png" not in page


def test_the_leakage_checks_are_reported_from_the_runs_record():
    from engine.evaluation.reviewer import _leakage

    found = _leakage(
        {
            "split_folders": 1,
            "patients_across": 2,
            "near_duplicates_across": 1,
            "near_duplicates_kept_together": 0,
            "copies_left_out": 3,
        }
    )
    assert found == (
        "checked by the scan before training: 2 patients with images in two split folders, "
        "1 pair of near-duplicate images across them, 3 exact copies left out of a second "
        "split; the held-out results are optimistic until they are moved"
    )
    made = _leakage({"split_folders": 0, "near_duplicates_kept_together": 4})
    assert made.startswith("the app made the split: 4 pairs of near-duplicate images kept")
    # a summary edited by someone else: no count is believed that is not a whole number
    odd = _leakage({"split_folders": 1, "patients_across": "9; <b>", "copies_left_out": -5})
    assert "no patient with images" in odd and "no exact copy" in odd and "<b>" not in odd
    assert "not recorded in this run" in _leakage(None)
