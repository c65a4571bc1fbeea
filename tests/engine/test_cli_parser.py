"""The `refit` parser itself: flags generated from RunConfig, global options after a command, a
package that imports no torch and has no import circles. Nothing here trains."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from engine.cli.app import build_parser
from engine.cli.config_flags import FIELD_FLAGS, field_flags
from engine.config import RunConfig

# The RunConfig flags `refit train` had before they were generated; docs and scripts use them.
FIELD_OPTIONS = [
    "--backbone",
    "--weights",
    "--last-n",
    "--epochs",
    "--batch-size",
    "--schedule",
    "--early-stopping",
    "--time-budget-min",
    "--monitor",
    "--lr",
    "--optimizer",
    "--weight-decay",
    "--label-smoothing",
    "--class-weights",
    "--augment",
    "--cache-views",
    "--val-fraction",
    "--test-fraction",
    "--split-seed",
    "--min-per-class",
    "--workers",
    "--text-column",
    "--label-column",
    "--max-length",
    "--intensity",
    "--dicom-window",
    "--dicom-frames",
    "--group-by",
    "--lora-rank",
    "--lora-alpha",
    "--lora-dropout",
    "--device",
    "--precision",
    "--runtime",
    "--intended-use",
    "--reference-standard",
]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _help_of(section: str, name: str) -> str:
    cls = type(getattr(RunConfig(), section))
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]


def test_the_generated_flags_keep_their_names() -> None:
    assert [flag.option for flag in field_flags()] == FIELD_OPTIONS


@pytest.mark.parametrize("command", ["train", "lr-find", "advise"])
def test_help_lists_every_generated_flag_with_its_field_help(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # help is wrapped: compare words
    for dest, (section, name) in FIELD_FLAGS.items():
        option = "--" + dest.replace("_", "-")
        help_text = " ".join(_help_of(section, name).split())
        assert f"{option} " in text
        assert help_text in text, option
    # argparse %-formats help: the intensity help's "99.5%" must come out as written.
    assert "0.5-99.5% brightness window" in text
    assert "--schedule {cosine,one-cycle,constant}" in text


def test_generated_flags_parse_to_the_fields_types(tmp_path: Path) -> None:
    from engine.cli.config_flags import config_from_args

    source = tmp_path / "config.json"
    source.write_text(RunConfig().to_json(), encoding="utf-8")
    argv = ["train", str(source), "--augment", "strong", "--early-stopping", "3", "--lr", "0.5"]
    argv += ["--workers", "0", "--weights", "w.pt", "--monitor", "val_loss", "--seed", "7"]
    config = config_from_args(build_parser().parse_args(argv))
    assert config.augment.preset == "strong" and type(config.augment.preset).__name__ == (
        "AugmentPreset"
    )
    assert config.schedule.early_stopping_patience == 3 and config.optim.lr == 0.5
    assert config.data.num_workers == 0 and config.model.weights == "w.pt"
    assert config.schedule.monitor == "val_loss" and config.seed == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", str(source), "--augment", "wild"])


def test_every_global_option_is_accepted_after_every_command() -> None:
    top = build_parser()
    options = {
        s for a in top._actions if a.option_strings and a.dest != "help" for s in a.option_strings
    }
    assert options == {"--version", "--workspace"}
    for name, command in _commands().items():
        assert options <= set(command._option_string_actions), name


def test_global_options_after_the_command_work(tmp_path: Path, capsys) -> None:
    from engine.edition import version_line

    with pytest.raises(SystemExit) as stop:
        main(["runs", "--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == version_line() + "\n"
    workspace = tmp_path / "ws"
    assert main(["runs", "--workspace", str(workspace)]) == 0
    assert f"No runs yet in {workspace / 'runs'}." in capsys.readouterr().out


def test_importing_the_cli_imports_no_torch() -> None:
    """`refit train` forks its prefetching child before torch is imported."""
    code = "import sys, engine.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('torch', 'numpy', 'PIL', 'tqdm', 'torchvision', 'timm')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
