"""Shared fixtures. Helpers that build things (tiny corpora, indexes, models, browser helpers) live in
tests/fixtures_*.py. The browser and the demo app server are session-wide: started once, shared by every
real-browser test module (each test opens its own page, i.e. its own Streamlit session)."""
import pytest

from core.paths import CACHE_ENV
from tests.fixtures_browser import CHROMIUM, WatchedBrowser, serve_app


def pytest_collection_modifyitems(config, items):
    """A real-browser test whose wait on the page times out gets one more try (pytest-rerunfailures), and only
    then fails: on a loaded 2-core machine a Streamlit rerun now and then never reaches the idle state a
    test waits for (see docs/testing.md). Any other failure (a wrong text, an assertion) fails at once."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=["TimeoutError"]))


@pytest.fixture(scope="session", autouse=True)
def _private_cache_root(tmp_path_factory):
    """Tests never read or write the user's cache (``~/.cache/propme`` or ``$PROPME_CACHE_DIR``): each test
    session (each xdist worker) starts with an empty cache root, so no test depends on what an earlier run
    left there (result caches, the record of verified index files). Only the compiled libsais (``native/``,
    one file per source version) is shared, by every worker and run, to save a compile."""
    root = tmp_path_factory.mktemp("propme-cache")
    native = tmp_path_factory.getbasetemp().parent / "propme-native"
    native.mkdir(exist_ok=True)
    (root / "native").symlink_to(native, target_is_directory=True)
    mp = pytest.MonkeyPatch()
    mp.setenv(CACHE_ENV, str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                              "--disable-background-networking"])
        yield WatchedBrowser(b)  # each page counts the Streamlit runs it sees finish (fixtures_browser.settle)
        b.close()


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory):
    """``streamlit run app/serve.py`` with no results folder set: the shipped demo results, as a new user sees
    them (the result cache in a temporary folder). Yields (url, demo results folder)."""
    from core.runs.demo import demo_results_dir

    folder = demo_results_dir()
    assert (folder / "manifest.json").is_file(), f"the shipped demo results are tracked in git: {folder}"
    with serve_app(None, tmp_path_factory.mktemp("log") / "streamlit-demo.log",
                   cache=tmp_path_factory.mktemp("demo-cache")) as url:
        yield url, folder
