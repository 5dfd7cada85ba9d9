"""PropMe Explorer's entry script (``streamlit run app/serve.py`` serves it with a warm start; ``streamlit run
app/streamlit_app.py`` works too, without one). The pages live in the top-level ``pages/``.

Streamlit switches to its legacy multipage mode only for a ``pages/`` folder beside the entry script
(here ``app/pages``, which does not exist), so the top-level ``pages/`` is a plain folder of pages
that ``st.navigation`` lists below.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/...` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st

from app import render, state, widgets
from core.errors import PropMeError

PAGES = ROOT / "pages"

st.set_page_config(page_title="PropMe Explorer", layout="wide")
render.app_style()

try:
    st.session_state[state.RUN_PATH] = widgets.results_picker()
except PropMeError as e:
    st.sidebar.error(render.md_literal(e))
    st.session_state[state.RUN_PATH] = ""

page = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", default=True),  # served at /
    st.Page(PAGES / "run.py", title="Run", url_path="run"),
    st.Page(PAGES / "explore.py", title="Explore", url_path="explore"),
    st.Page(PAGES / "thresholds.py", title="Thresholds and curves", url_path="thresholds"),
    st.Page(PAGES / "compare.py", title="Compare", url_path="compare"),
    st.Page(PAGES / "leaked.py", title="Leaked documents", url_path="leaked"),
    st.Page(PAGES / "side_by_side.py", title="Side by side", url_path="side_by_side"),
    st.Page(PAGES / "corpus.py", title="Corpus", url_path="corpus"),
    st.Page(PAGES / "export.py", title="Export", url_path="export"),
])
page.run()
