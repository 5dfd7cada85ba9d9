"""core.generation.openai_backend against a REAL OpenAI-compatible server: llama.cpp through llama-cpp-python.

The first tests need nothing extra: they record what ``server_api = "llama.cpp"`` puts on the wire
(a scripted loopback server captures the requests). The rest start ``python -m llama_cpp.server`` as a
subprocess on an ephemeral 127.0.0.1 port, serving the demo model converted to GGUF inside the test
(scripts/convert_demo_to_gguf.py with llama.cpp's own converter), and compare with in-process
:func:`core.generation.generate.generate`. They are skipped unless enabled; to enable them (about 10 minutes of
compiling on 2 cores, see docs/llamacpp.md)::

    CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 .venv/bin/pip install 'llama-cpp-python[server]==0.3.36'
    .venv/bin/pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    LLAMA_CPP_DIR=/tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp .venv/bin/python -m pytest tests/test_llamacpp_server.py
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from core.config import DecodingConfig, ModelConfig
from core.errors import BackendError, ConfigError
from core.generation.openai_backend import OpenAIBackend
from core.records import Prompt
from core.runs.demo import demo_model_dir
from tests.launch import free_port

ROOT = Path(__file__).resolve().parents[1]
TEXT_PROMPTS = ["The best way to keep a risotto creamy without constant stirring is",
                "When I bake sourdough at home, the crust always comes out",
                "Phone: +1-444-555-0135\nAccount:", "def parse(self, text):", "Dear Sir or Madam,", "\n"]


@pytest.fixture(scope="module")
def demo_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir())


def _prompts(tokenizer) -> list[Prompt]:
    """Natural prompts as text, and corpus-style prefix prompts given as token ids (cut mid-text)."""
    prompts = [Prompt("generic", f"g{i}", t) for i, t in enumerate(TEXT_PROMPTS)]
    for i, t in enumerate(TEXT_PROMPTS[:4]):
        ids = tokenizer(t * 3, add_special_tokens=False)["input_ids"][:17]
        prompts.append(Prompt("prefix", f"p{i}", tokenizer.decode(ids), token_ids=tuple(ids)))
    return prompts


# ---- what server_api = "llama.cpp" sends (no llama.cpp needed) --------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []  # each test gets its own subclass (fixture `recorder`)
    status = 200

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        reply = {"choices": [{"text": " ok", "index": 0, "finish_reason": "length"}]}
        if self.status != 200:
            reply = {"error": {"message": "Input should be a valid string", "type": "internal_server_error"}}
        data = json.dumps(reply).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def recorder():
    handler = type("Rec", (_Recorder,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_llamacpp_mode_sends_text_and_every_sampling_knob(recorder, demo_tokenizer):
    handler, url = recorder
    prompts = _prompts(demo_tokenizer)
    cfg = ModelConfig("demo", backend="openai", base_url=url, server_api="llama.cpp", concurrency=1)
    OpenAIBackend(cfg, demo_tokenizer).generate(prompts, DecodingConfig(max_new_tokens=4, max_prompt_tokens=12))
    sent = {b["prompt"] for b in handler.bodies}
    for p in prompts:  # text as given when it fits, else the decoded first 12 model tokens
        ids = list(p.token_ids) if p.token_ids else demo_tokenizer(p.text, add_special_tokens=False)["input_ids"]
        want = p.text if p.token_ids is None and len(ids) <= 12 else demo_tokenizer.decode(ids[:12])
        assert want in sent
    assert all(isinstance(b["prompt"], str) for b in handler.bodies)
    # llama.cpp's own defaults (top_k 40, min_p 0.05, repeat_penalty 1.1) must not apply: all sent, all off
    assert all((b["top_k"], b["min_p"], b["repeat_penalty"]) == (0, 0.0, 1.0) for b in handler.bodies)
    assert not any("repetition_penalty" in b for b in handler.bodies)


def test_openai_mode_still_sends_token_ids_and_hints_on_failure(recorder, demo_tokenizer):
    handler, url = recorder
    handler.status = 500  # what llama-cpp-python answers to a token-id prompt
    cfg = ModelConfig("demo", backend="openai", base_url=url, max_retries=0)
    with pytest.raises(BackendError, match="server_api = 'llama.cpp'"):
        OpenAIBackend(cfg, demo_tokenizer).generate(_prompts(demo_tokenizer)[:1], DecodingConfig(max_new_tokens=4))
    assert isinstance(handler.bodies[0]["prompt"], list) and "repeat_penalty" not in handler.bodies[0]


def test_unknown_server_api_is_a_config_error():
    with pytest.raises(ConfigError, match="server_api"):
        OpenAIBackend(ModelConfig("demo", backend="openai", base_url="http://127.0.0.1:9/v1", server_api="tgi"))


# ---- the real llama.cpp server ------------------------------------------------------------------------
def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def llamacpp_url(tmp_path_factory):
    """Convert demo/model to GGUF and serve it with llama-cpp-python; skip (saying how to enable) if unavailable."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("llama-cpp-python[server] is not installed; see this file's docstring to enable")
    tree = os.environ.get("LLAMA_CPP_DIR")
    if not tree or not (Path(tree) / "conversion" / "gpt2.py").is_file():
        pytest.skip("set LLAMA_CPP_DIR to a llama.cpp source tree (the llama-cpp-python sdist's vendor/llama.cpp) "
                    "so the demo model can be converted to GGUF; see this file's docstring")
    tmp = tmp_path_factory.mktemp("llamacpp")
    gguf = tmp / "demo.gguf"
    subprocess.run([sys.executable, str(ROOT / "scripts/convert_demo_to_gguf.py"), "--llama-cpp", tree,
                    str(demo_model_dir()), str(gguf)], check=True, capture_output=True, timeout=300)
    port = free_port()
    with open(tmp / "server.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "512", "--n_threads", "1", "--model_alias", "demo"],
                                stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"llama_cpp.server exited: {(tmp / 'server.log').read_text()[-2000:]}"
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "llama_cpp.server did not answer within 120 s"
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _backend(url: str, tokenizer, **kw) -> OpenAIBackend:
    cfg = ModelConfig("demo", backend="openai", base_url=url + "/v1", server_api="llama.cpp", concurrency=2,
                      max_retries=0, **kw)
    return OpenAIBackend(cfg, tokenizer)


@pytest.mark.slow  # a real llama.cpp server process
def test_gguf_tokenizer_matches_hf_tokenizer(llamacpp_url, demo_tokenizer):
    for p in _prompts(demo_tokenizer):
        got = _post(llamacpp_url + "/extras/tokenize", {"input": p.text})["tokens"]
        want = list(p.token_ids) if p.token_ids else demo_tokenizer(p.text, add_special_tokens=False)["input_ids"]
        assert got == want, p


@pytest.mark.slow  # a real llama.cpp server process
def test_reply_follows_the_completions_schema(llamacpp_url, demo_tokenizer):
    prompt = TEXT_PROMPTS[2]
    reply = _post(llamacpp_url + "/v1/completions", {"model": "demo", "prompt": prompt, "max_tokens": 5,
                                                     "temperature": 0})
    assert reply["object"] == "text_completion" and reply["id"] and reply["model"] == "demo"
    (choice,) = reply["choices"]
    assert choice["index"] == 0 and isinstance(choice["text"], str) and choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["prompt_tokens"] == len(demo_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] <= usage["prompt_tokens"] + 5


@pytest.mark.slow  # a real llama.cpp server process
def test_token_id_prompts_are_refused_by_llama_cpp_python(llamacpp_url):
    # the reason server_api = "llama.cpp" exists: the schema allows a list of ints, this server does not
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(llamacpp_url + "/v1/completions", {"model": "demo", "prompt": [5, 9, 14], "max_tokens": 2})
    assert err.value.code >= 400


@pytest.mark.slow  # a real llama.cpp server process
def test_greedy_through_llamacpp_equals_in_process(llamacpp_url, demo_tokenizer):
    from core.generation.generate import generate
    from core.generation.model import load_model

    lm = load_model(ModelConfig(str(demo_model_dir()), device="cpu", dtype="float32"))
    prompts = _prompts(demo_tokenizer)
    cfg = DecodingConfig(max_new_tokens=32, batch_size=5)
    want = generate(lm, prompts, cfg)
    got = _backend(llamacpp_url, demo_tokenizer).generate(prompts, cfg)
    assert [g.key for g in got] == [g.key for g in want]
    differ = [(w.key.prompt_id, w.completion, g.completion) for w, g in zip(want, got) if w.completion != g.completion]
    # measured (docs/llamacpp.md): 24/24 equal at 32 tokens, 58/60 at 128 tokens (two near-ties after 61
    # and 342 characters); llama.cpp's fp32 kernels are not bit-identical to torch's
    assert not differ, f"greedy llama.cpp vs in-process differ on {len(differ)}/{len(prompts)}: {differ}"
    assert all(g.finish_reason == w.finish_reason for w, g in zip(want, got))


@pytest.mark.slow  # a real llama.cpp server process
def test_sampling_is_seeded_per_row(llamacpp_url, demo_tokenizer):
    backend = _backend(llamacpp_url, demo_tokenizer)
    prompts = _prompts(demo_tokenizer)[:3]
    cfg = DecodingConfig(temperature=1.0, top_p=0.95, num_samples=3, max_new_tokens=16, seed=11)
    first, again = backend.generate(prompts, cfg), backend.generate(prompts, cfg)
    assert [g.completion for g in first] == [g.completion for g in again]  # same row seeds, same samples
    assert len({g.completion for g in first}) > len(prompts)  # samples of one prompt differ
    other = backend.generate(prompts, DecodingConfig(temperature=1.0, top_p=0.95, num_samples=3,
                                                     max_new_tokens=16, seed=12))
    assert [g.completion for g in other] != [g.completion for g in first]
