"""The warm start (app/warmup.py, started by app/serve.py): the first visitor finds the default results
folder already loaded into the caches the pages read, and the server behind ``streamlit run app/serve.py``
serves the same app as ``streamlit run app/streamlit_app.py``."""
from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from app import cached, warmup
from tests.fixtures_app import write_run

ROOT = Path(__file__).resolve().parents[1]


def test_import_app_imports_every_app_module_but_the_entry_scripts():
    names = warmup.import_app()
    on_disk = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "app").rglob("*.py")}
    assert set(names) == on_disk - {"app.__init__", "app.streamlit_app", "app.serve", "app.views.__init__"}
    assert all(n in sys.modules for n in names + ["pandas", "pyarrow.parquet", "plotly.graph_objects"])


def test_warm_results_fills_the_caches_the_pages_read(tmp_path):
    folder = str(write_run(tmp_path / "run"))
    ident = warmup.warm_results(folder)
    assert ident == cached.run_id(folder)
    run = cached.load_run(folder, ident)  # the object the warm-up loaded, not a second load
    assert cached.load_run(folder, ident) is run
    cfg = run.manifest.metrics
    rescored = cached.rescored_traces(ident, cfg, run)
    assert cached.rescored_traces(ident, cfg, run) is rescored
    assert len(rescored) == len(run.traces)
    assert warmup.warm_results(str(tmp_path / "absent")) is None
    assert warmup.warm_results("") is None


def test_warm_start_in_background_loads_the_default_folder_once(monkeypatch, tmp_path, capsys):
    folder = str(write_run(tmp_path / "run"))
    monkeypatch.setenv("PROPME_RESULTS_DIR", folder)
    loads = []
    real = cached.load_results
    monkeypatch.setattr(cached, "load_results", lambda path: loads.append(path) or real(path))
    cached.load_run.clear()
    thread = warmup.warm_in_background()
    thread.join(120)
    assert not thread.is_alive() and loads == [folder]
    assert "PropMe Explorer: warm start done in" in capsys.readouterr().out
    cached.load_run(folder, cached.run_id(folder))  # what the first page asks for
    assert loads == [folder]  # served from the cache the warm-up filled


def test_a_failing_warm_start_is_reported_and_harmless(monkeypatch, tmp_path, capsys):
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    monkeypatch.setenv("PROPME_RESULTS_DIR", str(bad))
    cached.load_run.clear()
    thread = warmup.warm_in_background()
    thread.join(120)
    assert not thread.is_alive()
    assert "warm start skipped" in capsys.readouterr().err


@pytest.mark.slow
def test_streamlit_run_serve_answers_once_warm_and_quietly(tmp_path):
    """The README's command: the server answers only after the warm-up of its results folder (the lifespan
    hook waits for it, up to serve.WARM_WAIT_S), and the warm-up leaves no warnings in the server's log."""
    from tests.fixtures_browser import serve_app

    folder = write_run(tmp_path / "run")
    log = tmp_path / "streamlit.log"
    with serve_app(folder, log) as url:
        text = log.read_text()  # read as soon as the server answers its health check
        assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read() == b"ok"
    assert "PropMe Explorer: warm start done in" in text, text[-2000:]
    assert "missing ScriptRunContext" not in text and "Traceback" not in text, text[-2000:]
