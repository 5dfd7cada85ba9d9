import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import AdaptiveParam, DecodingConfig, MetricsConfig, NVBlocksConfig
from core.config.file import load_experiment
from core.errors import ConfigError
from core.runs.cache import ResultCache
from core.runs.experiment import run_experiment
from core.runs.manifest import Counts
from core.runs.results import load_results
from core.scoring.registry import compute_metrics
from core.tracing.nvrecall import rescore
from tests.fixtures_runs import GENERIC_PROMPTS, make_tiny_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny experiment TOML (model and index built once per module)."""
    return make_tiny_experiment(tmp_path_factory.mktemp("exp"))


def _cfg(toml, tmp_path, **decoding):
    cfg = load_experiment(toml)
    if decoding:
        cfg = dataclasses.replace(cfg, decoding=dataclasses.replace(cfg.decoding, **decoding))
    return dataclasses.replace(cfg, output_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache"))


def test_load_experiment_resolves_paths_relative_to_the_file(tiny):
    cfg = load_experiment(tiny)
    base = tiny.parent
    assert cfg.index_dirs == (str(base / "index"),)
    assert cfg.model.name_or_path == str(base / "model")
    assert cfg.settings[1].prompts_path == str(base / "generic.jsonl")
    assert cfg.output_dir == str(base / "results") and cfg.cache_dir == str(base / "cache")
    assert cfg.decoding == DecodingConfig(max_new_tokens=12, batch_size=2)
    assert [s.name for s in cfg.settings] == ["prefix", "generic"] and cfg.settings[0].n_prompts == 6


GOOD = """name = "x"
index_dirs = "idx"
[model]
name_or_path = "some/hub-id"
[[settings]]
name = "prefix"
"""


@pytest.mark.parametrize("text, match", [
    (GOOD.replace('name = "x"', 'name = "x'), r"not valid TOML \(.*line 1"),
    (GOOD + "[decoding]\ntemprature = 0.5\n", r"DecodingConfig: unknown field\(s\) \['temprature'\]"),
    (GOOD + "[decoding]\ntemperature = -1\n", r"temperature must be >= 0, got -1"),
    (GOOD + "n_prompts = 'ten'\n", r"experiment.settings"),  # lands in the [[settings]] table
    (GOOD.replace("[[settings]]\nname = \"prefix\"\n", "[[settings]]\nname = 'prefix'\nn_prompts = 'ten'\n"),
     r"n_prompts = 'ten': expected int"),
    (GOOD + "[[settings]]\nname = \"prefix\"\n", r"setting names must be unique"),
    (GOOD.replace('index_dirs = "idx"\n', ""), r"missing required key 'index_dirs'"),
    ("bogus = 1\n" + GOOD, r"ExperimentConfig: unknown field\(s\) \['bogus'\]"),
])
def test_load_experiment_errors_name_the_file_and_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        load_experiment(path)
    assert str(path) in str(e.value)


def test_load_experiment_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.toml")


def test_run_then_rerun_makes_no_model_calls(tiny, tmp_path, monkeypatch):
    cfg = _cfg(tiny, tmp_path)
    events = []
    run = run_experiment(cfg, progress=events.append, cache=ResultCache(cfg.cache_dir))
    assert {"generate", "trace", "score"} <= {e.stage for e in events}
    n = 6 + len(GENERIC_PROMPTS)
    assert run.manifest.counts == Counts(generations=n, generated=n, generations_from_cache=0, traced=n,
                                         traces_from_cache=0)
    loaded = load_results(tmp_path / "results" / "tiny")
    assert loaded.generations == run.generations and loaded.traces == run.traces
    assert loaded.settings() == ["prefix", "generic"]
    assert [g.prompt.text for g in loaded.by_setting("generic")[0]] == GENERIC_PROMPTS
    assert all(len(g.completion_ids) <= 12 for g in loaded.generations)
    assert all(t.completion == g.completion for g, t in zip(loaded.generations, loaded.traces))
    # the stored scores are the metrics of the stored traces (recomputed independently here)
    for s in ("prefix", "generic"):
        gens, traces = loaded.by_setting(s)
        assert loaded.summary[s]["metrics"] == compute_metrics(traces, cfg.metrics, gens)
        assert set(loaded.summary[s]["intervals"]) == {"als", "fmr", "nvr"}
    assert set(loaded.pm) == {"generic"} and set(loaded.pm["generic"]) == {"als", "fmr", "nvr"}
    m = loaded.manifest
    assert m.model.identity.startswith("model@") and m.index.num_docs == 8
    assert m.seeds["decoding"] == 42 and m.package_versions["torch"] and m.metrics == cfg.metrics

    import core.generation.model

    def no_model(*a, **k):
        raise AssertionError("the model was loaded although everything is cached")

    monkeypatch.setattr(core.generation.model, "load_model", no_model)
    again = run_experiment(cfg, cache=ResultCache(cfg.cache_dir))
    assert again.manifest.counts.generated == 0 and again.manifest.counts.traced == 0
    assert again.generations == run.generations and again.traces == run.traces
    assert again.summary == run.summary and again.pm == run.pm
    # batch size does not change the output, so it does not invalidate the cache either
    third = run_experiment(_cfg(tiny, tmp_path, batch_size=5), cache=ResultCache(cfg.cache_dir))
    assert third.manifest.counts.generated == 0 and third.generations == run.generations
    # NV block thresholds are a scoring parameter: other ones re-score from the stored blocks, never re-trace
    blocks = NVBlocksConfig(l1=AdaptiveParam(0.45, 2, 20), l2=AdaptiveParam(0.6, 4, 100))
    strict = dataclasses.replace(cfg, metrics=dataclasses.replace(cfg.metrics, nv_blocks=blocks))
    fourth = run_experiment(strict, cache=ResultCache(cfg.cache_dir))
    assert fourth.manifest.counts.traced == 0 and fourth.traces == run.traces and fourth.manifest.metrics == strict.metrics
    for s in ("prefix", "generic"):
        gens, traces = run.by_setting(s)
        want = compute_metrics(rescore(traces, blocks), MetricsConfig(), gens)["nvr"]  # re-scored by hand
        assert fourth.summary[s]["metrics"]["nvr"] == pytest.approx(want)


def test_changed_decoding_generates_again(tiny, tmp_path):
    cache = ResultCache(tmp_path / "cache")
    first = run_experiment(_cfg(tiny, tmp_path), cache=cache)
    other = run_experiment(_cfg(tiny, tmp_path, max_new_tokens=5), cache=cache)
    assert other.manifest.counts.generated == len(first.generations)
    assert all(len(g.completion_ids) <= 5 for g in other.generations)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from core.runs.cache import ResultCache
    from core.config.file import load_experiment
    from core.runs.experiment import run_experiment
    import dataclasses
    cfg = load_experiment(sys.argv[1])
    cfg = dataclasses.replace(cfg, output_dir=sys.argv[2])
    def progress(e):
        if e.stage == "generate" and e.total and e.done * 2 >= e.total:
            os.kill(os.getpid(), signal.SIGKILL)  # after on_batch persisted about half
    run_experiment(cfg, progress=progress, cache=ResultCache(sys.argv[3]))
""")


@pytest.mark.slow  # a real run process, killed and resumed
def test_killed_run_resumes_with_identical_results(tiny, tmp_path):
    cache_dir = tmp_path / "killed-cache"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tiny), str(tmp_path / "out"), str(cache_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (tmp_path / "out" / "tiny").exists()  # no results folder from the killed run
    persisted = ResultCache(cache_dir).size_report()["tables"]["generations"]["entries"]
    n = 6 + len(GENERIC_PROMPTS)
    assert n // 2 <= persisted < n
    resumed = run_experiment(_cfg(tiny, tmp_path), cache=ResultCache(cache_dir))
    assert resumed.manifest.counts.generated == n - persisted
    assert resumed.manifest.counts.generations_from_cache == persisted
    fresh = run_experiment(dataclasses.replace(_cfg(tiny, tmp_path), output_dir=str(tmp_path / "fresh")),
                           cache=ResultCache(tmp_path / "fresh-cache"))
    assert resumed.generations == fresh.generations
    assert resumed.traces == fresh.traces
    assert resumed.summary == fresh.summary and resumed.pm == fresh.pm


def test_openai_backend_gives_the_same_completions(tiny, tmp_path):
    """The same experiment through core.generation.server over HTTP: greedy completions equal in-process ones."""
    import threading

    from core.config import ModelConfig
    from core.generation.model import load_model
    from core.generation.server import make_server

    local = run_experiment(_cfg(tiny, tmp_path / "hf"), cache=ResultCache(tmp_path / "hf-cache"))
    model_dir = str(tiny.parent / "model")
    server = make_server(load_model(ModelConfig(model_dir, device="cpu", dtype="float32")), port=0,
                         model_name="tiny-served")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        cfg = _cfg(tiny, tmp_path / "oa")
        cfg = dataclasses.replace(cfg, index_tokenizer=model_dir, model=ModelConfig(
            "tiny-served", backend="openai", base_url=f"http://{host}:{port}/v1", concurrency=2))
        remote = run_experiment(cfg, cache=ResultCache(tmp_path / "oa-cache"))
    finally:
        server.shutdown()
        server.server_close()
    assert remote.manifest.model.identity == f"openai:http://{host}:{port}/v1:tiny-served"
    assert [g.key for g in remote.generations] == [g.key for g in local.generations]
    assert [g.completion for g in remote.generations] == [g.completion for g in local.generations]
    assert [t.spans for t in remote.traces] == [t.spans for t in local.traces]
