"""One experiment, end to end: model x index x settings -> generations -> traces -> scores -> results folder.

Every generation and trace goes through the persistent :class:`core.runs.cache.ResultCache`: a run only
generates what the cache misses (persisted batch by batch, so a killed run resumes where it stopped)
and only traces what is not traced yet. The model is loaded only when something must be generated.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import platform
import time
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

from core.config import (
    DecodingConfig,
    ExperimentConfig,
    MetricsConfig,
    ModelConfig,
    SettingConfig,
    TraceConfig,
    check_table,
    check_types,
    from_dict,
    to_dict,
)
from core.errors import ConfigError
from core.progress import ProgressEvent, ProgressFn
from core.records import Generation, GenKey, Prompt
from core.runs import codec
from core.runs.cache import ResultCache, generation_key, summary_key, trace_key
from core.runs.results import RunResults, load_results, save_results

log = logging.getLogger(__name__)

TRACE_CHUNK = 32  # completions traced (and cached) per chunk: the unit of resumption for tracing
PACKAGES = ("torch", "transformers", "tokenizers", "infini-gram", "numpy", "pyarrow", "rapidfuzz")
_SECTIONS = {"model": ModelConfig, "decoding": DecodingConfig, "trace": TraceConfig, "metrics": MetricsConfig}


# -- loading the TOML ----------------------------------------------------------------------------
def looks_like_local_path(name: str) -> bool:
    """True when ``name`` can only be a local path, never a hub id (``org/name``).

    >>> [looks_like_local_path(n) for n in ("gpt2", "org/model", "./m", "/abs/m", "~/m", "a/b/c", "m/")]
    [False, False, True, True, True, True, True]
    """
    return (name.startswith((".", "/", "~")) or name.endswith("/") or "\\" in name or name.count("/") > 1
            or Path(name).is_absolute())


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read an experiment TOML file into an :class:`ExperimentConfig`; raises ConfigError naming file and key.

    Tables: ``[model]`` (required), ``[decoding]``, ``[trace]``, ``[metrics]`` (``[metrics.nvr]``),
    ``[[settings]]`` (one per setting, required); top level: ``name``, ``index_dirs`` (required),
    ``output_dir``, ``cache_dir``, ``index_tokenizer``. Relative paths (index dirs, prompt files,
    output and cache dirs, a local model folder) are resolved against the TOML file's folder.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
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
    model = dataclasses.replace(cfg.model, name_or_path=str(model_dir)) if (
        cfg.model.backend == "hf" and not Path(cfg.model.name_or_path).is_absolute() and model_dir.exists()) else cfg.model
    if model.backend == "hf" and not Path(model.name_or_path).expanduser().exists() and looks_like_local_path(
            model.name_or_path):
        raise ConfigError(f"{path}: [model] name_or_path: the model folder {model_dir} does not exist; fix the "
                          "path (relative paths are read from the TOML file's folder) or give a hub id (org/name)")
    index_tok = cfg.index_tokenizer
    if index_tok and (base / Path(index_tok).expanduser()).exists():
        index_tok = str(base / Path(index_tok).expanduser())
    elif index_tok and looks_like_local_path(index_tok):
        raise ConfigError(f"{path}: index_tokenizer: the tokenizer folder {base / index_tok} does not exist; fix "
                          "the path (relative paths are read from the TOML file's folder) or give a hub id")
    settings = tuple(dataclasses.replace(s, prompts_path=rel(s.prompts_path)) if s.prompts_path else s
                     for s in cfg.settings)
    return dataclasses.replace(cfg, model=model, settings=settings, output_dir=rel(cfg.output_dir),
                               cache_dir=rel(cfg.cache_dir) if cfg.cache_dir else None, index_tokenizer=index_tok)


# -- running ---------------------------------------------------------------------------------------
def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class _Generator:
    """Loads the model (or the OpenAI client) on first use only: a fully cached run never loads it."""

    def __init__(self, cfg: ModelConfig, tokenizer):
        self.cfg, self.tokenizer, self._backend = cfg, tokenizer, None

    def __call__(self, prompts, decoding, **kw) -> list[Generation]:
        if self._backend is None:
            if self.cfg.backend == "openai":
                from core.generation.openai_backend import OpenAIBackend
                self._backend = OpenAIBackend(self.cfg, tokenizer=self.tokenizer).generate
            else:
                from core.generation.generate import generate
                from core.generation.model import load_model
                if kw.get("progress") is not None:  # loading a big model takes a while: say so first
                    kw["progress"](ProgressEvent("load-model", 0, 1, "models", message=self.cfg.name_or_path))
                lm = load_model(self.cfg)
                self._backend = lambda p, d, **k: generate(lm, p, d, **k)
        return self._backend(prompts, decoding, **kw)


def _skipped_prompt_rows(settings) -> dict[str, dict]:
    """Bad prompt-set rows skipped per setting: {setting: {"count", "file", "first"}} (recorded in the
    manifest so the app and report can show them; the CLI also logs them while building prompts)."""
    from core.prompts.build import BUILT_IN
    from core.prompts.sets import load_prompt_set

    out = {}
    for s in settings:
        if s.prompts_path and s.name not in BUILT_IN:
            problems = load_prompt_set(s.prompts_path, s.name).problems
            if problems:
                out[s.name] = {"count": len(problems), "file": s.prompts_path,
                               "first": f"line {problems[0].line}: {problems[0].reason}"}
    return out


def model_identity_for(cfg: ModelConfig) -> str:
    """Identity of the generating model: file hashes for hf, server + model name for openai."""
    if cfg.backend == "openai":
        return f"openai:{cfg.base_url}:{cfg.name_or_path}"
    from core.generation.model_identity import model_identity
    return model_identity(cfg.name_or_path, cfg.revision)


def run_experiment(cfg: ExperimentConfig, *, progress: ProgressFn | None = None, cache: ResultCache | None = None,
                   config_text: str | None = None) -> RunResults:
    """Run ``cfg`` and write its results folder ``cfg.output_dir/cfg.name``; returns the saved results.

    With the ``openai`` backend the model name is the served name: set ``index_tokenizer`` (a folder
    or hub id) and it is used as the model tokenizer too (prompts are sent as its token ids).

    ``manifest["counts"]`` says how many generations the model produced (``generated``) and how many
    came from the cache; a repeated run of the same config generates 0 and traces 0.
    """
    from core.index.corpus_index import CorpusIndex
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint, tokenizer_identity
    from core.prompts.build import build_prompts
    from core.prompts.chat import resolve_format
    from core.scoring.summary import summarize
    from core.tracing.echo import mark_echoes
    from core.tracing.trace import trace_many

    t_start, timings = time.perf_counter(), {}
    cache = cache if cache is not None else ResultCache(cfg.cache_dir)
    if cfg.model.trust_remote_code and cfg.model.backend == "hf":
        log.warning("trust_remote_code is on: the model/tokenizer folder %s may run its own Python code on this "
                    "machine; turn it off unless you trust that folder", cfg.model.name_or_path)
    if progress is not None:
        progress(ProgressEvent("open", 0, 1, "steps", message=f"loading tokenizer and index ({cfg.model.name_or_path})"))
    if cfg.model.backend == "openai" and cfg.index_tokenizer:  # a served name is no tokenizer: use the index's
        model_tok = index_tok = load_tokenizer(cfg.index_tokenizer)
        separate_index_tok = False
    else:
        model_tok = load_tokenizer(cfg.model.name_or_path, cfg.model.revision, cfg.model.trust_remote_code)
        index_tok = load_tokenizer(cfg.index_tokenizer) if cfg.index_tokenizer else model_tok
        separate_index_tok = bool(cfg.index_tokenizer)
    index = CorpusIndex.open(cfg.index_dirs, tokenizer=index_tok)  # raises IndexMismatch for another tokenizer
    index_fp = index.fingerprint
    identity, model_tok_fp = model_identity_for(cfg.model), tokenizer_fingerprint(model_tok)
    timings["open"] = time.perf_counter() - t_start

    t = time.perf_counter()
    prompts: list[Prompt] = []
    for setting in cfg.settings:
        prompts += build_prompts(setting, model_tok, index,
                                 index_tokenizer=index_tok if separate_index_tok else None)
    skipped = _skipped_prompt_rows(cfg.settings)
    timings["prompts"] = time.perf_counter() - t

    # generate what the cache misses, persisting every batch
    t = time.perf_counter()
    n = cfg.decoding.num_samples
    gkeys = {GenKey(p.setting, p.prompt_id, i): generation_key(identity, model_tok_fp, p, cfg.decoding, i)
             for p in prompts for i in range(n)}
    if len(gkeys) != len(prompts) * n:
        raise ConfigError("two prompts share a (setting, prompt_id): prompt ids must be unique within a setting")
    prompt_of = {GenKey(p.setting, p.prompt_id, i): p for p in prompts for i in range(n)}
    cached = cache.get_generations(list(gkeys.values()))
    gens: dict[GenKey, Generation] = {}
    for k, ck in gkeys.items():
        if ck in cached:  # the cached value may come from another setting with the same prompt ids
            gens[k] = dataclasses.replace(cached[ck], key=k, prompt=prompt_of[k])
    from_cache = len(gens)
    missing = [p for p in prompts if any(GenKey(p.setting, p.prompt_id, i) not in gens for i in range(n))]
    generated = 0
    if missing:
        def on_batch(batch: list[Generation]) -> None:
            cache.put_generations((gkeys[g.key], g) for g in batch)

        new = _Generator(cfg.model, model_tok)(missing, cfg.decoding, progress=progress,
                                              skip=lambda key: key in gens, on_batch=on_batch)
        generated = len(new)
        gens.update({g.key: g for g in new})
    generations = tuple(gens[k] for k in gkeys)
    timings["generate"] = time.perf_counter() - t

    # trace what is not traced yet, caching chunk by chunk
    t = time.perf_counter()
    nvr = cfg.metrics.nvr
    tkeys = {g.key: trace_key(gkeys[g.key], g.completion, index_fp, cfg.trace, nvr) for g in generations}
    traces = dict(cache.get_traces(list(tkeys.values())))
    todo = [g for g in generations if tkeys[g.key] not in traces]
    traces_from_cache = len(generations) - len(todo)
    for i in range(0, len(todo), TRACE_CHUNK):
        chunk = todo[i:i + TRACE_CHUNK]
        done = trace_many(index, index_tok, [(g.key, g.completion) for g in chunk], cfg.trace, nvr, progress=progress)
        cache.put_traces((tkeys[tr.key], tr) for tr in done)
        traces.update({tkeys[tr.key]: tr for tr in done})
    trace_list = tuple(dataclasses.replace(traces[tkeys[g.key]], key=g.key) if traces[tkeys[g.key]].key != g.key
                       else traces[tkeys[g.key]] for g in generations)
    trace_list = tuple(mark_echoes(trace_list, {g.key: g.prompt.text for g in generations}))  # prompt echo
    timings["trace"] = time.perf_counter() - t

    # score (cached by the trace keys and the metrics config)
    t = time.perf_counter()
    skey = summary_key({"traces": [tkeys[g.key] for g in generations], "keys": [codec.to_jsonable(g.key) for g in
                        generations], "metrics": to_dict(cfg.metrics)})
    scored = cache.get_summary(skey)
    run = RunResults(None, {}, generations, trace_list)
    if scored is None:
        summary, pm = summarize(run, cfg.metrics, progress=progress)
        scored = {"summary": codec.to_jsonable(summary), "pm": codec.to_jsonable(pm)}
        cache.put_summary(skey, scored)
    # the cache stores JSON with sorted keys: sort a fresh score the same way (cold and warm runs write the
    # same bytes), then put the settings back in their own order
    scored, order = json.loads(json.dumps(scored, sort_keys=True)), run.settings()
    scored = {part: {s: scored[part][s] for s in sorted(scored[part], key=lambda s: (s not in order,
                     order.index(s) if s in order else 0, s))} for part in ("summary", "pm")}
    timings["score"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start

    manifest = {
        "run_name": cfg.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model": {"identity": identity, "config": to_dict(cfg.model),
                  "tokenizer": tokenizer_identity(model_tok), "tokenizer_fingerprint": model_tok_fp},
        "index": {"dirs": list(cfg.index_dirs), "fingerprint": index_fp,
                  "tokenizer": tokenizer_identity(index_tok), "tokenizer_fingerprint": tokenizer_fingerprint(index_tok),
                  "num_docs": int(index.num_docs), "num_tokens": int(index.num_tokens)},
        "decoding": to_dict(cfg.decoding), "trace": to_dict(cfg.trace), "metrics": to_dict(cfg.metrics),
        "settings": [to_dict(s) for s in cfg.settings],
        "prompt_formats": {s.name: resolve_format(s, model_tok) for s in cfg.settings},  # "auto" resolved
        "seeds": {"decoding": cfg.decoding.seed, "trace": cfg.trace.seed, "metrics": cfg.metrics.seed,
                  "settings": {s.name: s.seed for s in cfg.settings}},
        "package_versions": _versions(), "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "counts": {"generations": len(generations), "generated": generated, "generations_from_cache": from_cache,
                   "traced": len(todo), "traces_from_cache": traces_from_cache},
        "cache": {"path": str(cache.path), "informational": True,  # where this run's cache was; not needed to reload
                  "note": "the result cache on the machine that ran this; not needed to open or re-trace the results"},
        "skipped_rows": skipped,
    }
    run = RunResults(None, manifest, generations, trace_list, scored["summary"], scored["pm"])
    folder = save_results(run, Path(cfg.output_dir) / cfg.name, config_text=config_text)
    log.info("run %s: %d generations (%d generated), %d traced; results in %s", cfg.name, len(generations),
             generated, len(todo), folder)
    return load_results(folder)
