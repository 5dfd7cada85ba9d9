"""One experiment, end to end: model x index x settings -> generations -> traces -> scores -> results folder.

Every generation and trace goes through the persistent :class:`core.runs.cache.ResultCache`: a run only
generates what the cache misses (persisted batch by batch, so a killed run resumes where it stopped)
and only traces what is not traced yet. The model is loaded only when something must be generated.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import BUILT_IN_SETTINGS, ExperimentConfig, ModelConfig, SettingConfig
from core.config.tables import to_dict
from core.errors import ConfigError
from core.generation import backends
from core.progress import ChunkedStage, ProgressEvent, ProgressFn
from core.records import Generation, GenKey, Prompt, TraceResult
from core.runs import codec
from core.runs.cache import ResultCache, generation_key, summary_key, trace_key
from core.runs.folders import check_replaceable, results_folder
from core.runs.lock import results_lock
from core.runs.manifest import Counts, IndexInfo, Manifest, ModelInfo, SkippedRows, assemble
from core.runs.results import RunResults, load_results, save_results

log = logging.getLogger(__name__)

TRACE_CHUNK = 32  # completions traced (and cached) per chunk: the unit of resumption for tracing
SKIPPED_LISTED = 5  # skipped prompt rows whose reasons the manifest keeps in full
CACHE_STAGE = "cache"  # progress events of this stage say how many generations / traces the result cache holds


# -- running ---------------------------------------------------------------------------------------
class _Generator:
    """Starts the backend (loads the model, opens the client) on first use only: a fully cached run never does."""

    def __init__(self, cfg: ModelConfig, tokenizer):
        self.cfg, self.tokenizer, self._backend = cfg, tokenizer, None

    def __call__(self, prompts, decoding, **kw) -> list[Generation]:
        if self._backend is None:
            self._backend = backends.start(self.cfg, self.tokenizer, kw.get("progress"))
        return self._backend.generate(prompts, decoding, **kw)


def _skipped_prompt_rows(settings) -> dict[str, SkippedRows]:
    """Bad prompt-set rows skipped per setting (recorded in the manifest so the app and report can show
    them; the CLI also logs them while building prompts)."""
    from core.prompts.sets import load_prompt_set

    out = {}
    for s in settings:
        if s.prompts_path and s.name not in BUILT_IN_SETTINGS:
            problems = load_prompt_set(s.prompts_path, s.name).problems
            if problems:
                reasons = tuple(f"line {p.line}: {p.reason}" for p in problems[:SKIPPED_LISTED])
                out[s.name] = SkippedRows(len(problems), s.prompts_path, reasons[0], reasons)
    return out


@dataclass
class _Run:
    """What the steps of :func:`run_experiment` hand each other."""

    cfg: ExperimentConfig
    cache: ResultCache
    progress: ProgressFn | None
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    model_tok: Any = None
    index_tok: Any = None
    separate_index_tok: bool = False
    index: Any = None
    model: ModelInfo | None = None
    prompts: list[Prompt] = field(default_factory=list)
    floor: list[Generation] = field(default_factory=list)  # floor settings' texts: completions not generated
    gkeys: dict[GenKey, str] = field(default_factory=dict)  # generation -> its cache key
    generations: tuple[Generation, ...] = ()
    tkeys: dict[GenKey, str] = field(default_factory=dict)  # generation -> its trace cache key
    traces: tuple[TraceResult, ...] = ()
    scored: dict = field(default_factory=dict)  # {"summary": ..., "pm": ...}
    floor_info: dict = field(default_factory=dict)  # how the chance floor was made (recorded in the manifest)


def _open(r: _Run) -> None:
    """Tokenizers, the corpus index (raises IndexMismatch for another tokenizer) and the model identity."""
    from core.index.corpus_index import CorpusIndex
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint, tokenizer_identity

    cfg = r.cfg
    local_model = cfg.model.local_model
    if cfg.model.trust_remote_code and local_model:
        log.warning("trust_remote_code is on: the model/tokenizer folder %s may run its own Python code on this "
                    "machine; turn it off unless you trust that folder", cfg.model.name_or_path)
    if r.progress is not None:
        r.progress(ProgressEvent("open", 0, 1, "steps", message=f"loading tokenizer and index ({cfg.model.name_or_path})"))
    if not local_model and cfg.index_tokenizer:  # a served name is no tokenizer: use the index's
        r.model_tok = r.index_tok = load_tokenizer(cfg.index_tokenizer)
    else:
        r.model_tok = load_tokenizer(cfg.model.name_or_path, cfg.model.revision, cfg.model.trust_remote_code)
        r.index_tok = load_tokenizer(cfg.index_tokenizer) if cfg.index_tokenizer else r.model_tok
        r.separate_index_tok = bool(cfg.index_tokenizer)
    from core.cluster import configured_address

    if address := configured_address(cfg.trace):  # the shards served by actors on a Ray cluster (same results)
        from core.cluster.index import open_cluster_index

        r.index = open_cluster_index(cfg.index_dirs, address, tokenizer=r.index_tok)
    else:
        r.index = CorpusIndex.open(cfg.index_dirs, tokenizer=r.index_tok)
    r.model = ModelInfo(backends.identity(cfg.model), cfg.model, tokenizer_identity(r.model_tok),
                        tokenizer_fingerprint(r.model_tok))


def _holdout_floor(r: _Run) -> None:
    """Add the index's held-out documents as the run's chance floor (``[floor] holdout``) when the run
    has no floor of its own; their texts are cut to the completion budget (``max_new_tokens``)."""
    from core.index.holdout import HOLDOUT_FILE, holdout_of
    from core.prompts.floor import floor_names

    cfg = r.cfg
    if floor_names(cfg.settings, [s.name for s in cfg.settings]):
        r.floor_info = {"kind": "texts", "settings": {s.name: {"file": s.prompts_path, "n_prompts": s.n_prompts}
                                                      for s in cfg.settings if s.kind == "floor"}}
        return
    if not cfg.floor.holdout:
        return
    found = [(d, rec) for d in cfg.index_dirs if (rec := holdout_of(d)) is not None]
    if not found:
        return
    folder, rec = found[0]
    setting = SettingConfig(cfg.floor.name, n_prompts=int(rec["docs"]), prompts_path=str(Path(folder) / HOLDOUT_FILE),
                            kind="floor")
    r.cfg = dataclasses.replace(cfg, settings=(*cfg.settings, setting))
    r.floor_info = {"kind": "holdout", "setting": setting.name, "index_dir": str(folder),
                    "max_tokens": min(int(rec.get("max_tokens", cfg.decoding.max_new_tokens)),
                                      cfg.decoding.max_new_tokens),
                    **{k: rec.get(k) for k in ("requested", "docs", "seed", "ids", "found_in_index")}}


def _build_prompts(r: _Run) -> None:
    from core.index.holdout import cut_text
    from core.prompts.build import build_prompts
    from core.prompts.floor import floor_generations

    _holdout_floor(r)
    for setting in r.cfg.settings:
        if setting.kind == "floor":  # held-out texts stand in for completions: nothing to generate
            gens = floor_generations(setting)
            if r.floor_info.get("kind") == "holdout" and setting.name == r.floor_info["setting"]:
                cut = r.floor_info["max_tokens"]  # as long as a completion may be
                gens = [dataclasses.replace(g, completion=cut_text(g.completion, r.index_tok, cut)[0]) for g in gens]
            r.floor += gens
            continue
        r.prompts += build_prompts(setting, r.model_tok, r.index,
                                   index_tokenizer=r.index_tok if r.separate_index_tok else None)


def _generate_missing(r: _Run) -> None:
    """Every (prompt, sample) from the cache, generating what it misses and persisting every batch;
    then the floor texts, which stand as they are."""
    from core.prompts.floor import floor_key

    n, cache = r.cfg.decoding.num_samples, r.cache
    r.gkeys = {GenKey(p.setting, p.prompt_id, i): generation_key(r.model.identity, r.model.tokenizer_fingerprint,
                                                                 p, r.cfg.decoding, i)
               for p in r.prompts for i in range(n)}
    if len(r.gkeys) != len(r.prompts) * n:
        raise ConfigError("two prompts share a (setting, prompt_id): prompt ids must be unique within a setting")
    prompt_of = {GenKey(p.setting, p.prompt_id, i): p for p in r.prompts for i in range(n)}
    cached = cache.get_generations(list(r.gkeys.values()))
    gens = {k: dataclasses.replace(cached[ck], key=k, prompt=prompt_of[k])  # may come from another setting
            for k, ck in r.gkeys.items() if ck in cached}
    r.counts["generations_from_cache"] = len(gens)
    if r.progress is not None:  # what is kept so far (a cancelled run can say what it leaves in the cache)
        r.progress(ProgressEvent(CACHE_STAGE, len(gens), len(r.gkeys), "generations", message="in the result cache"))
    missing = [p for p in r.prompts if any(GenKey(p.setting, p.prompt_id, i) not in gens for i in range(n))]
    new: list[Generation] = []
    if missing:
        new = _Generator(r.cfg.model, r.model_tok)(
            missing, r.cfg.decoding, progress=r.progress, skip=lambda key: key in gens,
            on_batch=lambda batch: cache.put_generations((r.gkeys[g.key], g) for g in batch))
        gens.update({g.key: g for g in new})
    r.counts["generated"] = len(new)
    r.generations = tuple(gens[k] for k in r.gkeys) + tuple(r.floor)
    r.gkeys.update({g.key: floor_key(g) for g in r.floor})  # a floor text's trace key derives from its own key


def _trace_missing(r: _Run) -> None:
    """Every generation's trace from the cache, tracing what it misses chunk by chunk (nv_recall is
    scored with the default block thresholds; scoring applies the run's own, see score_traces)."""
    from core.tracing.echo import mark_echoes
    from core.tracing.trace import trace_many

    index_fp = r.index.fingerprint
    r.tkeys = {g.key: trace_key(r.gkeys[g.key], g.completion, index_fp, r.cfg.trace) for g in r.generations}
    traces = dict(r.cache.get_traces(list(r.tkeys.values())))
    todo = [g for g in r.generations if r.tkeys[g.key] not in traces]
    stage = ChunkedStage(r.progress, len(todo))  # one count (and ETA) over every chunk

    def kept() -> None:
        if r.progress is not None:
            r.progress(ProgressEvent(CACHE_STAGE, len(traces), len(r.generations), "traces", message="in the result cache"))

    kept()
    for i in range(0, len(todo), TRACE_CHUNK):
        chunk = todo[i:i + TRACE_CHUNK]
        done = trace_many(r.index, r.index_tok, [(g.key, g.completion) for g in chunk], r.cfg.trace, progress=stage)
        r.cache.put_traces((r.tkeys[tr.key], tr) for tr in done)
        traces.update({r.tkeys[tr.key]: tr for tr in done})
        stage.chunk_done(len(chunk))
        kept()
    r.counts["traced"], r.counts["traces_from_cache"] = len(todo), len(r.generations) - len(todo)
    r.traces = tuple(dataclasses.replace(t, key=g.key) if (t := traces[r.tkeys[g.key]]).key != g.key else t
                     for g in r.generations)
    r.traces = tuple(mark_echoes(r.traces, {g.key: g.prompt.text for g in r.generations}))  # prompt echo


def _score(r: _Run) -> None:
    """summary and PM (cached by the trace keys and the metrics config)."""
    from core.prompts.floor import floor_names
    from core.scoring.summary import summarize

    gens = r.generations
    run = RunResults(None, Manifest(r.cfg.name, settings=r.cfg.settings), gens, r.traces)
    skey = summary_key({"traces": [r.tkeys[g.key] for g in gens], "keys": [codec.to_jsonable(g.key) for g in gens],
                        "metrics": to_dict(r.cfg.metrics), "floors": floor_names(r.cfg.settings, run.settings())})
    scored = r.cache.get_summary(skey)
    if scored is None:
        summary, pm = summarize(run, r.cfg.metrics, progress=r.progress)
        scored = {"summary": codec.to_jsonable(summary), "pm": codec.to_jsonable(pm)}
        r.cache.put_summary(skey, scored)
    # the cache stores JSON with sorted keys: sort a fresh score the same way (cold and warm runs write the
    # same bytes), then put the settings back in their own order
    scored, order = json.loads(json.dumps(scored, sort_keys=True)), run.settings()
    r.scored = {part: {s: scored[part][s] for s in sorted(scored[part], key=lambda s: (
        s not in order, order.index(s) if s in order else 0, s))} for part in ("summary", "pm")}


def _manifest(r: _Run) -> Manifest:
    from core.index.tokenizer import tokenizer_fingerprint, tokenizer_identity
    from core.prompts.chat import resolve_format

    index = IndexInfo(tuple(r.cfg.index_dirs), r.index.fingerprint, tokenizer_identity(r.index_tok),
                      tokenizer_fingerprint(r.index_tok), int(r.index.num_docs), int(r.index.num_tokens))
    counts = Counts(len(r.generations), r.counts["generated"], r.counts["generations_from_cache"],
                    r.counts["traced"], r.counts["traces_from_cache"])
    return assemble(r.cfg, r.model, index, counts, timings_s=r.timings, cache_path=str(r.cache.path),
                    skipped_rows=_skipped_prompt_rows(r.cfg.settings),
                    prompt_formats={s.name: resolve_format(s, r.model_tok) for s in r.cfg.settings},  # auto resolved
                    floor=r.floor_info)


def _write(r: _Run, config_text: str | None) -> Path:
    run = RunResults(None, _manifest(r), r.generations, r.traces, r.scored["summary"], r.scored["pm"])
    return save_results(run, results_folder(r.cfg.output_dir, r.cfg.name), config_text=config_text)


def run_experiment(cfg: ExperimentConfig, *, progress: ProgressFn | None = None, cache: ResultCache | None = None,
                   config_text: str | None = None) -> RunResults:
    """Run ``cfg`` and write its results folder ``cfg.output_dir/cfg.name``; returns the saved results.

    open -> prompts -> generate what is missing -> trace what is missing -> score -> write. With the
    ``openai`` backend the model name is the served name: set ``index_tokenizer`` (a folder or hub id)
    and it is used as the model tokenizer too (prompts are sent as its token ids).

    ``manifest.counts`` says how many generations the model produced (``generated``) and how many
    came from the cache; a repeated run of the same config generates 0 and traces 0.
    """
    folder = results_folder(cfg.output_dir, cfg.name)
    check_replaceable(folder)  # a bad name or a foreign folder fails before any work
    with results_lock(folder, cfg.name):  # one writer per results folder, for the whole run
        return _run_locked(cfg, progress, cache, config_text)


def _run_locked(cfg: ExperimentConfig, progress: ProgressFn | None, cache: ResultCache | None,
                config_text: str | None) -> RunResults:
    r = _Run(cfg, cache if cache is not None else ResultCache(cfg.cache_dir), progress)
    t_start = time.perf_counter()
    try:
        for name, step in (("open", _open), ("prompts", _build_prompts), ("generate", _generate_missing),
                           ("trace", _trace_missing), ("score", _score)):
            t = time.perf_counter()
            step(r)
            r.timings[name] = time.perf_counter() - t
        r.timings["total"] = time.perf_counter() - t_start
        folder = _write(r, config_text)
    finally:
        if hasattr(r.index, "close"):  # a cluster index (core.cluster.index) ends its shard actors
            r.index.close()
    log.info("run %s: %d generations (%d generated), %d traced; results in %s", cfg.name, len(r.generations),
             r.counts["generated"], r.counts["traced"], folder)
    return load_results(folder)
