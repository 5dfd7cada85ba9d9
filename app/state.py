"""The few ``st.session_state`` keys shared across pages, and the run in view.

Keys (everything else in session state is a widget's own ``key=``):
- ``RUN_PATH``: the results folder in view, set by the sidebar picker in app/streamlit_app.py.
- ``RETRACED``: {(run id, TraceConfig): RunResults} re-traced by the Thresholds page in this session.
- ``THRESHOLDS``: {run id: MetricsConfig} tuned on the Thresholds page; every page and every export
  of that run scores with it (:func:`metrics_config`) until "Reset to the run's values".
- ``"exp_report"``: (run id, thresholds, metric, HTML, summary frame, JSON document) of the last report
  and summary the Export page built.
- ``FOLDER``: the results folder the sidebar names (typed in its box, or opened by a button callback);
  ``FOLDER_INPUT`` is that box's own widget key and ``FOLDER_BOX`` the key of the section holding it.
- ``OPENED``: {widget key: state} of the lazy sections (app/widgets.py ``lazy_expander``, the Thresholds page's tabs), so
  an opened section or tab stays open when its label changes (a new widget id) and across pages.
The Run page's background job keeps its own key (``app.run_worker.JOB_KEY``).
Session state is per browser session, so two people never see each other's runs or re-traces.
"""
from __future__ import annotations

import streamlit as st

from app import cached
from core.config import MetricsConfig

RUN_PATH = "propme_run_path"
RETRACED = "propme_retraced"
THRESHOLDS = "propme_thresholds"
OPENED = "propme_opened"
FOLDER, FOLDER_INPUT, FOLDER_BOX = "propme_folder", "results_dir", "sb_open_folder"
# the Thresholds page's scoring widgets (app/widgets.py metrics_controls and nv_blocks_controls, prefix "thr"):
# their keys are made here only, and "Reset to the run's values" drops them
THRESHOLD_FIELDS = ("span_n", "nv", "loops", "zlib", "boot", "l1", "gap1", "l2", "gap2")


def threshold_key(name: str, prefix: str = "thr") -> str:
    """The widget key of one scoring threshold control (``thr_span_n``: the span threshold N)."""
    if name not in THRESHOLD_FIELDS:
        raise KeyError(f"no threshold widget {name!r}; known: {', '.join(THRESHOLD_FIELDS)}")
    return f"{prefix}_{name}"


THRESHOLD_WIDGETS = tuple(threshold_key(k) for k in THRESHOLD_FIELDS)


def current_run():
    """(run id, RunResults) of the folder in view; st.info + stop when none is chosen."""
    path = st.session_state.get(RUN_PATH, "")
    if not path:
        st.info("No results folder is open. Type one in the sidebar ('Results folder'), or create one on "
                "the Run page or with `python -m core run CONFIG.toml`.")
        st.stop()
    ident = cached.run_id(path)
    return ident, cached.load_run(path, ident)


def retraced() -> dict:
    return st.session_state.setdefault(RETRACED, {})


def open_results(path: str) -> None:
    """Button callback: make ``path`` the results folder in view (runs before the sidebar renders)."""
    st.session_state[FOLDER] = path
    st.session_state.pop(FOLDER_INPUT, None)  # the box, when open, shows the new folder


def open_results_from(key: str) -> None:
    """Button callback: open the folder typed in the text input ``key``."""
    open_results(st.session_state.get(key, ""))


def run_metrics_config(run) -> MetricsConfig:
    """The thresholds the run was scored with (its manifest)."""
    return run.manifest.metrics


def metrics_config(ident: str, run) -> MetricsConfig:
    """The thresholds in force for this run in this session: tuned on the Thresholds page, else the run's."""
    tuned = st.session_state.get(THRESHOLDS, {}).get(ident)
    return tuned if tuned is not None else run_metrics_config(run)


def set_metrics_config(ident: str, run, cfg: MetricsConfig) -> None:
    """Record ``cfg`` as this session's thresholds for the run (forgotten when equal to the run's)."""
    tuned = st.session_state.setdefault(THRESHOLDS, {})
    if cfg == run_metrics_config(run):
        tuned.pop(ident, None)
    else:
        tuned[ident] = cfg


def thresholds_tuned(ident: str) -> bool:
    return ident in st.session_state.get(THRESHOLDS, {})


def reset_thresholds(ident: str, widget_values: dict | None = None) -> None:
    """Button callback: back to the run's thresholds, the Thresholds page's widgets included: set to
    ``widget_values`` (the run's values, by widget key; the sliders move at once), else forgotten."""
    st.session_state.get(THRESHOLDS, {}).pop(ident, None)
    for key in THRESHOLD_WIDGETS:
        if widget_values and key in widget_values:
            st.session_state[key] = widget_values[key]
        else:
            st.session_state.pop(key, None)


def keep_open(key: str, default):
    """Before the lazy section ``key`` is drawn: give its widget the state it had (this run's value, else the
    one remembered from an earlier page visit, else ``default``), so a new label or a page switch keeps it."""
    st.session_state[key] = st.session_state[key] if key in st.session_state else \
        st.session_state.get(OPENED, {}).get(key, default)


def remember_open(key: str) -> None:
    """After the lazy section ``key`` is drawn: remember its state for the next visit of the page."""
    st.session_state.setdefault(OPENED, {})[key] = st.session_state[key]
