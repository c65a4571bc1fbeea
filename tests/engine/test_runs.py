"""Run folders: creation, lookup, listing, atomic files."""

from __future__ import annotations

import json

import pytest

from engine.config import DataConfig, RunConfig
from engine.files import append_jsonl, read_jsonl, write_atomic, write_json_atomic
from engine.runs import RunNotFoundError, Workspace, default_workspace


def test_refit_home_overrides_the_default_workspace(monkeypatch, tmp_path):
    monkeypatch.setenv("REFIT_HOME", str(tmp_path / "home"))
    assert default_workspace() == tmp_path / "home"
    assert Workspace().root == tmp_path / "home"


def test_create_run_writes_config_first_and_ids_are_unique(tmp_path):
    ws = Workspace(tmp_path)
    cfg = RunConfig(data=DataConfig(path="/d"))
    a, b = ws.create_run(cfg), ws.create_run(cfg)
    assert a.path != b.path
    assert RunConfig.load(a.config_path) == cfg
    assert a.state()["status"] == "created"
    assert ws.open_run(a.run_id) == a
    assert ws.open_run(str(a.path)) == a


def test_open_run_by_prefix_and_errors(tmp_path):
    ws = Workspace(tmp_path)
    run = ws.create_run(RunConfig(name="only"))
    assert ws.open_run(run.run_id[:10]) == run
    ws.create_run(RunConfig(name="other"))
    with pytest.raises(RunNotFoundError, match="several runs"):
        ws.open_run(run.run_id[:4])
    with pytest.raises(RunNotFoundError, match="refit runs"):
        ws.open_run("zzz")


def test_list_runs_skips_other_folders_and_marks_an_unreadable_config(tmp_path):
    ws = Workspace(tmp_path)
    good = ws.create_run(RunConfig(name="good"))
    (ws.runs_root / "junk").mkdir()
    broken = ws.runs_root / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{")
    runs = {r.run_id: r for r in ws.list_runs()}
    assert set(runs) == {good.run_id, "broken"}
    assert runs[good.run_id].status == "created" and not runs[good.run_id].problems
    assert runs["broken"].status == "damaged"
    assert "config.json is not valid JSON" in runs["broken"].problems[0]


def test_atomic_json_leaves_no_temp_files_and_survives_a_failed_write(tmp_path):
    target = tmp_path / "s.json"
    write_json_atomic(target, {"a": 1})

    def crash(tmp):
        tmp.write_text('{"a": 2, "half')
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, crash)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_jsonl_reader_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "a") as fh:
        fh.write('{"step": 3, "lo')
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
