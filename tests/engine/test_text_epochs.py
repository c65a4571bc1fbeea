"""Default epochs of text runs: a rule on the training set's size, applied by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic import make_text_table

from engine.cli.app import build_parser
from engine.cli.config_flags import config_from_args
from engine.training.text_pipeline import text_epochs


@pytest.mark.parametrize(
    ("n_train", "epochs"),
    [(4400, 3), (6000, 2), (100_000, 2), (2000, 6), (800, 10), (24, 10), (0, 10)],
)
def test_text_epochs_see_about_12000_texts_within_2_to_10_passes(n_train: int, epochs: int) -> None:
    assert text_epochs(n_train) == epochs


def _config(*argv: str):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_a_new_text_run_takes_its_epochs_from_the_rule(tmp_path: Path) -> None:
    table = make_text_table(tmp_path / "messages.tsv", per_class=20)  # 40 texts, 32 train
    config = _config(str(table), "--method", "lora")
    assert config.schedule.epochs == text_epochs(32) == 10
    big = make_text_table(tmp_path / "big.tsv", per_class=3000)  # 6000 texts, 4800 train
    assert _config(str(big), "--method", "lora").schedule.epochs == text_epochs(4800) == 3


def test_an_explicit_epochs_flag_and_a_saved_config_win(tmp_path: Path) -> None:
    table = make_text_table(tmp_path / "messages.tsv", per_class=20)
    assert _config(str(table), "--epochs", "4").schedule.epochs == 4
    saved = tmp_path / "config.json"
    saved.write_text(_config(str(table), "--epochs", "7").to_json(), encoding="utf-8")
    assert _config(str(saved)).schedule.epochs == 7


def test_an_image_folder_keeps_the_configured_default(tmp_path: Path) -> None:
    from data_fixtures import make_folder

    folder = make_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    assert _config(str(folder)).schedule.epochs == 10
