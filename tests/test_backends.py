"""Model backends have one home (issue 25, item 3): core/generation/backends.py chooses the backend from
``ModelConfig.backend``; each backend module answers identity and start; nothing else branches on the name."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import BACKENDS, DecodingConfig, ModelConfig
from core.errors import ConfigError
from core.generation import backends
from core.generation.generate import generate
from core.generation.model import load_model
from core.generation.model_identity import model_identity
from core.records import Prompt
from core.runs.demo import demo_model_dir

ROOT = Path(__file__).resolve().parents[1]
SERVED = ModelConfig("served-name", backend="openai", base_url="http://127.0.0.1:9/v1")


def test_every_config_backend_has_one_spec_reading_real_fields():
    assert tuple(backends.SPECS) == BACKENDS
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for spec in backends.SPECS.values():
        assert set(spec.reads) <= fields, spec.name
        module = spec.module()
        assert callable(module.identity) and callable(module.start), spec.name


def test_an_unknown_backend_is_a_config_error():
    bad = object.__new__(ModelConfig)  # past the constructor's check: what a stale manifest could hold
    object.__setattr__(bad, "backend", "vllm-direct")
    with pytest.raises(ConfigError, match="expected one of hf, openai"):
        backends.spec(bad)


def test_identity_without_loading_anything(tmp_path):
    folder = demo_model_dir()
    assert backends.identity(ModelConfig(str(folder))) == model_identity(str(folder), None)
    assert backends.identity(SERVED) == "openai:http://127.0.0.1:9/v1:served-name"
    code = ("import sys; from core.config import ModelConfig; from core.generation import backends; "
            f"backends.identity(ModelConfig({str(folder)!r})); "
            "backends.identity(ModelConfig('m', backend='openai', base_url='http://x/v1')); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # a fully cached run never imports torch for the identity


def test_the_in_process_backend_generates_what_generate_does():
    cfg = ModelConfig(str(demo_model_dir()), device="cpu", dtype="float32")
    prompts = [Prompt("generic", "p0", "The GNU General Public License"), Prompt("generic", "p1", "Copyright")]
    decoding = DecodingConfig(max_new_tokens=8)
    events = []
    got = backends.start(cfg, progress=events.append).generate(prompts, decoding)
    want = generate(load_model(cfg), prompts, decoding)
    assert [(g.key, g.completion_ids) for g in got] == [(g.key, g.completion_ids) for g in want]
    assert events and events[0].stage == "load-model"


def test_the_server_backend_starts_a_client_without_a_request():
    backend = backends.start(SERVED)
    assert backend.url == "http://127.0.0.1:9/v1/completions"


def test_only_the_backends_module_branches_on_the_backend_name():
    pattern = re.compile(r"""\bbackend\s*(==|!=|\bin\b)\s*[\("']|["'](hf|openai)["']\s*(==|!=)\s*\S*backend\b""")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for d in ("core", "app", "pages") for p in sorted((ROOT / d).rglob("*.py"))
                 if p.name != "backends.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    # the config's own check that the server backend names its server stays where the config is validated
    assert [o for o in offenders if not o.startswith("core/config/schema.py:")] == []
