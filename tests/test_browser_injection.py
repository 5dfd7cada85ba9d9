"""Real browser: markdown, image, link, directive and LaTeX payloads in a results folder are shown
literally on every page, and the browser fetches nothing from them (issue 10 item 4).

The run name, the natural setting names, prompt ids and document ids of a fixture results folder
carry ``![x](http://127.0.0.1:PORT/...)`` images, links, raw ``<img>``, ``:red[...]``,
``:material/...:``, ``$...$`` and a bidi override, where PORT is a local HTTP logger. Every page is
visited in headless Chromium; the logger must record zero requests and ``innerText`` must hold
each payload as typed (control characters as ``[U+XXXX]``). Then a corpus whose ids carry the same
payloads (one id twice, so the loader's duplicate-id report names it) is uploaded on the Run page
and run with the demo model. Screenshots go to test-artifacts/.
"""
from __future__ import annotations

import dataclasses
import http.server
import threading
from typing import ClassVar

import pytest

from app.render import WORD_JOINER
from app.setting_form import key as skey
from core.records import GenKey
from core.reports.highlight import visible_controls
from core.runs.results import RunResults, save_results
from tests.fixtures_app import THRESHOLD_TABS, make_run
from tests.fixtures_browser import ARTIFACTS, commit, serve_app, settle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PAGES = ["", "explore", "thresholds", "compare", "corpus", "export", "run"]


class _Logger(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    do_POST = do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def logger():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Logger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Logger.hits
    server.shutdown()


def payload(port: int, tag: str) -> str:
    """Markdown image, link, raw HTML image, colour directive, icon, LaTeX and a bidi override."""
    return (f"{tag} ![x](http://127.0.0.1:{port}/{tag}-img) [y](http://127.0.0.1:{port}/{tag}-link) "
            f"<img src=http://127.0.0.1:{port}/{tag}-raw> :red[{tag}-red] :material/home: $x^2$ it's \u202e!")


def hostile_run(port: int) -> RunResults:
    """The fixture run with payloads in its run name, natural setting names, prompt ids and doc ids."""
    run = make_run(hostile=False)
    setting = {"prefix": "prefix", "generic": payload(port, "setgen"), "specific": payload(port, "setspec")}

    def key(k: GenKey) -> GenKey:
        return GenKey(setting[k.setting], f"{payload(port, 'prompt')} {k.prompt_id}", k.sample_index)

    def doc_id(d: str) -> str:
        return f"{payload(port, 'doc')} {d}"

    gens = tuple(dataclasses.replace(
        g, key=key(g.key), prompt=dataclasses.replace(
            g.prompt, setting=setting[g.key.setting], prompt_id=key(g.key).prompt_id,
            source_doc_id=doc_id(g.prompt.source_doc_id) if g.prompt.source_doc_id else None))
        for g in run.generations)
    traces = tuple(dataclasses.replace(t, key=key(t.key), spans=tuple(dataclasses.replace(
        s, docs=tuple(dataclasses.replace(d, doc_id=doc_id(d.doc_id)) for d in s.docs)) for s in t.spans))
        for t in run.traces)
    manifest = dataclasses.replace(run.manifest, run_name=payload(port, "run"))
    return RunResults(None, manifest, gens, traces)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, logger):
    port, _ = logger
    folder = save_results(hostile_run(port), tmp_path_factory.mktemp("inject") / "run")
    with serve_app(folder, tmp_path_factory.mktemp("log") / "streamlit-inject.log") as url:
        yield url, folder


def _settle(page) -> None:
    """The rerun that the last action (or ``goto``) started is over, and the page has its title."""
    settle(page)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=90_000)  # every page has a title


def _no_rendered_payload(page, port: int) -> None:
    found = page.evaluate(f"""() => Array.from(document.querySelectorAll(
        'img[src*="127.0.0.1:{port}"], a[href*="127.0.0.1:{port}"], .katex')).map(e => e.outerHTML.slice(0, 300))""")
    assert found == []


def _open_lazy_views(page, name: str, port: int) -> None:
    """Open what a first screen leaves closed (Overview's sections, each Thresholds tab): their charts and
    tables name the hostile settings too."""
    if name == "":
        for label in ("Run in view: model", "Every metric, with 95%", "Charts: ALS per setting"):
            page.get_by_text(label).first.click()
            _settle(page)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    if name == "thresholds":
        for tab in THRESHOLD_TABS[1:]:
            page.get_by_role("tab", name=tab).click()
            _settle(page)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            _no_rendered_payload(page, port)


SHOWS_JS = "(s) => document.body.innerText.replaceAll('\\u2060', '').includes(s)"


def test_every_page_shows_payloads_literally_and_fetches_nothing(hostile_server, browser, logger):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    url, _ = hostile_server
    port, hits = logger
    ARTIFACTS.mkdir(exist_ok=True)

    def shown(tag: str) -> str:
        return visible_controls(payload(port, tag))

    expected = {  # page -> texts it must show literally (each waited for, then asserted)
        "": [f"· run {shown('run')}",  # the model badge (st.markdown)
             f"ALS ({shown('setgen')})", f"PM of ALS ({shown('setspec')})",  # metric labels
             f"Ordinary prompts ({shown('setspec')}) leak"],  # st.info naming a setting (the PM sentence)
        "explore": [f"source document: {shown('doc')} doc-", f"document: {shown('doc')} doc-"],  # captions
        "thresholds": [f"R_50 ({shown('setgen')})", f"PM of R_50 ({shown('setspec')})"],
        "compare": ["Pick at least two runs to compare them"], "corpus": ["corpus index is not on this machine"],
        "export": ["HTML report"], "run": ["Run an experiment"],
        "leaked": ["Leaked documents"], "side_by_side": ["Side by side: attack vs ordinary use"],
    }
    for name, texts in expected.items():
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(f"{url}/{name}")
        _settle(page)
        if name == "explore":  # the prompt and its source document fold above the completion: open them
            page.get_by_text("Prefix (prompt) and the document's true continuation").first.click()
        for text in texts:
            try:
                page.wait_for_function(SHOWS_JS, arg=text, timeout=60_000)
            except PlaywrightTimeout:  # report what the page did show
                body = page.evaluate("() => document.body.innerText")
                pytest.fail(f"/{name} does not show {text!r} literally; it shows:\n{body[:3000]}")
        _open_lazy_views(page, name, port)
        body = page.evaluate("() => document.body.innerText").replace(WORD_JOINER, "")
        (ARTIFACTS / f"inject-{name or 'overview'}.txt").write_text(body, encoding="utf-8")
        assert "Traceback" not in body and "\u202e" not in body
        _no_rendered_payload(page, port)
        page.screenshot(path=str(ARTIFACTS / f"inject-{name or 'overview'}.png"), full_page=False, timeout=90_000)
        page.close()
    assert hits == [], f"the browser fetched {hits}"


def test_explore_setting_filter_options_stay_text(hostile_server, browser, logger):
    """Selectbox options (not markdown in Streamlit 1.67) opened in the dropdown: still nothing fetched."""
    url, _ = hostile_server
    port, hits = logger
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/explore")
    _settle(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.wait_for_selector('[role="option"]', timeout=10_000)
    options = [o.replace(WORD_JOINER, "") for o in page.eval_on_selector_all('[role="option"]', "os => os.map(o => o.innerText)")]
    assert visible_controls(payload(port, "setgen")) in options
    _no_rendered_payload(page, port)
    page.screenshot(path=str(ARTIFACTS / "inject-explore-options.png"), full_page=False)
    page.close()
    assert hits == [], f"the browser fetched {hits}"


def test_uploaded_corpus_ids_are_shown_literally(hostile_server, browser, logger, tmp_path):
    """Run page: upload a corpus whose ids carry payloads (one twice: the loader reports it), run the demo
    model on the prefix setting; the duplicate-id report and the finished run fetch nothing."""
    import json

    from core.runs.demo import demo_model_dir

    assert (demo_model_dir() / "config.json").is_file(), "the demo model is tracked in git"
    url, _ = hostile_server
    port, hits = logger
    words = ["river", "stone", "quiet", "lamp", "harbor", "violet", "engine", "paper", "window", "silver", "market", "garden"]
    rows = [{"id": payload(port, f"up{i % 3}"), "text": " ".join((words[i:] + words[:i]) * 20)} for i in range(4)]
    corpus = tmp_path / "hostile.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/run")
    _settle(page)
    page.get_by_text("upload a corpus file").click()
    _settle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(corpus))
    _settle(page)
    for key, value in ((skey("prefix", "n_prompts"), "1"), ("run_max_new", "8")):  # another corpus: prefix only
        commit(page.locator(f".st-key-{key} input").first, value)
        _settle(page)
    commit(page.get_by_role("textbox", name="Output folder (results go to OUTPUT/NAME)"), str(tmp_path / "out"))
    _settle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_selector('[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentError"]',
                           timeout=300_000)
    _settle(page)
    text = page.evaluate("() => document.body.innerText").replace(WORD_JOINER, "")
    page.screenshot(path=str(ARTIFACTS / "inject-upload.png"), full_page=False, timeout=90_000)
    _no_rendered_payload(page, port)
    page.close()
    assert hits == [], f"the browser fetched {hits}"
    assert "Done:" in text, text[-2000:]
    assert "id repeats an earlier row" in text and payload(port, "up0")[:60] in text  # the report quotes the id literally
    assert "\u202e" not in text
