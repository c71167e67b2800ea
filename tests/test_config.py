"""Config fields: declared once, read the same from a flag and from a TOML preset."""

import argparse

import pytest

from landscape import cli
from landscape.config import settings as config
from landscape.config.settings import ConfigError, ScanConfig, TrainConfig


@pytest.mark.parametrize("cls, command", [(ScanConfig, "scan"), (TrainConfig, "train")])
def test_every_field_is_a_flag(cls, command):
    """Every declared field reaches the command line (task_options through --task-opt)."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    dests = {a.dest for a in sub._actions}
    assert set(config.field_names(cls)) - {"task_options"} <= dests


@pytest.mark.parametrize("field, text, value, fragment", [
    ("restarts", "0", 0, ">= 1"),
    ("lr", "-1", -1.0, "positive"),
    ("steps", "2.5", 2.5, "an integer"),
    ("method", "newton", "newton", "riemannian"),
    ("engine", "fast", "fast", "vmap"),
])
def test_flag_and_toml_are_checked_by_the_same_rule(tmp_path, field, text, value, fragment):
    rule = config.rule(ScanConfig, field)
    with pytest.raises(argparse.ArgumentTypeError, match=fragment):
        rule.parse("--" + field)(text)
    preset = tmp_path / "p.toml"
    preset.write_text(f"{field} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=fragment):
        config.resolve(ScanConfig, preset)


def test_lists_and_cross_field_checks():
    cfg = config.resolve(TrainConfig, flags={"weight_decay": 0.1, "seeds": [0, 1]})
    assert cfg.weight_decay == [0.1] and [m.name for m in cfg.members()] == ["wd0.1_init1_seed0", "wd0.1_init1_seed1"]
    with pytest.raises(ConfigError, match="twice"):
        config.resolve(TrainConfig, flags={"seeds": [1, 1]})
    with pytest.raises(ConfigError, match="init_scale values must be positive"):
        config.resolve(TrainConfig, flags={"init_scale": [1.0, 0.0]})


def test_identity_leaves_out_execution_and_sweep_fields():
    assert not {"chunk", "engine", "device"} & set(ScanConfig().identity())
    assert not {"chunk", "engine", "device", "checkpoint_every", "seeds", "init_scale", "weight_decay"} & set(
        TrainConfig().identity())
