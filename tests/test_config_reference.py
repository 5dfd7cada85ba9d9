"""`python -m core config --example`: a complete experiment file that parses back to the defaults."""
from __future__ import annotations

import subprocess
import sys
import tomllib
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

import pytest

from core import config
from core.config import tables as config_tables
from core.config.reference import PLACEHOLDERS, example_toml, field_comments
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _all_fields(cls: type, prefix: str = "") -> list[tuple[str, type, object]]:
    """(dotted key, owning class, field) of every field reachable from ``cls``, AdaptiveParam leaves kept."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) is tuple and typing.get_args(tp) and is_dataclass(typing.get_args(tp)[0]):
            out += _all_fields(typing.get_args(tp)[0], f"{prefix}{f.name}[].")
        elif is_dataclass(tp) and tp is not config.AdaptiveParam:
            out += _all_fields(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, cls, f))
    return out


def _lookup(data: dict, dotted: str):
    cur: object = data
    for part in dotted.split("."):
        if part.endswith("[]"):
            cur = cur[part[:-2]][0]
        else:
            cur = cur[part]
    return cur


def test_example_parses_back_to_every_default():
    text = example_toml()
    data = tomllib.loads(text)
    checked = 0
    for key, cls, f in _all_fields(config.ExperimentConfig):
        if f.default is MISSING and f.default_factory is MISSING:
            expected = PLACEHOLDERS[(cls.__name__, f.name)]
        else:
            expected = f.default if f.default is not MISSING else f.default_factory()
        if expected is None:  # unset by default: shown commented out, so absent from the parsed file
            assert f"# {f.name} = ..." in text
            try:
                _lookup(data, key)
            except KeyError:
                continue
            raise AssertionError(f"{key} is unset by default but the example sets it")
        value = _lookup(data, key)
        if isinstance(expected, config.AdaptiveParam):
            value = config_tables.from_dict(config.AdaptiveParam, value)
        elif isinstance(expected, tuple):
            value = tuple(value)
        assert value == expected and type(value) is type(expected), key
        checked += 1
    assert checked >= 40


def test_example_builds_the_default_configs():
    data = tomllib.loads(example_toml())
    for section in ("decoding", "trace", "metrics"):
        cls = typing.get_type_hints(config.ExperimentConfig)[section]
        assert config_tables.from_dict(cls, data[section]) == cls()
    model = config_tables.from_dict(config.ModelConfig, data["model"])
    assert model == config.ModelConfig(name_or_path=model.name_or_path)


def test_every_field_has_a_comment_in_the_reference():
    missing = []
    for key, cls, f in _all_fields(config.ExperimentConfig):
        if f.name not in field_comments(cls) and cls is not config.ExperimentConfig:
            missing.append(key)
    assert missing == []


def test_cli_prints_it_and_run_help_points_to_it():
    out = subprocess.run([sys.executable, "-m", "core", "config", "--example"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == example_toml()
    help_text = subprocess.run([sys.executable, "-m", "core", "run", "--help"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
    assert "config --example" in " ".join(help_text.split())


def test_example_passes_the_toml_type_checks_and_lists_are_checked_item_by_item():
    """`config --example > x.toml` must load: list fields such as metrics.k_values were refused as 'expected int'."""
    data = tomllib.loads(example_toml())
    hints = typing.get_type_hints(config.ExperimentConfig)
    for section in ("model", "decoding", "trace", "metrics"):
        config_tables.check_table(hints[section], data[section], f"experiment.{section}")
    for i, setting in enumerate(data["settings"]):
        config_tables.check_table(config.SettingConfig, setting, f"experiment.settings[{i}]")
    with pytest.raises(ConfigError, match=r"experiment\.metrics\.k_values\[1\] = '5': expected int"):
        config_tables.check_table(config.MetricsConfig, {"k_values": [1, "5"]}, "experiment.metrics")
    with pytest.raises(ConfigError, match=r"experiment\.metrics\.k_values = 5: expected a list"):
        config_tables.check_table(config.MetricsConfig, {"k_values": 5}, "experiment.metrics")
