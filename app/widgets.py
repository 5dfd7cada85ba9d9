"""Controls shared by several pages, each returning a core config value (labels, ranges and defaults in one place).

Every widget has an explicit ``key=`` (tests find widgets by key; keys are listed in app/state.py
where they are shared between pages).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import streamlit as st

from app import cached, paths, render, state
from app.views import explore
from core.config import (
    SETTINGS,
    TRACE_MODES,
    AdaptiveParam,
    DecodingConfig,
    MetricsConfig,
    ModelConfig,
    NVBlocksConfig,
    SettingConfig,
    TraceConfig,
)
from core.scoring import registry

BOOTSTRAP_CHOICES = (200, 1000, 10_000)


def results_picker() -> str:
    """Sidebar: the results folder in view, named as text; the box to type another folder (and the cache
    button) sit in a section that is drawn only when opened, so a page's first screen loads no text-input
    code (~0.5 s of a first visit's boot here). Typed paths are confined to $PROPME_DATA_ROOT."""
    default = paths.default_results_dir()
    if state.FOLDER_INPUT in st.session_state:  # the box is open: what it holds, typed or set by a callback
        st.session_state[state.FOLDER] = st.session_state[state.FOLDER_INPUT]
    value = st.session_state.setdefault(state.FOLDER, default)
    with st.sidebar:
        st.markdown("**Results folder**")
        render.caption(value or "(none)")
        box = lazy_expander("Open another folder · clear the cache", state.FOLDER_BOX)
        if box.open:
            with box:
                st.session_state.setdefault(state.FOLDER_INPUT, value)  # a callback may have opened a folder
                value = st.text_input("Results folder", key=state.FOLDER_INPUT,
                                      help="A folder written by `python -m core run` or the Run page.")
                st.button("Clear cache", key="clear_cache", help="Forget cached results and metrics.",
                          on_click=cached.clear_all)
    if not value.strip():
        return ""
    if value == default:
        return str(paths.confine(value, None))
    return str(paths.confine(value, paths.data_root()))


def metrics_controls(base: MetricsConfig, max_span: int, key: str = "thr") -> MetricsConfig:
    """Scoring thresholds that need no re-tracing: R_N span threshold, nv threshold, loop filter."""
    top = max(200, max_span + 1)
    n = st.slider("Span threshold N of R_N (tokens)", 1, top, min(base.span_threshold, top),
                  key=state.threshold_key("span_n", key),
                  help=render.md_literal(registry.help("r_n") + "."))
    nv = st.slider("nv_recall threshold", 0.0, 1.0, float(base.nv_threshold), 0.01, key=state.threshold_key("nv", key),
                   help=render.md_literal(registry.help("gen_nv_above") + "."))
    loops = st.checkbox("Exclude degenerate repetition loops", base.exclude_degenerate,
                        key=state.threshold_key("loops", key))
    zlib = st.slider("Loop filter: zlib ratio below", 0.01, 0.5, float(base.loop_zlib_ratio), 0.01,
                     key=state.threshold_key("zlib", key), disabled=not loops)
    boot = st.select_slider("Bootstrap resamples", BOOTSTRAP_CHOICES, value=min(
        BOOTSTRAP_CHOICES, key=lambda b: abs(b - base.bootstrap_samples)), key=state.threshold_key("boot", key))
    return replace(base, span_threshold=int(n), nv_threshold=float(nv), exclude_degenerate=loops,
                   loop_zlib_ratio=float(zlib), bootstrap_samples=int(boot))


def metrics_widget_values(base: MetricsConfig, max_span: int, key: str = "thr") -> dict:
    """The values :func:`metrics_controls` and :func:`nv_blocks_controls` show for ``base`` (by widget key):
    what "Reset to the run's values" puts back into the sliders."""
    top = max(200, max_span + 1)
    nv = base.nv_blocks
    return {f"{key}_span_n": min(base.span_threshold, top), f"{key}_nv": float(base.nv_threshold),
            f"{key}_loops": base.exclude_degenerate, f"{key}_zlib": float(base.loop_zlib_ratio),
            f"{key}_boot": min(BOOTSTRAP_CHOICES, key=lambda b: abs(b - base.bootstrap_samples)),
            f"{key}_l1": float(nv.l1.frac), f"{key}_gap1": float(nv.gap1.frac), f"{key}_l2": float(nv.l2.frac),
            f"{key}_gap2": float(nv.gap2.frac)}


def _adaptive(label: str, p: AdaptiveParam, key: str) -> AdaptiveParam:
    frac = st.slider(render.md_literal(f"{label}: fraction of the completion's words"), 0.0, 0.5, float(p.frac), 0.01, key=key,
                     help=render.md_literal(f"threshold = clamp(round(fraction x n), {p.lo}, {p.hi})"))
    return replace(p, frac=float(frac))


def nv_blocks_controls(base: NVBlocksConfig, key: str = "thr") -> NVBlocksConfig:
    """NV block thresholds (SPEC 5, MetricsConfig.nv_blocks): minimum matched words l1/l2 and merge gaps of both passes."""
    c1, c2 = st.columns(2)
    with c1:
        l1 = _adaptive("l1 (min words, pass 1)", base.l1, state.threshold_key("l1", key))
        gap1 = _adaptive("gap1 (max gap, pass 1)", base.gap1, state.threshold_key("gap1", key))
    with c2:
        l2 = _adaptive("l2 (min words, pass 2)", base.l2, state.threshold_key("l2", key))
        gap2 = _adaptive("gap2 (max gap, pass 2)", base.gap2, state.threshold_key("gap2", key))
    return replace(base, l1=l1, l2=l2, gap1=gap1, gap2=gap2)


def seeded_kw(key: str, options: Sequence | None = None) -> dict:
    """``value=`` (or, with ``options``, ``index=``) of a Run-form widget: its value in session state (see
    :func:`seed_form`), so the browser is always sent the value it should show, also after other pages."""
    value = st.session_state[key]
    return {"value": value} if options is None else {"index": list(options).index(value)}


def trace_controls(base: TraceConfig, key: str, is_seeded: bool = False) -> TraceConfig:
    """Trace-time parameters (changing them needs a re-trace); ``is_seeded``: values come from session state."""
    c1, c2, c3 = st.columns(3)
    mode = c1.selectbox("Trace mode", TRACE_MODES, key=f"{key}_mode",
                        help="mixed: a verbatim copy across a line or sentence end still counts; text: the paper's "
                             "prose rule", **(seeded_kw(f"{key}_mode", TRACE_MODES) if is_seeded else
                                              {"index": TRACE_MODES.index(base.mode)}))
    rarity = c2.slider("Rarity fraction", 0.01, 1.0, step=0.01, key=f"{key}_rarity",
                       **(seeded_kw(f"{key}_rarity") if is_seeded else {"value": float(base.rarity_fraction)}))
    docs = c3.number_input("Documents per span", 1, 100, key=f"{key}_docs",
                           **(seeded_kw(f"{key}_docs") if is_seeded else {"value": int(base.docs_per_span)}))
    return replace(base, mode=mode, rarity_fraction=float(rarity), docs_per_span=int(docs))


# -- the Run form: values seeded from its defaults (app/runner.py) and kept across pages ------------------
RUN_FORM = "propme_run_form"  # session state: the Run form's last values (widget state is dropped off-page)
RUN_PRESET = "propme_run_preset"  # session state: which defaults the form holds ("demo" or "cli")


def seed_form(values: dict) -> None:
    """Before the Run form draws: each widget's value is its last value in this session (kept in
    ``RUN_FORM`` while other pages were shown), else ``values[key]`` (its default)."""
    saved = st.session_state.setdefault(RUN_FORM, {})
    for key, default in values.items():
        if key not in st.session_state:
            st.session_state[key] = saved.get(key, default)


def keep_form(keys) -> None:
    """After the Run form drew: remember its values for the next visit."""
    saved = st.session_state.setdefault(RUN_FORM, {})
    for key in keys:
        if key in st.session_state:
            saved[key] = st.session_state[key]


def switch_defaults(old: dict, new: dict) -> None:
    """Callback: move the form to other defaults; a value the user changed from the old default stays."""
    saved = st.session_state.setdefault(RUN_FORM, {})
    for key, value in new.items():
        current = st.session_state.get(key, saved.get(key, old.get(key)))
        if key not in old or current == old[key]:
            st.session_state[key] = saved[key] = value


def decoding_controls(base: DecodingConfig, key: str = "run") -> DecodingConfig:
    """Temperature, top-p, samples, completion length and seed (seeded, see :func:`seed_form`); the rest of ``base``."""
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.number_input("Temperature (0 = greedy)", 0.0, 2.0, step=0.1, key=f"{key}_temp",
                                  **seeded_kw(f"{key}_temp"))
    top_p = c2.number_input("top-p", 0.01, 1.0, step=0.01, key=f"{key}_top_p", **seeded_kw(f"{key}_top_p"))
    samples = c3.number_input("Samples per prompt", 1, 50, key=f"{key}_samples",
                              help="More than 1 needs a temperature above 0.", **seeded_kw(f"{key}_samples"))
    max_new = c4.number_input("Max new tokens", 1, 2048, key=f"{key}_max_new", **seeded_kw(f"{key}_max_new"))
    seed = st.number_input("Decoding seed", 0, 2**31 - 1, key=f"{key}_seed", **seeded_kw(f"{key}_seed"))
    return replace(base, temperature=float(temperature), top_p=float(top_p), num_samples=int(samples),
                   max_new_tokens=int(max_new), seed=int(seed))


def model_picker(demo: ModelConfig | None, key: str = "run") -> ModelConfig:
    """The demo model, a local folder or a hub id; both boxes are checked by :func:`core.paths.model_source`
    (a hub id that names a local folder is that folder), confined to the data root when one is set.
    With a data root set, remote code cannot be turned on here (the checkbox is disabled)."""
    root = paths.data_root()
    kinds = (["demo model"] if demo else []) + ["local folder", "hub id"]
    kind = st.radio("Model", kinds, horizontal=True, key=f"{key}_model_kind", **seeded_kw(f"{key}_model_kind", kinds))
    if root is None:
        trust = st.checkbox("Trust remote code", key=f"{key}_trust", **seeded_kw(f"{key}_trust"),
                            help="Runs Python code shipped with the model: only for models you trust.")
    else:
        st.checkbox("Trust remote code", key=f"{key}_trust", disabled=True, **seeded_kw(f"{key}_trust"),
                    help=render.md_literal(f"Off on this server ({paths.DATA_ROOT_ENV} is set): remote code "
                                           "cannot be enabled from the web app."))
        trust = False  # whatever the browser sends: never on with a data root
    if trust:
        st.warning("Trust remote code is ON: the model folder's own Python code will run on this machine.")
    if kind == "demo model":
        return replace(demo, trust_remote_code=trust)
    if kind == "local folder":
        folder = st.text_input("Model folder", key=f"{key}_model_path", **seeded_kw(f"{key}_model_path"))
        return ModelConfig(str(paths.confine(folder, root, what="model folder")), trust_remote_code=trust)
    hub = st.text_input("Hub id (e.g. EleutherAI/pythia-70m)", key=f"{key}_model_hub",
                        **seeded_kw(f"{key}_model_hub"))
    revision = st.text_input("Revision (optional)", key=f"{key}_model_rev", **seeded_kw(f"{key}_model_rev"))
    name = paths.model_source(hub, root, what="model (hub id box)") if hub.strip() else ""
    return ModelConfig(name, revision=revision.strip() or None, trust_remote_code=trust)


def settings_picker(base: tuple[SettingConfig, ...], shipped: dict[str, str], key: str = "run") -> tuple[SettingConfig, ...]:
    """Which settings to run, with prompt counts, prompt files and the sample seed (seeded, see
    :func:`seed_form`); a setting of ``base`` keeps its other parameters. ``shipped``: the demo's own prompt
    files, allowed outside the data root."""
    by_name = {s.name: s for s in base}
    options = [*SETTINGS, *(s for s in by_name if s not in SETTINGS)]  # the defaults' own settings too (a floor)
    chosen = st.multiselect("Settings", options, key=f"{key}_settings", format_func=render.option,
                            default=[s for s in st.session_state[f"{key}_settings"] if s in options])
    n = st.number_input("Prompts per setting", 1, 10_000, key=f"{key}_n_prompts", **seeded_kw(f"{key}_n_prompts"))
    seed = st.number_input("Prompt sample seed", 0, 2**31 - 1, key=f"{key}_prompt_seed",
                           **seeded_kw(f"{key}_prompt_seed"))
    out = []
    for s in chosen:
        path = None
        floor = s in by_name and by_name[s].kind == "floor"
        if s in ("generic", "specific") or floor:
            label = (f"Chance-floor texts for {s} (JSONL: text known not to be in the corpus, optional id)" if floor
                     else f"Prompt set for {s} (JSONL: text, optional domain, id)")
            typed = st.text_input(render.md_literal(label), key=f"{key}_prompts_{s}",
                                  **seeded_kw(f"{key}_prompts_{s}"))
            shipped_file = typed in shipped.values()
            path = str(paths.confine(typed, None if shipped_file else paths.data_root())) if typed.strip() else None
        out.append(replace(by_name.get(s, SettingConfig(s)), n_prompts=int(n), seed=int(seed), prompts_path=path))
    return tuple(out)


def explore_filters(settings: Sequence[str], domains: Sequence[str], max_span: int,
                    initial_setting: str | None = None) -> explore.ExploreFilter:
    """Filters of the Explore page (sidebar)."""
    sb = st.sidebar
    options = ["all"] + list(settings)
    setting = sb.selectbox("Setting", options, options.index(initial_setting) if initial_setting in options else 0,
                           key="ex_setting", format_func=render.option)
    domain = sb.selectbox("Domain", ["all"] + list(domains), key="ex_domain", format_func=render.option)
    min_span = sb.slider("Minimum longest span (tokens)", 0, max(1, max_span), 0, key="ex_min_span")
    min_nv = sb.slider("Minimum nv_recall", 0.0, 1.0, 0.0, 0.05, key="ex_min_nv")
    full = sb.checkbox("Full matches only", False, key="ex_full")
    search = sb.text_input("Text search in completions", key="ex_search")
    return explore.ExploreFilter(None if setting == "all" else setting, None if domain == "all" else domain,
                               int(min_span), float(min_nv), full, search)


def color_by_picker(key: str = "ex_color_by") -> str:
    label = st.radio("Highlight intensity by", ["span length", "corpus count"], horizontal=True, key=key)
    return "length" if label == "span length" else "count"


def lazy_expander(label: str, key: str):
    """A closed-by-default expander that tracks its state: the caller runs its body only when ``.open``
    (nothing of it reaches the browser while closed); once opened it stays open across reruns, label
    changes and page switches in the session."""
    state.keep_open(key, False)
    box = st.expander(render.md_literal(label), key=key, on_change="rerun")
    state.remember_open(key)
    return box

