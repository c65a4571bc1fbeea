"""Trust: code shipped with a model runs only when the person at the keyboard allowed it.

Crafted exports, run folders and configs that ask for remote code are refused with a sentence
and never run it (a sentinel file proves it); the user's flag and allow-list do let it run;
pickles are refused wherever a file is loaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image
from synthetic import make_shapes_folder

from engine import trust
from engine.cli import main as refit
from engine.models import ModelError
from reliability.hostile_models import (
    add_code,
    crafted_export,
    crafted_run,
    save_vit,
)


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    path = tmp_path / "SENTINEL"
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "probe.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(path)
    return path


@pytest.fixture
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """transformers copies allowed remote code into HF_MODULES_CACHE: keep it in tmp_path."""
    import transformers.dynamic_module_utils as dynamic

    cache = tmp_path / "hf-modules"
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(cache))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return cache


def refused(capsys: pytest.CaptureFixture[str], rc: int) -> str:
    """The one sentence the CLI printed for a refusal (and that it is one)."""
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert trust.FLAG in lines[0] and trust.CHECKBOX in lines[0] and "refit trust" in lines[0]
    return lines[0]


# -- files that ask for remote code ---------------------------------------------------------------


def test_export_asking_for_remote_code_is_refused(tmp_path, sentinel, image, capsys):
    export = crafted_export(tmp_path, sentinel)
    capsys.readouterr()
    sentence = refused(capsys, refit(["predict", str(export), str(image)]))
    assert "backbone" in sentence and "auto_map in config.json" in sentence
    assert "only you can allow" in sentence  # the manifest's request is named, not obeyed
    assert not sentinel.exists()


def test_the_same_export_runs_its_code_with_the_flag(
    tmp_path, sentinel, image, capsys, modules_cache
):
    """Proves the refusal above is real: with the user's grant the crafted code does run."""
    export = crafted_export(tmp_path, sentinel)
    rc = refit(["predict", str(export), str(image), "--allow-remote-code"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert sentinel.read_text() == "remote code ran"
    assert "cat" in out.out or "dog" in out.out
    assert not trust._process_grant  # the grant ended with the command
    sentinel.unlink()
    refused(capsys, refit(["predict", str(export), str(image)]))
    assert not sentinel.exists()


def test_run_folder_asking_for_remote_code_is_refused(tmp_path, sentinel, image, capsys):
    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    run = crafted_run(tmp_path, sentinel, data)
    capsys.readouterr()
    sentence = refused(capsys, refit(["predict", str(run), str(image)]))
    assert "someone-vit" in sentence
    assert not sentinel.exists()


def test_resuming_a_run_folder_asking_for_remote_code_is_refused_untouched(
    tmp_path, sentinel, capsys
):
    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    run = crafted_run(tmp_path, sentinel, data)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    refused(capsys, refit(["resume", str(run), "--quiet"]))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert not sentinel.exists()


def test_replayed_config_asking_for_remote_code_is_refused(tmp_path, sentinel, capsys):
    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    run = crafted_run(tmp_path, sentinel, data)
    config = tmp_path / "someone" / "config.json"
    config.parent.mkdir()
    config.write_text((run / "config.json").read_text())
    workspace = tmp_path / "mine"
    capsys.readouterr()
    rc = refit(["--workspace", str(workspace), "train", str(config), "--quiet"])
    sentence = refused(capsys, rc)
    assert "a saved config asks for it" in sentence
    assert not sentinel.exists()
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_tokenizer_code_is_refused(tmp_path, sentinel):
    """tokenizer_config.json can name code too; config.json alone asking nothing is not enough."""
    from engine.models.text import load_tokenizer

    folder = save_vit(tmp_path / "model")
    add_code(folder, sentinel, into="tokenizer_config.json")
    assert "auto_map" not in json.loads((folder / "config.json").read_text())
    with pytest.raises(trust.RemoteCodeRefused, match=r"auto_map in tokenizer_config\.json"):
        load_tokenizer(folder, model="someone/tok")
    assert not sentinel.exists()


def test_code_from_another_repository_is_refused_even_when_granted(tmp_path, sentinel):
    folder = save_vit(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "other/repo--modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with trust.process_grant(True), pytest.raises(trust.RemoteCodeRefused, match="another"):
        trust.remote_code_kwargs(folder, "someone/vit")


def test_a_folder_without_code_never_gets_trust_remote_code(tmp_path):
    folder = save_vit(tmp_path / "model")
    with trust.process_grant(True):
        assert trust.remote_code_kwargs(folder, "vit") == {"trust_remote_code": False}


# -- the allow-list -------------------------------------------------------------------------------


def test_allow_list_entry_allows_until_the_code_changes(tmp_path, sentinel):
    folder = add_code(save_vit(tmp_path / "model"), sentinel)
    with pytest.raises(trust.RemoteCodeRefused, match="you did not allow remote code"):
        trust.remote_code_kwargs(folder, "someone/vit")
    trust.trust_folder(folder)
    assert trust.allow_list_path().is_file()
    assert trust.allow_list_path().parent == Path(__import__("os").environ["REFIT_CONFIG_DIR"])
    assert trust.remote_code_kwargs(folder, "someone/vit") == {"trust_remote_code": True}

    module = folder / "modeling_evil.py"
    module.write_text(module.read_text() + "\n# one more line\n")
    with pytest.raises(trust.RemoteCodeRefused, match="files changed since you allowed it"):
        trust.remote_code_kwargs(folder, "someone/vit")
    trust.trust_folder(folder)  # allowed again, as it is now
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"]["AutoConfig"] = "modeling_evil.EvilConfig"
    (folder / "config.json").write_text(json.dumps(config))
    assert not trust.is_trusted(folder)
    (folder / "extra.py").write_text("print('new')\n")
    trust.trust_folder(folder)
    assert trust.is_trusted(folder)
    (folder / "sub").mkdir()
    (folder / "sub" / "helper.py").write_text("x = 1\n")
    assert not trust.is_trusted(folder)
    assert not sentinel.exists()


def test_a_damaged_allow_list_allows_nothing(tmp_path, sentinel):
    folder = add_code(save_vit(tmp_path / "model"), sentinel)
    trust.trust_folder(folder)
    trust.allow_list_path().write_bytes(b"\xff\xfe{not json")
    assert trust.trusted_models() == []
    with pytest.raises(trust.RemoteCodeRefused):
        trust.remote_code_kwargs(folder, "someone/vit")


def test_refit_trust_adds_lists_and_removes(tmp_path, sentinel, capsys):
    folder = add_code(save_vit(tmp_path / "model"), sentinel)
    assert refit(["trust", str(folder)]) == 0
    assert "auto_map in config.json" in capsys.readouterr().out
    assert trust.is_trusted(folder)
    assert refit(["trust", "--list"]) == 0
    assert str(folder.resolve()) in capsys.readouterr().out
    assert refit(["trust", "--remove", str(folder)]) == 0
    assert not trust.is_trusted(folder)
    assert refit(["trust", "--remove", str(folder)]) == 2
    assert refit(["trust", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "not a Hugging Face model folder" in err and "Traceback" not in err
    assert not sentinel.exists()


def test_a_run_config_cannot_carry_an_allow_list_entry(tmp_path, sentinel, image, capsys):
    """The allow-list lives in the per-user config folder, never in a workspace: a crafted run
    folder holding a trusted_models.json next to its config changes nothing."""
    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    run = crafted_run(tmp_path, sentinel, data)
    backbone = Path(json.loads((run / "config.json").read_text())["model"]["backbone"])
    entry = {"sha256": trust.code_hash(backbone), "folder": str(backbone), "added": "x"}
    for where in (run, run.parent.parent, run.parent.parent / "runs"):
        (where / trust.ALLOW_LIST_NAME).write_text(json.dumps({"models": [entry]}))
    capsys.readouterr()
    refused(capsys, refit(["--workspace", str(run.parent.parent), "predict", run.name, str(image)]))
    assert not sentinel.exists()
    # The same entry in the user's own allow-list is valid: the refusal above was no accident.
    trust.allow_list_path().parent.mkdir(parents=True, exist_ok=True)
    trust.allow_list_path().write_text((run / trust.ALLOW_LIST_NAME).read_text())
    assert trust.remote_code_kwargs(backbone, "someone-vit") == {"trust_remote_code": True}


def test_model_folder_resolves_hf_names_and_folders(tmp_path):
    folder = save_vit(tmp_path / "model")
    assert trust.model_folder(str(folder)) == folder
    assert trust.model_folder("efficientnet_lite0") is None
    assert trust.model_folder("timm:resnet18") is None


def test_hashing_skips_fifos(tmp_path):
    """A FIFO named like a code file must not hang the hash (nothing is read from it)."""
    import os

    folder = save_vit(tmp_path / "model")
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    os.mkfifo(folder / "tokenizer_config.json")
    os.mkfifo(folder / "modeling_x.py")
    assert trust.code_requests(folder) == []
    assert len(trust.code_hash(folder)) == 64


def test_refusal_is_a_model_error_sentence(tmp_path, sentinel):
    from engine.config import ModelConfig
    from engine.models import build_model

    folder = add_code(save_vit(tmp_path / "model"), sentinel)
    with pytest.raises(ModelError) as info:
        build_model(ModelConfig(backbone=str(folder), allow_remote_code=True), 2)
    assert "\n" not in str(info.value) and str(info.value).endswith("Model page.")
    assert not sentinel.exists()
