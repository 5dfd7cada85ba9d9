"""``streamlit run app/serve.py``: the app (app/streamlit_app.py) with a warm start.

``st.App`` serves the same script as ``streamlit run app/streamlit_app.py`` would. Its lifespan hook
runs :func:`app.warmup.warm_in_background` when the server starts and lets the server answer once
the warm-up is done or after ``WARM_WAIT_S`` seconds, whichever comes first (a large results folder
then finishes loading in the background). So the first visitor, and the browser tab Streamlit opens
when it is ready, find the app's modules imported and the opening results folder loaded.
"""
import asyncio
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run app/serve.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

WARM_WAIT_S = 15.0


@asynccontextmanager
async def _lifespan(_app):
    from app.warmup import warm_in_background

    thread = warm_in_background()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, WARM_WAIT_S)
    yield


app = st.App(Path(__file__).with_name("streamlit_app.py"), lifespan=_lifespan)
