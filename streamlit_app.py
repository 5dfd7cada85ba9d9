"""PropMe Explorer: `streamlit run streamlit_app.py`. Pages live in app_pages/ (not pages/: that name switches on Streamlit's legacy multipage mode, which skips this file) (see README)."""
import streamlit as st

from app import cached, state, widgets
from core.errors import PropMeError

st.set_page_config(page_title="PropMe Explorer", layout="wide")

try:
    st.session_state[state.RUN_PATH] = widgets.results_picker()
except PropMeError as e:
    st.sidebar.error(str(e))
    st.session_state[state.RUN_PATH] = ""
if st.sidebar.button("Clear cache", key="clear_cache", help="Forget cached results and metrics."):
    cached.clear_all()

page = st.navigation([
    st.Page("app_pages/overview.py", title="Overview", default=True),  # served at /
    st.Page("app_pages/run.py", title="Run", url_path="run"),
    st.Page("app_pages/explore.py", title="Explore", url_path="explore"),
    st.Page("app_pages/thresholds.py", title="Thresholds and curves", url_path="thresholds"),
    st.Page("app_pages/compare.py", title="Compare", url_path="compare"),
    st.Page("app_pages/corpus.py", title="Corpus", url_path="corpus"),
    st.Page("app_pages/export.py", title="Export", url_path="export"),
])
page.run()
