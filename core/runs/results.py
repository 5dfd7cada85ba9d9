"""The results folder of a run: what a run produced, on disk, reloadable exactly.

Layout (``FORMAT_VERSION`` 1)::

    manifest.json        a :class:`core.runs.manifest.Manifest` (run name, created, model, index, configs,
                         settings, seeds, package versions, timings, row counts, format_version);
                         paths inside the project are stored relative to the folder and resolved on
                         load (:mod:`core.runs.manifest_paths`)
    config.toml          copy of the experiment config (when the run came from one)
    generations.parquet  one row per generation; ``spans_json`` holds its trace (spans + documents)
    spans.parquet        one row per final span (flat, for notebooks)
    docs.parquet         one row per retrieved document (flat, for notebooks)
    summary.json         per setting: metrics and bootstrap intervals
    pm.json              propensity scores (natural settings against prefix); the sha256 of both files is
                         in the manifest (``scores_sha256``): an edited score file is refused on load

Writes go to a temporary sibling folder (``.NAME.tmp-PID-HEX``) that is renamed into place, so a
half-written folder is never loaded; files and folders the user added to a results folder (notes, their
own analyses) are kept: they move into the new folder, never deleted; which folders may be replaced, and the clean-up of temporary
folders left by a killed write, live in :mod:`core.runs.folders`. :func:`load_results`
validates every file (schema and types of each parquet file, row counts of each against the
generations and the manifest) and raises :class:`ResultsError` naming the file and what to do.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DamagedResults, ResultsError
from core.jsonio import parse_json, read_json
from core.records import Generation, GenKey, Prompt, Span, TraceResult
from core.runs import codec, manifest_paths
from core.runs.folders import (
    REQUIRED_FILES,
    RESULTS_FORMAT,
    check_replaceable,
    clean_stale_temp_folders,
    keep_user_files,
)
from core.runs.manifest import FORMAT_VERSION, Manifest, parse, to_json
from core.runs.results_checks import check_flat_tables, check_scores, read_table, sha256_hex
from core.runs.schema import DOCS_SCHEMA, GENERATIONS_SCHEMA, SPANS_SCHEMA

log = logging.getLogger(__name__)

# Prompt/Generation fields stored as their own columns; any other field goes to extra_json.
_PROMPT_COLS = {"text": "prompt_text", "token_ids": "prompt_token_ids", "domain": "domain",
                "source_doc_id": "source_doc_id", "source_doc_ix": "source_doc_ix",
                "true_continuation": "true_continuation", "true_continuation_ids": "true_continuation_ids"}
_GEN_COLS = {"completion": "completion", "completion_ids": "completion_ids", "finish_reason": "finish_reason"}
_TRACE_FIELDS = {"key", "completion", "n_tokens", "spans", "full_doc_frequency"}

@dataclass(frozen=True)
class RunResults:
    """A run's generations and traces (keyed by GenKey), with its manifest and scores.

    ``traces`` may be shorter than ``generations`` (a generation not traced yet), never longer.
    """

    path: str | None
    manifest: Manifest
    generations: tuple[Generation, ...]
    traces: tuple[TraceResult, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)  # setting -> metrics and intervals
    pm: Mapping[str, Any] = field(default_factory=dict)  # natural setting -> metric -> PM interval

    def settings(self) -> list[str]:
        """Settings in order of first appearance among the generations."""
        return list(dict.fromkeys(g.key.setting for g in self.generations))

    def by_setting(self, setting: str) -> tuple[list[Generation], list[TraceResult]]:
        """Generations of one setting that have a trace, and those traces, in matching order."""
        traces = {t.key: t for t in self.traces if t.key.setting == setting}
        gens = [g for g in self.generations if g.key in traces]
        return gens, [traces[g.key] for g in gens]

    def lookup(self, key: GenKey) -> tuple[Generation, TraceResult | None]:
        """The generation with this key and its trace (None when untraced); KeyError if absent."""
        gen = next((g for g in self.generations if g.key == key), None)
        if gen is None:
            raise KeyError(key)
        return gen, next((t for t in self.traces if t.key == key), None)


def _extra(obj: Any, known: set[str]) -> dict[str, Any]:
    return {f.name: codec.to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if f.name not in known}


def _ids(v):
    return None if v is None else list(v)


def _generation_row(gen: Generation, trace: TraceResult | None, pos: int | None) -> dict[str, Any]:
    p = gen.prompt
    if (p.setting, p.prompt_id) != (gen.key.setting, gen.key.prompt_id):
        raise ResultsError(f"generation {gen.key}: its prompt says setting={p.setting!r}, "
                           f"prompt_id={p.prompt_id!r}; a generation's key must match its prompt")
    row: dict[str, Any] = {"setting": gen.key.setting, "prompt_id": gen.key.prompt_id,
                           "sample_index": gen.key.sample_index}
    for name, col in _PROMPT_COLS.items():
        v = getattr(p, name)
        row[col] = _ids(v) if name.endswith("ids") else v
    for name, col in _GEN_COLS.items():
        v = getattr(gen, name)
        row[col] = _ids(v) if name.endswith("ids") else v
    extra = {"prompt": _extra(p, set(_PROMPT_COLS) | {"setting", "prompt_id"}),
             "generation": _extra(gen, set(_GEN_COLS) | {"key", "prompt"})}
    row.update(traced=trace is not None, trace_pos=pos, n_tokens=None, longest_span=None, full_match=None,
               full_doc_frequency=None, n_spans=None, n_docs=None, max_nv_recall=None, spans_json=None,
               trace_completion=None)
    if trace is not None:
        docs = trace.docs
        row.update(n_tokens=trace.n_tokens, longest_span=trace.longest_span, full_match=trace.full_match,
                   full_doc_frequency=trace.full_doc_frequency, n_spans=len(trace.spans), n_docs=len(docs),
                   max_nv_recall=trace.max_nv_recall,
                   spans_json=codec.dumps(trace.spans),
                   trace_completion=None if trace.completion == gen.completion else trace.completion)
        extra["trace"] = _extra(trace, _TRACE_FIELDS)
    row["extra_json"] = codec.dumps({k: v for k, v in extra.items() if v})
    return row


def _flat_rows(trace: TraceResult) -> tuple[list[dict], list[dict]]:
    key = {"setting": trace.key.setting, "prompt_id": trace.key.prompt_id,
           "sample_index": trace.key.sample_index}
    spans, docs = [], []
    for si, s in enumerate(trace.spans):
        spans.append({**key, "span_ix": si, "start": s.start, "end": s.end, "length": s.length,
                      "text": s.text, "char_start": s.char_start, "char_end": s.char_end, "count": s.count,
                      "n_docs": len(s.docs), "max_nv_recall": max((d.nv.recall for d in s.docs), default=0.0)})
        for di, d in enumerate(s.docs):
            docs.append({**key, "span_ix": si, "doc_rank": di, "doc_ix": d.doc_ix, "doc_id": d.doc_id,
                         "tier": d.tier, "nv_recall": d.nv.recall, "matched": d.nv.matched,
                         "reference": d.nv.reference, "candidate": d.nv.candidate, "missing": d.nv.missing,
                         "additional": d.nv.additional, "match_char_start": d.match_char_start,
                         "match_char_end": d.match_char_end, "window_text": d.window_text})
    return spans, docs


def _check_keys(run: RunResults) -> dict[GenKey, int]:
    gen_keys: dict[GenKey, int] = {}
    for g in run.generations:
        if g.key in gen_keys:
            raise ResultsError(f"duplicate generation key {g.key}: each (setting, prompt_id, sample_index) "
                               "must appear once")
        gen_keys[g.key] = len(gen_keys)
    trace_pos: dict[GenKey, int] = {}
    for i, t in enumerate(run.traces):
        if t.key not in gen_keys:
            raise ResultsError(f"trace {t.key} has no generation with that key")
        if t.key in trace_pos:
            raise ResultsError(f"duplicate trace key {t.key}")
        trace_pos[t.key] = i
    return trace_pos


def _json_text(data: Any, sort_keys: bool = True) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=sort_keys, default=str) + "\n"


def _write_json(path: Path, data: Any, sort_keys: bool = True) -> None:
    path.write_text(_json_text(data, sort_keys), encoding="utf-8")


def save_results(run: RunResults, folder: str | os.PathLike, *, config_text: str | None = None) -> Path:
    """Write ``run`` as a results folder at ``folder`` (replacing one already there) and return its path.

    The manifest is completed with ``format_version`` and row counts. ``config_text`` (the experiment
    TOML) is copied to ``config.toml``. Raises :class:`ResultsError` on duplicate or orphan keys.
    """
    folder = Path(folder)
    check_replaceable(folder)
    trace_pos = _check_keys(run)
    traces = {t.key: t for t in run.traces}
    gen_rows, span_rows, doc_rows = [], [], []
    for g in run.generations:
        t = traces.get(g.key)
        gen_rows.append(_generation_row(g, t, trace_pos.get(g.key)))
    for t in run.traces:
        s, d = _flat_rows(t)
        span_rows += s
        doc_rows += d
    if not isinstance(run.manifest, Manifest):
        raise ResultsError(f"save_results needs a core.runs.manifest.Manifest, got {type(run.manifest).__name__}")
    scores = {"summary.json": _json_text(codec.to_jsonable(dict(run.summary)), sort_keys=False),  # setting order
              "pm.json": _json_text(codec.to_jsonable(dict(run.pm)), sort_keys=False)}
    manifest = dataclasses.replace(
        run.manifest, format=RESULTS_FORMAT, format_version=FORMAT_VERSION, n_generations=len(gen_rows),
        n_traces=len(run.traces), n_spans=len(span_rows), n_docs=len(doc_rows), settings_present=tuple(run.settings()),
        scores_sha256={name: sha256_hex(text.encode("utf-8")) for name, text in scores.items()})
    manifest = manifest_paths.make_relative(to_json(manifest), folder)  # portable: see core.runs.manifest_paths
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temp_folders(folder.parent)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    current = tmp
    try:
        tmp.mkdir()
        steps = [("generations.parquet", lambda p: pq.write_table(pa.Table.from_pylist(gen_rows, schema=GENERATIONS_SCHEMA), p)),
                 ("spans.parquet", lambda p: pq.write_table(pa.Table.from_pylist(span_rows, schema=SPANS_SCHEMA), p)),
                 ("docs.parquet", lambda p: pq.write_table(pa.Table.from_pylist(doc_rows, schema=DOCS_SCHEMA), p))]
        steps += [(name, lambda p, t=text: p.write_text(t, encoding="utf-8")) for name, text in scores.items()]
        if config_text is not None:
            steps.append(("config.toml", lambda p: p.write_text(config_text, encoding="utf-8")))
        steps.append(("manifest.json", lambda p: _write_json(p, manifest)))  # last: marks the folder complete
        for name, write in steps:
            current = tmp / name
            write(current)
        old = None
        if folder.exists():
            check_replaceable(folder)  # again: another process may have put something there meanwhile
            old = folder.parent / f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
        os.replace(tmp, folder)
    except OSError as e:  # a full disk, a read-only folder: name the file that could not be written
        shutil.rmtree(tmp, ignore_errors=True)  # holds only files this function wrote
        raise ResultsError(f"cannot write {current} ({_os_reason(e)}): the results folder {folder} was not written; "
                           "free disk space or choose another output folder, then run again (the cache keeps the "
                           "work done)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # holds only files this function wrote
        raise
    if old is not None:
        keep_user_files(old, folder)  # the user's own notes and folders move into the new results folder
    log.info("wrote results folder %s (%d generations, %d traces)", folder, len(gen_rows), len(run.traces))
    return folder


def _os_reason(e: OSError) -> str:
    """An OSError's reason without its file name (the message names the file itself)."""
    import errno

    text = (e.strerror or str(e) or type(e).__name__).splitlines()[0]
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):  # pyarrow words these inside its own message
        if os.strerror(code).lower() in text.lower():
            return os.strerror(code)
    return text


def _read_json(path: Path) -> Any:
    try:
        return read_json(path, error=DamagedResults, hint="the results folder is damaged: run the experiment "
                         "again to rewrite it")
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing; run the experiment again to rewrite it") from None


def _tuple(v):
    return None if v is None else tuple(v)


def _rebuild(row: dict, path: Path) -> tuple[Generation, TraceResult | None]:
    key = GenKey(row["setting"], row["prompt_id"], row["sample_index"])
    try:
        return _rebuild_row(row, key, path)
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # JSON of the wrong shape
        raise ResultsError(f"{path}: row {key} holds malformed data ({type(e).__name__}: {e}); the file is damaged "
                           "or was edited: run the experiment again") from None


def _rebuild_row(row: dict, key: GenKey, path: Path) -> tuple[Generation, TraceResult | None]:
    where, hint = f"{path} (row {key})", "the file is damaged or was edited: run the experiment again"
    extra = parse_json(row["extra_json"] or "{}", name=where, hint=hint, error=DamagedResults)
    spans = codec.from_jsonable(tuple[Span, ...], parse_json(row["spans_json"], name=where, hint=hint,
                                                             error=DamagedResults)) if row["traced"] else None
    if not isinstance(extra, dict):
        raise TypeError("extra_json is not a JSON object")
    pkw = {name: row[col] for name, col in _PROMPT_COLS.items()}
    for name in ("token_ids", "true_continuation_ids"):
        pkw[name] = _tuple(pkw[name])
    pkw.update(extra.get("prompt", {}))
    prompt = codec.from_jsonable(Prompt, {"setting": key.setting, "prompt_id": key.prompt_id,
                                          **codec.to_jsonable(pkw)})
    gkw = {"completion": row["completion"], "completion_ids": row["completion_ids"] or [],
           "finish_reason": row["finish_reason"], **extra.get("generation", {})}
    gen = codec.from_jsonable(Generation, {"key": codec.to_jsonable(key), "prompt": codec.to_jsonable(prompt),
                                           **gkw})
    if spans is None:
        return gen, None
    completion = row["trace_completion"] if row["trace_completion"] is not None else gen.completion
    tkw = {"key": codec.to_jsonable(key), "completion": completion, "n_tokens": row["n_tokens"],
           "full_doc_frequency": row["full_doc_frequency"], **extra.get("trace", {})}
    trace = codec.from_jsonable(TraceResult, tkw)
    if len(spans) != row["n_spans"]:
        raise ResultsError(f"{path}: row {key} says n_spans={row['n_spans']!r} but its trace holds {len(spans)} "
                           "spans; the file is damaged or was edited: run the experiment again")
    return gen, dataclasses.replace(trace, spans=spans)


def load_results(folder: str | os.PathLike) -> RunResults:
    """Load and validate a results folder written by :func:`save_results`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"no results folder at {folder}: run `python -m core run CONFIG.toml` to create one")
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise ResultsError(f"results folder {folder} is incomplete (missing {', '.join(missing)}); "
                           "run the experiment again to rewrite it")
    raw = _read_json(folder / "manifest.json")
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ResultsError(f"{folder}/manifest.json has format_version {version!r}; this version of PropMe "
                           f"reads format {FORMAT_VERSION}: re-run the experiment or use a matching PropMe")
    manifest = parse(manifest_paths.resolve(raw, folder), f"{folder}/manifest.json")  # paths back to absolute
    check_scores(folder, manifest.scores_sha256 or None)
    gen_rows = read_table(folder / "generations.parquet", GENERATIONS_SCHEMA)
    n_spans, n_docs = check_flat_tables(folder, gen_rows)
    counts = {"n_generations": len(gen_rows), "n_spans": n_spans, "n_docs": n_docs}
    for name, n in counts.items():
        if getattr(manifest, name) != n:
            raise ResultsError(f"{folder}: manifest says {name}={getattr(manifest, name)!r} but the files hold {n}; "
                               "the folder is damaged or was edited: run the experiment again")
    gens, traced = [], []
    for row in gen_rows:
        g, t = _rebuild(row, folder / "generations.parquet")
        gens.append(g)
        if t is not None:
            traced.append((row["trace_pos"], t))
    if manifest.n_traces != len(traced):
        raise ResultsError(f"{folder}: manifest says n_traces={manifest.n_traces!r} but "
                           f"{len(traced)} generations are traced; run the experiment again")
    traces = tuple(t for _, t in sorted(traced, key=lambda pt: pt[0]))
    return RunResults(str(folder), manifest, tuple(gens), traces,
                      _read_json(folder / "summary.json"), _read_json(folder / "pm.json"))

