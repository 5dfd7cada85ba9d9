"""An :class:`core.config.ExperimentConfig` written as the experiment TOML that ``python -m core run`` runs.

The one writer of that file: the Run page's "Export the experiment file" (the same choices as the form, as
a file to run headless) and the ``config.toml`` that a run started from the app leaves in its results
folder (as a ``python -m core run`` folder holds the file it ran), so every results folder can be re-run. Keys equal to their default are left out (the file stays short and reads like a hand-written
one); unset (None) values are left out too (TOML has no null, and None is their default). Paths are written
as the config holds them (the Run page's are absolute), so the file runs from any folder.
:func:`core.config.file.load_experiment` reads it back to an equal config (tests/test_run_form.py).
"""
from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass

from core.config import AdaptiveParam, ExperimentConfig
from core.config.reference import toml_value

HEADER = ("# PropMe experiment file, written by PropMe Explorer: run it with `python -m core run FILE`.\n"
          "# Keys left out take their defaults (`python -m core config --example` lists every key).\n")


def _default(f):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _pairs(obj) -> tuple[list[str], list[tuple[str, object]]]:
    """(``key = value`` lines of ``obj``'s non-default scalar fields, [(name, nested config)])."""
    lines, nested = [], []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple) and value and all(is_dataclass(v) for v in value):
            continue  # the [[settings]] tables: written by experiment_toml
        if is_dataclass(value) and not isinstance(value, AdaptiveParam):
            nested.append((f.name, value))
        elif value is not None and value != _default(f):
            lines.append(f"{f.name} = {toml_value(value)}")
    return lines, nested


def _table(header: str, obj) -> list[str]:
    lines, nested = _pairs(obj)
    out = [f"\n{header}", *lines] if lines else []
    for name, sub in nested:
        out += _table(f"{header[:-1]}.{name}]", sub)
    return out


def experiment_toml(cfg: ExperimentConfig) -> str:
    """``cfg`` as an experiment file (UTF-8 text).

    >>> from core.config import ModelConfig, SettingConfig
    >>> text = experiment_toml(ExperimentConfig("r", ModelConfig("/m"), ("/i",), (SettingConfig("prefix", 5),)))
    >>> print(text.split("\\n", 2)[2])
    name = "r"
    index_dirs = ["/i"]
    <BLANKLINE>
    [model]
    name_or_path = "/m"
    <BLANKLINE>
    [[settings]]
    name = "prefix"
    n_prompts = 5
    <BLANKLINE>
    """
    top, sections = _pairs(cfg)
    required = [f"name = {toml_value(cfg.name)}", f"index_dirs = {toml_value(cfg.index_dirs)}"]
    out = HEADER.splitlines() + required + [line for line in top if line.split(" = ")[0] not in ("name", "index_dirs")]
    for name, sub in sections:
        if name == "model":  # required, even when only name_or_path is set
            lines = _pairs(sub)[0]
            out += ["", "[model]", *lines]
        else:
            out += _table(f"[{name}]", sub)
    for s in cfg.settings:
        out += ["", "[[settings]]", f"name = {toml_value(s.name)}",
                *(line for line in _pairs(s)[0] if not line.startswith("name = "))]
    return "\n".join(out) + "\n"
