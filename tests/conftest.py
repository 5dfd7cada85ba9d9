"""Shared fixtures. Helpers that build things (tiny corpora, indexes, models, browser helpers) live in
tests/fixtures_*.py. The browser and the demo app server are session-wide: started once, shared by every
real-browser test module (each test opens its own page, i.e. its own Streamlit session)."""
import pytest

from tests.fixtures_browser import CHROMIUM, serve_app


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                              "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """``streamlit run app/serve.py`` with no results folder set: the shipped demo results, as a new user sees
    them (the result cache in a temporary folder). Yields (url, demo results folder)."""
    from core.runs.demo import demo_results_dir

    folder = demo_results_dir()
    assert (folder / "manifest.json").is_file(), f"the shipped demo results are tracked in git: {folder}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PROPME_CACHE_DIR", str(tmp_path_factory.mktemp("demo-cache")))  # read by the server at start
    try:
        with serve_app(None, tmp_path_factory.mktemp("log") / "streamlit-demo.log") as url:
            mp.undo()
            yield url, folder
    finally:
        mp.undo()
