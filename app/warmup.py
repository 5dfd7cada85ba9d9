"""A warm start: what the first page needs, prepared when the server starts.

``streamlit run app/serve.py`` starts :func:`warm_in_background` from the server's lifespan hook: a
daemon thread imports the modules every page uses (pandas, pyarrow, plotly and the app's own) and
loads the results folder the app opens with (``$PROPME_RESULTS_DIR``, else the shipped demo run) into
the same caches the pages read (:mod:`app.cached`), with its traces re-scored under the run's own
thresholds. The server answers when it is done (app/serve.py waits up to ``WARM_WAIT_S``); a visitor
who arrives before the warm-up ends waits on the cache's lock for the value being computed, never for
a second computation. A failure is printed and the page shows the error as usual (the warm-up is an
optimisation, never a requirement).
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# modules the pages import (the app package itself is walked below): the heavy third-party ones first
MODULES = ("numpy", "pandas", "pyarrow.parquet", "plotly.graph_objects",
           "streamlit.emojis")  # (st.info and st.metric load their emoji table on first use: 0.3 s)
THREAD = "propme-warm-start"


def import_app() -> list[str]:
    """Import the heavy libraries and every module of the ``app`` package; returns the app's module names."""
    for name in MODULES:
        importlib.import_module(name)
    names = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.name in ("__init__", "streamlit_app", "serve"):  # the entry scripts run Streamlit commands
            continue
        names.append(".".join(rel.parts))
        importlib.import_module(names[-1])
    return names


def warm_results(path: str) -> str | None:
    """Load ``path`` into :func:`app.cached.load_run` and score its traces as the pages do; returns its run id."""
    from app import cached

    if not path or not Path(path).is_dir():
        return None
    ident = cached.run_id(path)
    run = cached.load_run(path, ident)
    cfg = run.manifest.metrics
    cached.kept_traces(ident, cfg, run)  # and the rescored traces it is drawn from
    for setting in run.settings():
        cached.setting_metrics(ident, setting, cfg, run)
    cached.example_rows(ident, run)
    return ident


def warm(log=print) -> float:
    """Imports and the default results folder, as one step; returns the seconds it took."""
    t = time.perf_counter()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import_app()
    from app import paths

    warm_results(paths.default_results_dir())
    secs = time.perf_counter() - t
    log(f"PropMe Explorer: warm start done in {secs:.1f} s (imports and the default results folder)")
    return secs


def _warm_quietly() -> None:
    try:
        warm()
    except Exception as e:  # noqa: BLE001 - an optimisation: the page reports real errors itself
        print(f"PropMe Explorer: warm start skipped ({type(e).__name__}: {e})", file=sys.stderr)


class _NotTheWarmThread(logging.Filter):
    """Streamlit warns once per cached call outside a script run; the warm-up's calls are meant so."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD


def warm_in_background() -> threading.Thread:
    """Start :func:`warm` in a daemon thread; returns it (app/serve.py joins it, up to a limit)."""
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_NotTheWarmThread())
    thread = threading.Thread(target=_warm_quietly, name=THREAD, daemon=True)
    thread.start()
    return thread
