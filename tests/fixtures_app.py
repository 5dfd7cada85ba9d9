"""Synthetic results folders for the app tests: real records, known spans, hostile text planted.

One "token" is one whitespace-separated word here, so span lengths, char offsets and counts are
known exactly. Near-verbatim recall comes from the real ``core.tracing.nvrecall.nv_recall``.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from core.config import ExperimentConfig, MetricsConfig, ModelConfig, SettingConfig
from core.records import DocMatch, Generation, GenKey, Prompt, Span, TraceResult
from core.runs.manifest import Counts, IndexInfo, ModelInfo, assemble
from core.runs.results import RunResults, save_results
from core.scoring.summary import summarize
from core.tracing.nvrecall import nv_recall

WORDS = ["river", "stone", "quiet", "lamp", "harbor", "violet", "engine", "paper", "window", "silver", "market", "garden", "thunder", "maple", "candle", "orbit", "meadow", "signal", "copper", "valley", "pocket", "lantern", "whisper", "forest", "anchor", "ribbon", "marble", "canyon", "falcon", "velvet", "breeze", "summit", "cobalt", "harvest", "island"]

# Planted in a document and in a completion: none of it may execute or render as markup.
HOSTILE = ('<script>document.title="pwned";window.__pwned=1</script> '
           '<img src=x onerror="document.title=\'pwned\';window.__pwned=1"> '
           '[click](javascript:window.__pwned=1) **bold** \u202eevil\u202c ' + "A" * 10_000)
HOSTILE_SPAN_TEXT = '<script>document.title="pwned";window.__pwned=1</script>'


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_docs(seed: int = 7, n_docs: int = 10) -> list[tuple[str, str]]:
    """(doc_id, text) pairs; doc 'doc-hostile' holds :data:`HOSTILE`."""
    rng = random.Random(seed)
    docs = [(f"doc-{i}", _sentence(rng, 90)) for i in range(n_docs)]
    docs.append(("doc-hostile", _sentence(rng, 20) + " " + HOSTILE + " " + _sentence(rng, 20)))
    return docs


def _count(docs, text: str) -> int:
    return sum(d.count(text) for _, d in docs)


def _doc_match(docs, doc_ix: int, span_text: str, completion: str) -> DocMatch:
    doc_id, window = docs[doc_ix]
    start = window.index(span_text)
    tier = "exact_full_raw" if completion in window else "partial"
    return DocMatch(doc_ix, doc_id, tier, window, start, start + len(span_text), nv_recall(completion, window))


def _traced(docs, key: GenKey, before: str, piece: str, after: str, src: int) -> tuple[str, TraceResult]:
    """A completion ``before piece after`` whose only span is ``piece`` (taken from doc ``src``)."""
    completion = " ".join(p for p in (before, piece, after) if p)
    spans: tuple[Span, ...] = ()
    if piece:
        cs = completion.index(piece)
        start = len(completion[:cs].split())
        spans = (Span(start, start + len(piece.split()), piece, cs, cs + len(piece), _count(docs, piece),
                      (_doc_match(docs, src, piece, completion),)),)
    full = sum(1 for _, d in docs if completion in d)
    return completion, TraceResult(key, completion, len(completion.split()), spans, full)


SETTINGS = ("prefix", "generic", "specific")


def make_run(seed: int = 7, n_per_setting: int = 6, hostile: bool = True, name: str = "fixture",
             index: dict | None = None, metrics: MetricsConfig = MetricsConfig(), score: bool = False) -> RunResults:
    """A run over settings prefix/generic/specific with spans of known lengths (see module doc).

    The manifest comes from the real writer (:func:`core.runs.manifest.assemble`) for a run of
    ``metrics``; ``index``: IndexInfo fields (dirs, fingerprint, tokenizer). ``score``: add summary
    and PM as ``run_experiment`` does (:func:`core.scoring.summary.summarize`).
    """
    rng = random.Random(seed)
    docs = make_docs(seed)
    gens, traces = [], []
    span_len = {"prefix": (30, 55), "generic": (0, 12), "specific": (3, 25)}
    for setting in SETTINGS:
        for i in range(n_per_setting):
            key = GenKey(setting, f"{setting}-{i}")
            src = rng.randrange(len(docs) - 1)
            words = docs[src][1].split()
            lo, hi = span_len[setting]
            k = rng.randint(lo, hi)
            at = rng.randrange(0, len(words) - k - 1) if setting != "prefix" else 10
            piece = " ".join(words[at:at + k])
            if setting == "prefix":
                prompt = Prompt(setting, key.prompt_id, " ".join(words[:10]), source_doc_id=docs[src][0],
                                source_doc_ix=src, true_continuation=" ".join(words[10:10 + 60]))
                before, after = "", _sentence(rng, 4) if i % 2 else ""
            else:
                prompt = Prompt(setting, key.prompt_id, f"Tell me about {rng.choice(WORDS)} number {i}.",
                                domain=("nature", "tech")[i % 2])
                before, after = "zzq " + _sentence(rng, 5).upper(), "QQZ " + _sentence(rng, 5).upper()
            completion, trace = _traced(docs, key, before, piece, after, src)
            gens.append(Generation(key, prompt, completion, finish_reason="length"))
            traces.append(trace)
    if hostile:
        key = GenKey("generic", "generic-hostile")
        hdoc = len(docs) - 1
        completion, trace = _traced(docs, key, "Here it is:", HOSTILE_SPAN_TEXT, HOSTILE[len(HOSTILE_SPAN_TEXT):],
                                    hdoc)
        gens.append(Generation(key, Prompt("generic", key.prompt_id, "<b>hostile</b> [x](javascript:1)",
                                           domain="<i>dom</i>"), completion))
        traces.append(trace)
    index_info = IndexInfo(**{"fingerprint": "fixture-index", "tokenizer": "whitespace",
                              **{k: tuple(v) if k == "dirs" else v for k, v in (index or {}).items()}})
    cfg = ExperimentConfig(name, ModelConfig("tests/fixture-model"), index_info.dirs or ("fixture-index",),
                           tuple(SettingConfig(s) for s in SETTINGS), metrics=metrics)
    manifest = assemble(cfg, ModelInfo(f"{name}-model", cfg.model, "whitespace"), index_info,
                        Counts(len(gens), len(gens)), created="2026-01-01T00:00:00+00:00", versions={})
    run = RunResults(None, manifest, tuple(gens), tuple(traces))
    if score:
        summary, pm = summarize(run, metrics)
        run = dataclasses.replace(run, summary=summary, pm=pm)
    return run


def write_run(folder: Path, **kwargs) -> Path:
    """Save :func:`make_run` (kwargs passed on; scored unless ``score=False``) as a results folder at ``folder``."""
    return save_results(make_run(**{"score": True, **kwargs}), folder)


def open_app(monkeypatch, results: Path | str, data_root: Path | None = None):
    """The app (AppTest) with ``results`` as its default results folder and ``data_root`` as PROPME_DATA_ROOT
    (None: unset), run once and checked to have raised nothing."""
    from streamlit.testing.v1 import AppTest

    from app import paths

    monkeypatch.setenv(paths.RESULTS_ENV, str(results))
    if data_root is None:
        monkeypatch.delenv(paths.DATA_ROOT_ENV, raising=False)
    else:
        monkeypatch.setenv(paths.DATA_ROOT_ENV, str(data_root))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py"),
                           default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def shown_errors(at) -> list[str]:
    """The app's error boxes (page and sidebar) as the reader sees them."""
    from app import render

    return [render.shown(e.value) for e in [*at.error, *at.sidebar.error]]


# Overview's lazy sections (app/widgets.py lazy_expander; "ov_open_planted" only beside planted records)
# and the Thresholds page's lazy tabs, by widget key: their bodies run only once opened.
OVERVIEW_SECTIONS = ("ov_open_run", "ov_open_metrics", "ov_open_charts")
THRESHOLD_TABS = ("Numbers", "Span-share curves", "PM vs N", "Distributions", "Plane")


def open_sections(at, *keys: str):
    """Open Overview's lazy sections ``keys`` (default: all three) as a click does (their widget state), rerun."""
    for key in keys or OVERVIEW_SECTIONS:
        at.session_state[key] = True
    at.run()
    assert not at.exception, at.exception
    return at


def open_tab(at, label: str):
    """Open the Thresholds page's tab ``label`` as a click does (the tabs' widget state), rerun."""
    at.session_state["thr_view"] = label
    at.run()
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == list(THRESHOLD_TABS)
    return at


def shown_folder(at) -> str:
    """The results folder the sidebar names (the caption under its "Results folder" heading), as shown."""
    from app import render

    return render.shown(at.sidebar.caption[0].value)


def type_folder(at, path: str):
    """Open the sidebar's folder section, type ``path`` into its box and rerun, as a user does."""
    from app import state

    at.session_state[state.FOLDER_BOX] = True
    at.run()
    at.sidebar.text_input(key=state.FOLDER_INPUT).input(str(path)).run()
    return at
