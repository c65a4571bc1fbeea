"""The Subgroups tab of the Results page fills its table from a worker after an attribute is
chosen, marks the lagging subgroup in red with its sentence, and says so for a plain folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("healthy", "sick")


def _fake_run(root: Path, manifest: bool) -> Path:
    """A run with a manifest (site A right 95 %, site B 50 %) or a plain folder, with saved val
    predictions and evaluation; nothing is trained."""
    from engine.config import DataConfig, RunConfig
    from engine.evaluation.predictions import SplitPredictions, predictions_path
    from engine.evaluation.report import save_evaluation
    from engine.runs import RunDir

    rng = np.random.default_rng(0)
    n = 80
    sites = ["A"] * 50 + ["B"] * 30
    labels = rng.integers(0, 2, n)
    wrong = np.r_[rng.random(50) < 0.05, rng.random(30) < 0.5]
    called = np.where(wrong, 1 - labels, labels)
    p = np.where(called == 1, 0.8, 0.2) + rng.uniform(-0.1, 0.1, n)
    probs = np.stack([1 - p, p], axis=1).astype(np.float32)
    data = root / "data"
    data.mkdir()
    files = [data / f"{i}.png" for i in range(n)]
    for f in files:
        Image.new("L", (4, 4)).save(f)
    lines = [f"{f.name},{CLASSES[y]},{s}" for f, y, s in zip(files, labels, sites, strict=True)]
    (data / "m.csv").write_text("file,label,site\n" + "\n".join(lines) + "\n")
    run = RunDir(root / "ws" / "runs" / "r1")
    run.path.mkdir(parents=True)
    source = data / "m.csv" if manifest else data
    run.config_path.write_text(json.dumps(RunConfig(data=DataConfig(path=str(source))).to_dict()))
    rows = [[str(f), int(y), f"d{i}"] for i, (f, y) in enumerate(zip(files, labels, strict=True))]
    splits = {
        "root": str(data),
        "modality": "image",
        "classes": list(CLASSES),
        "train": [[str(files[0]), 0, "t"]],
        "val": rows,
        "test": [],
    }
    run.splits_path.write_text(json.dumps(splits))
    preds = SplitPredictions(
        run_id="r1",
        split="val",
        classes=CLASSES,
        refs=tuple(map(str, files)),
        digests=tuple(f"d{i}" for i in range(n)),
        labels=labels.astype(np.int64),
        probs=probs,
        checkpoint="best",
        modality="image",
    )
    preds.save(predictions_path(run, "val"))
    save_evaluation(run, preds)
    return run.path


@pytest.fixture
def panel(qtbot, ctx):
    from desktop.results.subgroup_table import SubgroupPanel

    w = SubgroupPanel(ctx)
    qtbot.addWidget(
        w, before_close_func=lambda w: qtbot.waitUntil(lambda: not w.busy, timeout=30000)
    )
    w.resize(1000, 400)
    w.show()
    return w


@pytest.mark.slow  # imports the evaluation stack in a worker; bootstraps per value
def test_the_table_fills_after_choosing_an_attribute(qtbot, panel, tmp_path):
    from desktop.results.subgroup_table import LAGS
    from desktop.widgets.palette_colors import level_color
    from engine import RunDir, load_evaluation

    path = _fake_run(tmp_path, manifest=True)
    panel.set_evaluation(path, load_evaluation(RunDir(path), "val"))
    qtbot.waitUntil(lambda: panel.combo.count() == 2, timeout=30000)
    assert panel.table.rowCount() == 0  # nothing computed until an attribute is chosen
    with qtbot.waitSignal(panel.filled, timeout=60000):
        panel.choose("site")
    table = panel.table
    values = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert values == ["A", "B"]
    assert table.item(1, 1).text() == "30" and table.item(1, 2).text() == "–"
    shown = panel.table_shown
    b = shown.rows[1]
    assert table.item(1, 3).text() == (
        f"{100 * b.accuracy:.0f}% [{100 * b.accuracy_ci[0]:.0f}-{100 * b.accuracy_ci[1]:.0f}]"
    )
    marker = table.item(1, 7)
    assert marker.text() == LAGS and b.lags and not shown.rows[0].lags
    assert marker.toolTip() == shown.flagged[0] and marker.toolTip().startswith("Site B:")
    assert marker.foreground().color().name() == level_color("error", panel.palette())
    assert table.item(0, 7).text() == ""
    assert shown.flagged[0] in panel.flags.text()
    # saved with the evaluation: shown again at once for the next evaluation shown
    ev = load_evaluation(RunDir(path), "val")
    assert [t["attribute"] for t in ev.subgroups] == ["site"]
    with qtbot.waitSignal(panel.filled, timeout=30000):
        panel.set_evaluation(path, ev)


def test_a_plain_folder_has_no_subgroup_attributes(qtbot, panel, tmp_path):
    from desktop.results.subgroup_table import NONE_TEXT
    from engine import RunDir, load_evaluation

    path = _fake_run(tmp_path, manifest=False)
    panel.set_evaluation(path, load_evaluation(RunDir(path), "val"))
    qtbot.waitUntil(lambda: panel.status.text() == NONE_TEXT, timeout=30000)
    assert not panel.combo.isEnabled() and panel.table.isHidden()
