"""Reading an experiment TOML file into an :class:`core.config.ExperimentConfig`.

The file is read as UTF-8 (a leading byte-order mark is accepted); every table is type-checked by key
(:func:`core.config.tables.check_table`) before its config is built, and every value is then range-checked
where the config dataclass is built, so a bad value is one :class:`ConfigError` naming the file and key.
Relative paths are resolved against the TOML file's folder.
"""
from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path
from typing import Any

from core.config.limits import check_model_context
from core.config.schema import (
    DecodingConfig,
    ExperimentConfig,
    FloorConfig,
    MetricsConfig,
    ModelConfig,
    SettingConfig,
    TraceConfig,
)
from core.config.tables import check_table, check_types, from_dict, upgrade_metrics_table
from core.errors import ConfigError
from core.paths import check_exists, safe_name

log = logging.getLogger(__name__)

_SECTIONS = {"model": ModelConfig, "decoding": DecodingConfig, "trace": TraceConfig, "metrics": MetricsConfig,
             "floor": FloorConfig}


def looks_like_local_path(name: str) -> bool:
    """True when ``name`` can only be a local path, never a hub id (``org/name``).

    >>> [looks_like_local_path(n) for n in ("gpt2", "org/model", "./m", "/abs/m", "~/m", "a/b/c", "m/")]
    [False, False, True, True, True, True, True]
    """
    return (name.startswith((".", "/", "~")) or name.endswith("/") or "\\" in name or name.count("/") > 1
            or Path(name).is_absolute())


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment TOML file into an :class:`ExperimentConfig`; raises ConfigError naming file and key.

    Tables: ``[model]`` (required), ``[decoding]``, ``[trace]``, ``[metrics]`` (``[metrics.nv_blocks]``; the old
    ``[metrics.nvr]`` loads with a deprecation warning),
    ``[[settings]]`` (one per setting, required); top level: ``name``, ``index_dirs`` (required),
    ``output_dir``, ``cache_dir``, ``index_tokenizer``. Relative paths (index dirs, prompt files,
    output and cache dirs, a local model folder) are resolved against the TOML file's folder.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is accepted
    except FileNotFoundError:
        raise ConfigError(f"experiment config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read experiment config {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    base = path.resolve().parent

    def rel(p: str) -> str:
        return str(p) if Path(p).expanduser().is_absolute() else str(base / p)

    for required in ("name", "model", "index_dirs", "settings"):
        if required not in data:
            raise ConfigError(f"{path}: missing required key {required!r} (see demo/experiment.toml for an example)")
    try:
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key == "metrics":
                value, notes = upgrade_metrics_table(value, "metrics")
                for note in notes:
                    log.warning("%s: %s", path, note)
            if key in _SECTIONS:
                check_table(_SECTIONS[key], value, f"experiment.{key}")
                kw[key] = from_dict(_SECTIONS[key], value)
            elif key == "settings":
                if not isinstance(value, list) or not value:
                    raise ConfigError("settings: expected one or more [[settings]] tables")
                for i, s in enumerate(value):
                    check_table(SettingConfig, s, f"experiment.settings[{i}]")
                kw[key] = tuple(from_dict(SettingConfig, s) for s in value)
            elif key == "index_dirs":
                dirs = [value] if isinstance(value, str) else value
                if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
                    raise ConfigError(f"index_dirs = {value!r}: expected a folder or a list of folders")
                kw[key] = tuple(rel(d) for d in dirs)
            else:
                kw[key] = value
        cfg = from_dict(ExperimentConfig, kw)
        check_types(cfg, "experiment")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    names = [s.name for s in cfg.settings]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: setting names must be unique, got {names}")
    model_dir = base / Path(cfg.model.name_or_path).expanduser()
    local_model = cfg.model.local_model  # a folder or hub id it loads, not a served name
    model = dataclasses.replace(cfg.model, name_or_path=str(model_dir)) if (
        local_model and not Path(cfg.model.name_or_path).is_absolute() and model_dir.exists()) else cfg.model
    index_tok = cfg.index_tokenizer
    try:
        if local_model:  # a path that is not there: said now, before anything loads
            check_exists(model.name_or_path, what="[model] name_or_path", base=base)
        if index_tok and (base / Path(index_tok).expanduser()).exists():
            index_tok = str(base / Path(index_tok).expanduser())
        elif index_tok:
            check_exists(index_tok, what="index_tokenizer", base=base)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        safe_name(cfg.name)  # an overlong or unsafe run name: refused now, before any work
        check_model_context(dataclasses.replace(cfg, model=model))  # max_new_tokens vs the model's context
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    settings = tuple(dataclasses.replace(s, prompts_path=rel(s.prompts_path)) if s.prompts_path else s
                     for s in cfg.settings)
    return dataclasses.replace(cfg, model=model, settings=settings, output_dir=rel(cfg.output_dir),
                               cache_dir=rel(cfg.cache_dir) if cfg.cache_dir else None, index_tokenizer=index_tok)
