"""The manifest of a results folder: a typed, versioned, frozen record written by the run and parsed once.

:func:`assemble` is the one writer (``run_experiment`` and the test fixtures call it),
:func:`to_json` turns a :class:`Manifest` into ``manifest.json``'s dict, and :func:`parse` is the one
reader (``load_results`` calls it; everybody else reads the typed fields). A wrong shape (a section
that is not a table, a value of the wrong type, a config that does not validate) raises
:class:`core.errors.ResultsError`; keys this version does not know are dropped with a warning,
logged and kept in :attr:`Manifest.warnings` for the app to show. The old ``metrics.nvr`` key
loads as ``metrics.nv_blocks`` with a deprecation warning.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from core.config import (
    DecodingConfig,
    ExperimentConfig,
    MetricsConfig,
    ModelConfig,
    SettingConfig,
    TraceConfig,
)
from core.config.tables import check_types, from_dict, upgrade_metrics_table
from core.errors import ConfigError, ResultsError
from core.runs import codec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # of the results folder, recorded in the manifest as format_version
PACKAGES = ("torch", "transformers", "tokenizers", "infini-gram", "numpy", "pyarrow", "rapidfuzz")


@dataclass(frozen=True)
class ModelInfo:
    identity: str  # file hashes (hf) or server + served name (openai)
    config: ModelConfig | None = None
    tokenizer: str | None = None  # tokenizer name or folder
    tokenizer_fingerprint: str | None = None


@dataclass(frozen=True)
class IndexInfo:
    dirs: tuple[str, ...] = ()  # one folder per shard
    fingerprint: str | None = None
    tokenizer: str | None = None
    tokenizer_fingerprint: str | None = None
    num_docs: int | None = None
    num_tokens: int | None = None


@dataclass(frozen=True)
class Counts:
    generations: int = 0
    generated: int = 0  # produced by the model in this run
    generations_from_cache: int = 0
    traced: int = 0  # traced in this run
    traces_from_cache: int = 0


@dataclass(frozen=True)
class SkippedRows:
    count: int  # bad rows of a prompt file that were skipped
    file: str
    first: str  # "line N: reason" of the first one
    reasons: tuple[str, ...] = ()  # "line N: reason" of the first few (SKIPPED_LISTED), in full


@dataclass(frozen=True)
class Manifest:
    run_name: str
    created: str | None = None  # ISO time, UTC
    model: ModelInfo | None = None
    index: IndexInfo | None = None
    decoding: DecodingConfig = DecodingConfig()
    trace: TraceConfig = TraceConfig()
    metrics: MetricsConfig = MetricsConfig()  # the thresholds summary.json and pm.json were scored with
    settings: tuple[SettingConfig, ...] = ()
    seeds: Mapping[str, Any] = field(default_factory=dict)
    package_versions: Mapping[str, str | None] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)
    counts: Counts | None = None
    cache: Mapping[str, Any] = field(default_factory=dict)  # informational: where this run's cache was
    skipped_rows: Mapping[str, SkippedRows] = field(default_factory=dict)
    prompt_formats: Mapping[str, str] = field(default_factory=dict)  # per setting, as resolved (raw | chat)
    floor: Mapping[str, Any] = field(default_factory=dict)  # how the chance floor was made (held-out docs or given texts)
    format: str | None = None  # "propme-results": marks a folder this tool wrote (and may replace); set on save
    format_version: int = FORMAT_VERSION
    scores_sha256: Mapping[str, str] = field(default_factory=dict)  # summary.json, pm.json as written; set on save
    n_generations: int = 0  # row counts, filled in by save_results
    n_traces: int = 0
    n_spans: int = 0
    n_docs: int = 0
    settings_present: tuple[str, ...] = ()
    relative_paths: tuple[str, ...] = ()  # fields stored relative to the folder (core.runs.manifest_paths)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # from parsing; never written

    @property
    def label(self) -> str:
        """A short name for the run: its run name, else the model identity."""
        return self.run_name or (self.model.identity if self.model else "") or "run"


def package_versions() -> dict[str, str | None]:
    """Python and the versions of the packages that decide a run's numbers (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def assemble(cfg: ExperimentConfig, model: ModelInfo, index: IndexInfo, counts: Counts, *,
             timings_s: Mapping[str, float] | None = None, cache_path: str | None = None,
             skipped_rows: Mapping[str, SkippedRows] | None = None, created: str | None = None,
             versions: Mapping[str, str | None] | None = None,
             prompt_formats: Mapping[str, str] | None = None, floor: Mapping[str, Any] | None = None) -> Manifest:
    """The manifest of a run of ``cfg`` (row counts are filled in by ``save_results``)."""
    return Manifest(
        run_name=cfg.name, created=created or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        model=model, index=index, decoding=cfg.decoding, trace=cfg.trace, metrics=cfg.metrics, settings=cfg.settings,
        seeds={"decoding": cfg.decoding.seed, "trace": cfg.trace.seed, "metrics": cfg.metrics.seed,
               "settings": {s.name: s.seed for s in cfg.settings}},
        package_versions=dict(versions if versions is not None else package_versions()),
        timings_s={k: round(v, 3) for k, v in (timings_s or {}).items()}, counts=counts,
        cache={"path": cache_path, "informational": True,
               "note": "the result cache on the machine that ran this; not needed to open or re-trace the results"}
        if cache_path else {},
        skipped_rows=dict(skipped_rows or {}), prompt_formats=dict(prompt_formats or {}), floor=dict(floor or {}))


def to_json(manifest: Manifest) -> dict[str, Any]:
    """``manifest.json``'s dict (JSON-ready; the parse warnings are not written)."""
    out = codec.to_jsonable(manifest)
    out.pop("warnings")
    return out


# -- reading -----------------------------------------------------------------------------------------
def _table(value: Any, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise ResultsError(f"manifest {where} = {value!r:.80}: expected a table")
    return dict(value)


def _known(cls: type, data: dict, where: str, notes: list[str]) -> dict:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in sorted(set(data) - names):
        notes.append(f"manifest: unknown key {where}.{key} ignored (written by another PropMe version?)")
    return {k: v for k, v in data.items() if k in names}


def _config(cls: type, value: Any, where: str, notes: list[str]) -> Any:
    data = _known(cls, _table(value, where), where, notes)
    try:
        cfg = from_dict(cls, data)
        check_types(cfg, where)
    except (ConfigError, TypeError) as e:
        raise ResultsError(f"manifest {where}: {e}") from None
    return cfg


def _record(cls: type, value: Any, where: str, notes: list[str]) -> Any:
    """A plain record (ModelInfo, IndexInfo, Counts, ...) with its field types checked."""
    data = _known(cls, _table(value, where), where, notes)
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, v in data.items():
        want = hints[name]
        if name == "config" and cls is ModelInfo:
            data[name] = None if v is None else _config(ModelConfig, v, f"{where}.config", notes)
        elif want.startswith("tuple"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ResultsError(f"manifest {where}.{name} = {v!r:.80}: expected a list of strings")
            data[name] = tuple(v)
        elif want.startswith("int") and not (isinstance(v, int) and not isinstance(v, bool)) and not (
                v is None and "None" in want):
            raise ResultsError(f"manifest {where}.{name} = {v!r:.80}: expected an integer")
        elif want.startswith("str") and not isinstance(v, str) and not (v is None and "None" in want):
            raise ResultsError(f"manifest {where}.{name} = {v!r:.80}: expected a string")
    try:
        return cls(**data)
    except TypeError as e:
        raise ResultsError(f"manifest {where}: {e}") from None


def parse(data: Any, where: str = "manifest.json") -> Manifest:
    """The :class:`Manifest` of ``manifest.json``'s dict; wrong shape -> ResultsError, unknown keys -> warnings."""
    if not isinstance(data, Mapping):
        raise ResultsError(f"{where}: expected a JSON object, got {type(data).__name__}")
    notes: list[str] = []
    data = _known(Manifest, dict(data), "manifest", notes)
    kw: dict[str, Any] = {}
    for key, value in data.items():
        if value is None and key in ("created", "model", "index", "counts"):
            kw[key] = None
        elif key == "metrics":
            try:
                table, renamed = upgrade_metrics_table(_table(value, "metrics"), "metrics")
            except ConfigError as e:
                raise ResultsError(f"manifest {e}") from None
            notes += [f"manifest: {n} (an older PropMe wrote this folder)" for n in renamed]
            kw[key] = _config(MetricsConfig, table, "metrics", notes)
        elif key in ("decoding", "trace"):
            kw[key] = _config({"decoding": DecodingConfig, "trace": TraceConfig}[key], value, key, notes)
        elif key == "settings":
            if not isinstance(value, list):
                raise ResultsError(f"manifest settings = {value!r:.80}: expected a list of setting tables")
            kw[key] = tuple(_config(SettingConfig, s, f"settings[{i}]", notes) for i, s in enumerate(value))
        elif key in ("model", "index", "counts"):
            kw[key] = _record({"model": ModelInfo, "index": IndexInfo, "counts": Counts}[key], value, key, notes)
        elif key == "skipped_rows":
            kw[key] = {s: _record(SkippedRows, v, f"skipped_rows.{s}", notes) for s, v in _table(value, key).items()}
        elif key in ("seeds", "package_versions", "timings_s", "cache", "scores_sha256", "prompt_formats", "floor"):
            kw[key] = _table(value, key)
        elif key in ("settings_present", "relative_paths"):
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ResultsError(f"manifest {key} = {value!r:.80}: expected a list of strings")
            kw[key] = tuple(value)
        elif key in ("run_name", "created", "format"):
            if not isinstance(value, str):
                raise ResultsError(f"manifest {key} = {value!r:.80}: expected a string")
            kw[key] = value
        else:  # format_version and the row counts
            if not isinstance(value, int) or isinstance(value, bool):
                raise ResultsError(f"manifest {key} = {value!r:.80}: expected an integer")
            kw[key] = value
    for note in notes:
        log.warning("%s: %s", where, note)
    return Manifest(**{"run_name": "", **kw, "warnings": tuple(notes)})
