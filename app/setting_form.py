"""The Run form's settings: which settings run, each with its own prompt count, prompt format, system prompt
and prompt file (the prefix setting also its prefix length and minimum document length), and settings of the
user's own (a name and a prompt file, or chance-floor texts). Returns the SettingConfigs and the problems
found as typed (a missing file, more prefix prompts than the corpus has long documents).

Widget keys are ``run_s_<slug>_<field>`` (:func:`key`); every value is seeded from the form's saved values
or the defaults (:func:`setting_values`), as the rest of the Run form is (app/widgets.py ``seed_form``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields, replace

import streamlit as st

from app import cached, paths, render
from core.config import BUILT_IN_SETTINGS, PROMPT_FORMATS, SETTINGS, FloorConfig, SettingConfig
from core.errors import ConfigError, PropMeError
from core.runs import form_checks

SELECTED = "run_settings"  # the multiselect's key
CUSTOM = "run_custom_settings"  # [[name, kind], ...]: the user's own settings (kind "prompts" or "floor")
SEED = "run_prompt_seed"
FIELDS = ("n_prompts", "prompt_format", "system_prompt", "prompts_path", "prefix_tokens", "min_doc_tokens")
_DEFAULTS = {f.name: f.default for f in fields(SettingConfig)}


def key(name: str, field: str) -> str:
    """The widget key of ``field`` of setting ``name`` (names are the user's: a slug plus a short hash).

    >>> key("prefix", "n_prompts"), key("my set/2", "n_prompts")[:14]
    ('run_s_prefix_n_prompts', 'run_s_my_set_2')
    """
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:24]
    if name in SETTINGS:
        return f"run_s_{slug}_{field}"
    return f"run_s_{slug}_{hashlib.sha256(name.encode()).hexdigest()[:6]}_{field}"


def setting_values(s: SettingConfig) -> dict:
    """The form's widget values of setting ``s``."""
    return {key(s.name, "n_prompts"): s.n_prompts, key(s.name, "prompt_format"): s.prompt_format,
            key(s.name, "system_prompt"): s.system_prompt or "", key(s.name, "prompts_path"): s.prompts_path or "",
            key(s.name, "prefix_tokens"): s.prefix_tokens, key(s.name, "min_doc_tokens"): s.min_doc_tokens}


def form_values(settings: tuple[SettingConfig, ...]) -> dict:
    """The settings part of the Run form's values for default settings ``settings``."""
    out = {SELECTED: [s.name for s in settings], SEED: settings[0].seed,
           CUSTOM: [[s.name, s.kind] for s in settings if s.name not in SETTINGS]}
    for s in settings:
        out.update(setting_values(s))
    return out


@dataclass(frozen=True)
class SettingsChoice:
    settings: tuple[SettingConfig, ...]
    problems: tuple[str, ...]  # found as typed: each is shown under its field, and the Run button waits
    keys: tuple[str, ...]  # the widget keys drawn (kept with the form's values)
    floor: FloorConfig = FloorConfig()  # the chance floor made from held-out documents


def _seeded(k: str, default, saved: dict):
    if k not in st.session_state:
        st.session_state[k] = saved.get(k, default)
    return st.session_state[k]


def _add_custom() -> None:
    name = st.session_state.get("run_custom_name", "").strip()
    kind = "floor" if st.session_state.get("run_custom_kind", "").startswith("chance") else "prompts"
    customs = list(st.session_state.get(CUSTOM, []))
    if not name or name in SETTINGS or name in [c[0] for c in customs]:
        st.session_state["run_custom_error"] = (f"a setting named {name!r} exists already: choose another name"
                                                if name else "type a name for the new setting first")
        return
    customs.append([name, kind])
    st.session_state[CUSTOM] = customs
    st.session_state[SELECTED] = [*st.session_state.get(SELECTED, []), name]
    st.session_state["run_custom_name"] = ""
    st.session_state.pop("run_custom_error", None)


def settings_form(base: tuple[SettingConfig, ...], shipped: dict[str, str], saved: dict,
                  index_dirs: tuple[str, ...] | None) -> SettingsChoice:
    """Draw the settings part of the Run form; ``base``: the defaults' settings (their other fields are kept),
    ``shipped``: the demo's prompt files (allowed outside the data root), ``saved``: the form's saved values,
    ``index_dirs``: the chosen corpus's index when it exists already (the prefix count is checked against it)."""
    by_name = {s.name: s for s in base}
    customs = [tuple(c) for c in _seeded(CUSTOM, [], saved)]
    kinds = {**{s.name: s.kind for s in base}, **dict(customs)}
    options = [*SETTINGS, *(n for n in by_name if n not in SETTINGS), *(n for n, _ in customs if n not in by_name)]
    _seeded(SELECTED, [s.name for s in base], saved)
    st.session_state[SELECTED] = [s for s in st.session_state[SELECTED] if s in options]
    chosen = st.multiselect("Settings", options, key=SELECTED, format_func=render.option,
                            help="prefix: the attack (capability); the others: ordinary use (propensity); "
                                 "a chance floor: texts known not to be in the corpus.")
    seed = st.number_input("Prompt sample seed", 0, 2**31 - 1, key=SEED, value=int(_seeded(SEED, 42, saved)))
    with st.expander("Add a setting of your own (a prompt file, or chance-floor texts)"):
        c1, c2 = st.columns([2, 2])
        c1.text_input("Name of the new setting", key="run_custom_name")
        c2.radio("Kind", ["prompts (the model completes them)", "chance floor (texts not in the corpus)"],
                 key="run_custom_kind", horizontal=False)
        st.button("Add this setting", key="run_custom_add", on_click=_add_custom)
        if st.session_state.get("run_custom_error"):
            st.error(render.md_literal(st.session_state["run_custom_error"]))
    k = "run_floor_holdout"
    holdout = st.checkbox("Chance floor from documents held out of the index (used when no setting is a chance floor)",
                          key=k, value=bool(_seeded(k, FloorConfig().holdout, saved)),
                          help="Traces the documents the index held out at build time as a setting named 'floor': "
                               "what the metrics reach by chance on in-distribution text the model never saw.")
    out, problems, keys = [], [], [SELECTED, SEED, CUSTOM, k]
    capacity = _capacity(index_dirs)
    for name in chosen:
        base_s = by_name.get(name) or SettingConfig(name, kind=kinds.get(name, "prompts"),
                                                    prompts_path=None)
        dflt = setting_values(base_s)
        floor = base_s.kind == "floor"
        with st.container(border=True, key=f"run_setting_box_{key(name, 'box')}"):
            st.markdown(render.md_literal(f"{name}" + (" (chance floor)" if floor else "")))
            c1, c2, c3 = st.columns([1, 1, 2])
            k = key(name, "n_prompts")
            n = c1.number_input(render.md_literal(f"Prompts for {name}") if not floor
                                else render.md_literal(f"Texts used for {name}"), 1, 100_000, key=k,
                                value=int(_seeded(k, dflt[k], saved)))
            keys.append(k)
            fmt, system = base_s.prompt_format, base_s.system_prompt
            if not floor:
                k = key(name, "prompt_format")
                fmt = c2.selectbox(render.md_literal(f"Prompt format for {name}"), PROMPT_FORMATS, key=k,
                                   index=PROMPT_FORMATS.index(_seeded(k, dflt[k], saved)),
                                   help="raw: the prompt as is; chat: the model's chat template, the prompt as the "
                                        "user turn; auto: chat for natural settings when the tokenizer has a "
                                        "template, raw for the prefix attack.")
                k = key(name, "system_prompt")
                system = c3.text_input(render.md_literal(f"System prompt for {name} (chat format; empty: the "
                                                         "template's own)"), key=k, value=_seeded(k, dflt[k], saved))
                keys += [key(name, "prompt_format"), k]
            path = None
            if name not in BUILT_IN_SETTINGS:
                k = key(name, "prompts_path")
                label = (f"Chance-floor texts for {name} (JSONL: text known not to be in the corpus, optional id)"
                         if floor else f"Prompt file for {name} (JSONL: text, optional domain, id)")
                typed = st.text_input(render.md_literal(label), key=k, value=_seeded(k, dflt[k], saved))
                keys.append(k)
                problem = form_checks.missing_path(typed, f"prompt file for {name}") if typed.strip() else (
                    f"setting {name} needs a prompt file" + (" of texts" if floor else ""))
                if problem:
                    st.error(render.md_literal(problem))
                    problems.append(problem)
                elif typed.strip():
                    inside = None if typed in shipped.values() else paths.data_root()
                    path = str(paths.confine(typed, inside))
            p_tokens, m_tokens = base_s.prefix_tokens, base_s.min_doc_tokens
            if name == "prefix":
                d1, d2 = st.columns(2)
                k = key(name, "prefix_tokens")
                p_tokens = d1.number_input("Prefix length P (tokens of the document in the prompt)", 1, 4096,
                                           key=k, value=int(_seeded(k, dflt[k], saved)))
                k2 = key(name, "min_doc_tokens")
                m_tokens = d2.number_input("Minimum document length M (tokens)", 0, 1_000_000, key=k2,
                                           value=int(_seeded(k2, dflt[k2], saved)))
                keys += [k, k2]
                if capacity is not None:
                    problem = form_checks.prefix_count_problem(int(n), int(m_tokens),
                                                               form_checks.prefix_capacity(capacity, int(m_tokens)))
                    if problem:
                        st.error(render.md_literal(problem))
                        problems.append(problem)
                elif index_dirs is None:
                    render.caption("The prefix count is checked against the corpus once its index is built (in the run).")
        try:
            out.append(replace(base_s, n_prompts=int(n), seed=int(seed), prompts_path=path,
                               prompt_format=fmt, system_prompt=(system or "").strip() or None,
                               prefix_tokens=int(p_tokens), min_doc_tokens=int(m_tokens)))
        except ConfigError as e:  # the setting's own checks: shown like the others
            problems.append(str(e))
            st.error(render.md_literal(str(e)))
    if not chosen:
        problems.append("choose one or more settings")
    return SettingsChoice(tuple(out), tuple(problems), tuple(keys), FloorConfig(holdout=bool(holdout)))


def _capacity(index_dirs: tuple[str, ...] | None):
    """The document lengths of the chosen corpus's index, or None when it has none yet (or cannot be read)."""
    if not index_dirs:
        return None
    from pathlib import Path

    try:
        stamp = tuple((d, Path(d).stat().st_mtime) for d in index_dirs)
        return cached.index_doc_lengths(tuple(index_dirs), stamp)
    except (PropMeError, OSError):  # not built yet (the run builds it), or not an index: the run says so
        return None
