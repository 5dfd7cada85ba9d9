"""Ray is optional: without it, ``--ray`` says in one line how to install it."""
from __future__ import annotations


def test_ray_option_without_ray_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    from core.cli import main
    from core.cluster import INSTALL_HINT

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    rc = main(["index", "build", "--corpus", str(tmp_path / "c.jsonl"), "--tokenizer", "gpt2", "--ray", "local",
               "--out", str(tmp_path / "ix")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and INSTALL_HINT in err and len(err.splitlines()) == 1


def test_tracing_goes_to_the_configured_cluster_the_experiment_first_then_the_environment(monkeypatch):
    from core.cluster import configured_address
    from core.config import TraceConfig

    monkeypatch.delenv("PROPME_RAY_ADDRESS", raising=False)
    assert configured_address(TraceConfig()) == ""
    monkeypatch.setenv("PROPME_RAY_ADDRESS", "auto")
    assert configured_address(TraceConfig()) == "auto"
    assert configured_address(TraceConfig(ray_address="10.0.0.5:6379")) == "10.0.0.5:6379"


def test_ray_address_does_not_change_the_trace_cache_key():
    from core.config import TraceConfig
    from core.runs.cache import trace_key

    assert trace_key("g", "text", "fp", TraceConfig()) == trace_key("g", "text", "fp", TraceConfig(ray_address="auto"))
    assert trace_key("g", "text", "fp", TraceConfig()) != trace_key("g", "text", "fp", TraceConfig(seed=1))
