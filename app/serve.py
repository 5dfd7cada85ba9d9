"""``streamlit run app/serve.py``: the app (app/streamlit_app.py) with a warm start.

``st.App`` serves the same script as ``streamlit run app/streamlit_app.py`` would; its lifespan hook
starts :func:`app.warmup.warm_in_background` when the server starts, so the first visitor does not
pay for imports and for loading the results folder (see app/warmup.py).
"""
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/serve.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))


@asynccontextmanager
async def _lifespan(_app):
    from app.warmup import warm_in_background

    warm_in_background()
    yield


app = st.App(Path(__file__).with_name("streamlit_app.py"), lifespan=_lifespan)
