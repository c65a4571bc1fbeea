"""Subgroup tables: metrics with intervals per value of a manifest column or a DICOM tag, and the
flag on a subgroup that lags the rest (engine/evaluation/subgroups.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import DataConfig, RunConfig
from engine.data.manifest import MAX_ATTRIBUTE, MAX_ATTRIBUTES, read_manifest
from engine.evaluation.intervals import bootstrap_auc, wilson
from engine.evaluation.predictions import SplitPredictions, predictions_path
from engine.evaluation.report import load_evaluation, save_evaluation
from engine.evaluation.subgroups import (
    MAX_VALUES,
    MISSING,
    OTHER,
    TOO_FEW,
    SubgroupError,
    age_band,
    holm,
    resolve_attribute,
    run_subgroups,
    subgroup_attributes,
    subgroup_table,
)
from engine.runs import RunDir

CLASSES = ("healthy", "sick")


def _preds(labels, probs, refs=None, digests=None) -> SplitPredictions:
    n = len(labels)
    return SplitPredictions(
        run_id="r1",
        split="val",
        classes=CLASSES,
        refs=tuple(refs or (f"{i}.png" for i in range(n))),
        digests=tuple(digests or (f"d{i}" for i in range(n))),
        labels=np.asarray(labels, dtype=np.int64),
        probs=np.asarray(probs, dtype=np.float32),
        checkpoint="best",
        modality="image",
    )


def _sited(n_a: int = 120, n_b: int = 60, wrong_b: float = 0.4, seed: int = 0):
    """Predictions right 95 % of the time at site A and (1 - wrong_b) at site B (noisy labels)."""
    rng = np.random.default_rng(seed)
    sites = ["A"] * n_a + ["B"] * n_b
    labels = rng.integers(0, 2, n_a + n_b)
    wrong = np.r_[rng.random(n_a) < 0.05, rng.random(n_b) < wrong_b]
    called = np.where(wrong, 1 - labels, labels)
    p_sick = np.clip(np.where(called == 1, 0.8, 0.2) + rng.normal(0, 0.1, len(labels)), 0, 1)
    probs = np.stack([1 - p_sick, p_sick], axis=1)
    return labels, probs, sites


# -- the table ----------------------------------------------------------------------------------


def test_a_noisier_site_is_flagged_and_the_other_is_not():
    labels, probs, sites = _sited()
    table = subgroup_table(_preds(labels, probs), sites, "site", "manifest")
    rows = {r.value: r for r in table.rows}
    assert rows["B"].lags and not rows["A"].lags
    assert len(table.flagged) == 1
    sentence = table.flagged[0]
    assert sentence.startswith("Site B: accuracy ") and sentence.endswith("for the rest: lags.")
    b = rows["B"]
    assert f"accuracy {100 * b.accuracy:.0f}% (95% CI {100 * b.accuracy_ci[0]:.0f}-" in sentence
    assert f"against {100 * rows['A'].accuracy:.0f}% for the rest" in sentence
    assert b.note == sentence
    assert b.rest_accuracy == pytest.approx(rows["A"].accuracy)


def test_sites_that_do_equally_well_are_not_flagged():
    labels, probs, sites = _sited(wrong_b=0.05)
    table = subgroup_table(_preds(labels, probs), sites, "site", "manifest")
    assert table.flagged == () and not any(r.lags for r in table.rows)


def test_intervals_match_the_interval_functions_for_the_same_counts():
    labels, probs, sites = _sited()
    groups = [f"p{i // 3}" for i in range(len(labels))]
    preds = _preds(labels, probs)
    table = subgroup_table(preds, sites, "site", "manifest", groups=groups)
    b = next(r for r in table.rows if r.value == "B")
    idx = np.flatnonzero(np.asarray(sites) == "B")
    y, called = labels[idx], probs[idx].argmax(axis=1)
    acc = wilson(int((y == called).sum()), len(idx))
    assert b.n == len(idx) and b.accuracy == pytest.approx((y == called).mean())
    assert b.accuracy_ci == pytest.approx((acc.low, acc.high))
    assert table.positive in CLASSES  # the rarer class of the labels
    positive = CLASSES.index(table.positive)
    tp = int(((y == positive) & (called == positive)).sum())
    sens = wilson(tp, int((y == positive).sum()))
    assert b.sensitivity_ci == pytest.approx((sens.low, sens.high))
    tn = int(((y != positive) & (called != positive)).sum())
    spec = wilson(tn, int((y != positive).sum()))
    assert b.specificity == pytest.approx(tn / (y != positive).sum())
    assert b.specificity_ci == pytest.approx((spec.low, spec.high))
    auc = bootstrap_auc(y == positive, probs[idx, positive], [groups[i] for i in idx])
    assert b.auc_ci == pytest.approx((auc.low, auc.high))
    from sklearn.metrics import roc_auc_score

    assert b.auc == pytest.approx(roc_auc_score(y == positive, probs[idx, positive]))
    # patients are counted from the groups: 3 images a patient
    assert b.patients == len({groups[i] for i in idx}) == 20
    assert table.rows[0].patients == 40


def test_values_with_fewer_than_five_images_are_pooled_and_not_judged():
    labels, probs, sites = _sited(n_a=60, n_b=20)
    sites = [*sites[:-7], "C", "C", "D", "D", "E", "F", "G"]
    table = subgroup_table(_preds(labels, probs), sites, "site", "manifest")
    values = [r.value for r in table.rows]
    assert values[-1] == OTHER and "C" not in values
    other = table.rows[-1]
    assert other.n == 7 and "pools 5 values" in other.note and not other.lags
    # one small value alone stays itself, with its count and "too few to judge"
    sites2 = sites[:-7] + ["A"] * 5 + ["Z"] * 2
    row = next(
        r
        for r in subgroup_table(_preds(labels, probs), sites2, "s", "manifest").rows
        if r.value == "Z"
    )
    assert row.n == 2 and row.note == TOO_FEW and not row.lags and row.p_value is None


def test_multiclass_rows_have_a_macro_auc_and_no_sensitivity():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 90)
    logits = rng.normal(size=(90, 3))
    logits[np.arange(90), labels] += 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    preds = SplitPredictions(
        run_id="r",
        split="val",
        classes=("a", "b", "c"),
        refs=tuple(map(str, range(90))),
        digests=tuple(map(str, range(90))),
        labels=labels,
        probs=probs.astype(np.float32),
        checkpoint="best",
        modality="image",
    )
    table = subgroup_table(preds, ["x", "y", "z"] * 30, "scanner", "manifest")
    row = table.rows[0]
    assert row.auc is not None and row.auc_ci is not None and row.auc_ci[0] <= row.auc_ci[1]
    assert row.sensitivity is None and row.specificity is None and table.positive is None


def test_too_many_values_is_one_sentence():
    labels, probs, _ = _sited()
    with pytest.raises(SubgroupError) as err:
        subgroup_table(_preds(labels, probs), [str(i) for i in range(len(labels))], "id", "x")
    message = str(err.value)
    assert f"more than the {MAX_VALUES}" in message and message.count(".") == 1


def test_age_bands():
    assert [age_band(a) for a in ("005Y", "017Y", "018Y", "045Y", "060Y", "079Y", "080Y")] == [
        "<18",
        "<18",
        "18-39",
        "40-59",
        "60-79",
        "60-79",
        "80+",
    ]
    assert age_band("006M") == "<18" and age_band("003W") == "<18" and age_band("010D") == "<18"
    assert age_band("45") == "40-59" and age_band("39.5") == "18-39"
    assert age_band("abc") == MISSING and age_band("999Y") == MISSING and age_band("") == MISSING


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.001]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


@pytest.mark.parametrize("name", ["PatientName", "patientid", "PatientBirthDate", "dob", "group"])
def test_identifying_attributes_are_refused(name):
    with pytest.raises(SubgroupError, match="identifies a patient, so it is never a subgroup"):
        resolve_attribute(name, {"site": "manifest", "PatientName": "dicom"})


def test_an_unknown_attribute_lists_the_available_ones():
    with pytest.raises(SubgroupError) as err:
        resolve_attribute("colour", {"site": "manifest", "PatientSex": "dicom"})
    assert "available ones are: site, PatientSex." in str(err.value)
    assert resolve_attribute("patientsex", {"PatientSex": "dicom"}) == ("PatientSex", "dicom")
    assert resolve_attribute("SITE", {"site": "manifest"}) == ("site", "manifest")


# -- a run's examples ---------------------------------------------------------------------------


def _fake_run(tmp_path: Path, source: Path, files: list[Path], labels, probs, groups=None):
    """A run folder with config, splits.json and saved val predictions (no training)."""
    run = RunDir(tmp_path / "ws" / "runs" / "r1")
    run.path.mkdir(parents=True)
    config = RunConfig(data=DataConfig(path=str(source)))
    run.config_path.write_text(json.dumps(config.to_dict()))
    rows = [
        [str(f), int(lab), f"d{i}"] + ([groups[i]] if groups else [])
        for i, (f, lab) in enumerate(zip(files, labels, strict=True))
    ]
    first = [str(files[0]), 0, "t0"]
    run.splits_path.write_text(
        json.dumps(
            {
                "root": str(files[0].parent),
                "modality": "image",
                "classes": list(CLASSES),
                "train": [first],
                "val": rows,
                "test": [],
            }
        )
    )
    preds = _preds(labels, probs, refs=[str(f) for f in files])
    preds = SplitPredictions(**{**preds.__dict__, "run_id": run.run_id})
    preds.save(predictions_path(run, "val"))
    save_evaluation(run, preds)
    return run


def _png(path: Path) -> Path:
    Image.new("L", (4, 4)).save(path)
    return path


def test_a_manifest_column_gives_a_saved_table(tmp_path):
    labels, probs, sites = _sited(n_a=40, n_b=40, wrong_b=0.5, seed=2)
    data = tmp_path / "data"
    data.mkdir()
    files = [_png(data / f"{i}.png") for i in range(len(labels))]
    lines = ["file,label,site,sex,patientid"]
    lines += [
        f"{f.name},{CLASSES[y]},{s},{'MF'[i % 2]},X{i}"
        for i, (f, y, s) in enumerate(zip(files, labels, sites, strict=True))
    ]
    (data / "m.csv").write_text("\n".join(lines) + "\n")
    run = _fake_run(tmp_path, data / "m.csv", files, labels, probs)
    assert subgroup_attributes(run) == {"site": "manifest", "sex": "manifest"}
    tables = run_subgroups(run, "val", ["site", "Sex"])
    assert [t.attribute for t in tables] == ["site", "sex"]
    assert {r.value for r in tables[0].rows} == {"A", "B"}
    assert tables[0].rows[0].patients is None  # no groups in this run
    saved = json.loads((run.path / "evaluation" / "val.json").read_text())["subgroups"]
    assert [t["attribute"] for t in saved] == ["site", "sex"]
    keys = {
        "value",
        "n",
        "patients",
        "accuracy",
        "accuracy_ci",
        "balanced_accuracy",
        "auc",
        "auc_ci",
        "sensitivity",
        "sensitivity_ci",
        "specificity",
        "specificity_ci",
        "lags",
        "note",
    }
    assert keys <= set(saved[0]["rows"][0]) and saved[0]["source"] == "manifest"
    assert isinstance(saved[0]["flagged"], list)
    # again for one attribute: it replaces its own table, keeps the other
    run_subgroups(run, "val", ["site"])
    ev = load_evaluation(run, "val")
    assert [t["attribute"] for t in ev.subgroups] == ["sex", "site"]
    with pytest.raises(SubgroupError, match="identifies a patient"):
        run_subgroups(run, "val", ["patientid"])
    text = (run.path / "evaluation" / "val.json").read_text()
    assert "X1" not in text  # no identifier reached the run folder


@pytest.mark.slow  # reads a 50 MB manifest
def test_a_hostile_manifest_column_is_capped_or_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    n = 10_000
    _png(data / "a.png")
    header = "file,label,many," + ",".join(f"c{i}" for i in range(40))
    rows = [header]
    for i in range(n):
        rows.append(f"a{i}.png,x,v{i},{'Z' * 5000}" + ",q" * 39)
    rows[1] = "a.png,x,v0,bad\x01cell" + ",q" * 39
    (data / "m.csv").write_text("\n".join(rows))
    manifest = read_manifest(data / "m.csv")
    assert len(manifest.attribute_columns) == MAX_ATTRIBUTES
    said = [p.message for p in manifest.problems]
    assert any("extra columns than the 32 kept" in m for m in said)
    assert any("control character in its 'c0' cell" in m for m in said)
    row = manifest.rows[0]
    values = dict(row.attributes)
    assert "c0" not in values and values["many"] == "v0"
    labels, probs, _ = _sited(n_a=n // 2, n_b=n // 2)
    with pytest.raises(SubgroupError, match="10,000 different values"):
        subgroup_table(_preds(labels, probs), [f"v{i}" for i in range(n)], "many", "manifest")
    long = "file,label,site\na.png,x," + "Y" * 5000 + "\n"
    (data / "m2.csv").write_text(long)
    assert dict(read_manifest(data / "m2.csv").rows[0].attributes)["site"] == "Y" * MAX_ATTRIBUTE


def _dicom(path: Path, sex: str, age: str, maker: str) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "MRN123", "19700101"
    ds.PatientSex, ds.PatientAge, ds.Manufacturer, ds.Modality = sex, age, maker, "CR"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(16)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_tags_give_rows_per_value_and_age_bands(tmp_path):
    data = tmp_path / "dicoms"
    data.mkdir()
    ages = ["010Y", "030Y", "050Y", "070Y", "085Y"]
    n = 50
    files = [
        _dicom(data / f"{i}.dcm", "MF"[i % 2], ages[i % 5], ["Acme", "Bolt"][i % 2 * (i % 3 > 0)])
        for i in range(n)
    ]
    labels, probs, _ = _sited(n_a=25, n_b=25)
    groups = [f"g{i // 2}" for i in range(n)]
    run = _fake_run(tmp_path, data, files, labels, probs, groups)
    available = subgroup_attributes(run)
    assert {"PatientSex", "PatientAge", "Manufacturer", "Modality"} <= set(available)
    assert set(available.values()) == {"dicom"} and "PatientName" not in available
    sex, age, maker = run_subgroups(run, "val", ["PatientSex", "patientage", "Manufacturer"])
    assert {r.value: r.n for r in sex.rows} == {"M": 25, "F": 25}
    assert {r.value: r.n for r in age.rows} == dict.fromkeys(
        ["<18", "18-39", "40-59", "60-79", "80+"], 10
    )
    assert sum(r.n for r in maker.rows) == n and sex.source == "dicom"
    assert all(r.patients is not None for r in sex.rows)
    with pytest.raises(SubgroupError, match="identifies a patient"):
        run_subgroups(run, "val", ["PatientBirthDate"])
    text = (run.path / "evaluation" / "val.json").read_text()
    assert "Doe" not in text and "MRN123" not in text and "19700101" not in text


def test_refit_evaluate_refuses_an_unknown_or_identifying_subgroup(tmp_path, capsys):
    from engine.cli import main

    labels, probs, sites = _sited(n_a=10, n_b=10)
    data = tmp_path / "data"
    data.mkdir()
    files = [_png(data / f"{i}.png") for i in range(len(labels))]
    rows = [f"{f.name},{CLASSES[y]},{s}" for f, y, s in zip(files, labels, sites, strict=True)]
    (data / "m.csv").write_text("file,label,site\n" + "\n".join(rows) + "\n")
    run = _fake_run(tmp_path, data / "m.csv", files, labels, probs)
    ws = str(run.path.parent.parent)
    assert main(["--workspace", ws, "evaluate", "r1", "--subgroup", "colour"]) == 2
    err = capsys.readouterr().err
    assert "'colour' is not an attribute" in err and "available ones are: site." in err
    assert main(["--workspace", ws, "evaluate", "r1", "--subgroup", "PatientID"]) == 2
    assert "identifies a patient" in capsys.readouterr().err


def test_the_printed_table_shows_each_value_and_the_flag():
    from engine.cli.evaluate import subgroup_lines

    labels, probs, sites = _sited()
    table = subgroup_table(_preds(labels, probs), sites, "site", "manifest")
    text = "\n".join(subgroup_lines(table))
    b = next(r for r in table.rows if r.value == "B")
    assert "Subgroups by site (manifest)" in text
    assert f"{100 * b.accuracy:.0f}% [{100 * b.accuracy_ci[0]:.0f}-" in text
    assert "LAGS" in text and table.flagged[0] in text and "nan" not in text.lower()


@pytest.mark.slow  # trains a tiny run (once per test process)
def test_refit_evaluate_prints_and_saves_the_subgroup_table(tmp_path, capsys):
    from trained_runs import train_image_run

    from engine.cli import main

    run = train_image_run(tmp_path)
    data = Path(json.loads((run / "splits.json").read_text())["root"])
    files = sorted(data.rglob("*.png"))
    # The copy's splits name the process's private data, which stays as it is: the manifest goes
    # beside that folder (its paths are relative to the CSV's folder) and is removed after.
    rows = [
        f"{p.relative_to(data.parent)},{p.parent.name},{'AB'[i % 2]}" for i, p in enumerate(files)
    ]
    manifest = data.parent / f"subgroups-{tmp_path.name}.csv"
    manifest.write_text("file,label,site\n" + "\n".join(rows) + "\n")
    try:
        config = json.loads((run / "config.json").read_text())
        config["data"]["path"] = str(manifest)
        (run / "config.json").write_text(json.dumps(config))
        ws = str(run.parent.parent)
        assert main(["--workspace", ws, "evaluate", run.name, "--subgroup", "SITE"]) == 0
        out = capsys.readouterr().out
        assert "Subgroups by site (manifest), 95% CI in brackets:" in out
        saved = load_evaluation(RunDir(run), "val").subgroups
        assert [t["attribute"] for t in saved] == ["site"]
        assert sum(r["n"] for r in saved[0]["rows"]) == load_evaluation(RunDir(run), "val").n
        assert main(["--workspace", ws, "evaluate", run.name, "--json", "--subgroup", "site"]) == 0
        assert json.loads(capsys.readouterr().out)["subgroups"][0]["source"] == "manifest"
    finally:
        manifest.unlink()


def test_a_row_is_shown_with_its_intervals_the_same_way_everywhere() -> None:
    from engine.evaluation.subgroups import SubgroupRow

    row = SubgroupRow(
        value="F", n=40, patients=12, accuracy=0.705, accuracy_ci=(0.6, 0.8),
        balanced_accuracy=None, auc=0.9124, auc_ci=(0.8711, 0.9409), sensitivity=None,
        sensitivity_ci=None, specificity=0.5, specificity_ci=None,
    )  # fmt: skip
    assert row.shown() == ("70% [60-80]", "0.912 [0.871-0.941]", "–", "50%")
    assert row.shown(missing="-")[2] == "-"
