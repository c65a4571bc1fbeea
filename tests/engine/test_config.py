from __future__ import annotations

import json

import pytest

from engine.config import (
    AugmentPreset,
    ConfigError,
    DataConfig,
    Method,
    RunConfig,
    field_help,
)


def test_json_round_trip_keeps_every_field(tmp_path):
    cfg = RunConfig(
        name="x",
        seed=7,
        data=DataConfig(path="/data/cats", val_fraction=0.3),
    ).replace(adapt=RunConfig().adapt.__class__(method=Method.CUSTOM, frozen_groups=["stem"]))
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    back = RunConfig.load(path)
    assert back == cfg
    assert json.loads(path.read_text())["adapt"]["method"] == "custom"


def test_unknown_key_is_named():
    data = RunConfig().to_dict()
    data["optim"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
        RunConfig.from_dict(data)


def test_bad_enum_lists_allowed_values():
    data = RunConfig().to_dict()
    data["augment"]["preset"] = "heavy"
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(data)
    msg = str(err.value)
    assert "augment.preset" in msg
    for preset in AugmentPreset:
        assert preset.value in msg


def test_wrong_type_is_named():
    data = RunConfig().to_dict()
    data["schedule"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"schedule\.epochs must be a whole number"):
        RunConfig.from_dict(data)


def test_int_accepted_for_float_field():
    data = RunConfig().to_dict()
    data["optim"]["lr"] = 1
    assert RunConfig.from_dict(data).optim.lr == 1.0


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("optim", "lr", 0.0, "optim.lr"),
        ("schedule", "epochs", 0, "schedule.epochs"),
        ("data", "val_fraction", 0.9, "data.val_fraction"),
        ("optim", "lr", float("nan"), "optim.lr is not a number"),
    ],
)
def test_validate_names_the_field_and_limits(section, key, value, needle):
    data = RunConfig().to_dict()
    data[section][key] = value
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        RunConfig.from_dict(data).validate()


def test_newer_schema_is_refused_with_advice():
    with pytest.raises(ConfigError, match="update Refit Studio"):
        RunConfig.from_dict({"schema_version": 99})


def test_broken_json_file_says_where(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{"seed": 1,,}')
    with pytest.raises(ConfigError, match="line 1"):
        RunConfig.load(bad)


def test_field_help_exposes_limits_for_the_gui():
    meta = field_help(DataConfig, "val_fraction")
    assert meta["min"] == 0.05 and meta["max"] == 0.5 and "validation" in meta["help"]


def test_a_pattern_that_could_take_hours_is_refused_by_validate():
    """The scan's own pattern checks run when a config is validated (the app, refit train)."""
    config = RunConfig(data=DataConfig(path="x", group_by="pattern:(a+)+$"))
    with pytest.raises(ConfigError, match="repeat inside a repeat"):
        config.validate()
    RunConfig(data=DataConfig(path="x", group_by=r"pattern:(P\d+)_")).validate()
