"""core.generation.openai_backend against our reference server (core.generation.server) and against scripted failing servers.

Everything binds 127.0.0.1 on an ephemeral port and stops at the end of its test."""
from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import DecodingConfig, ModelConfig
from core.errors import BackendError
from core.generation.generate import generate
from core.generation.openai_backend import OpenAIBackend
from core.generation.seeds import row_seed
from core.generation.server import make_server
from core.records import GenKey, Prompt
from tests import fixtures_model

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures

PROMPTS = [Prompt("generic", f"g{i}", t) for i, t in
           enumerate(["The cat", "It was the best of times", "Hello world", "She sells"])]
PROMPTS.append(Prompt("prefix", "prefix-d1", "", token_ids=(5, 9, 14, 30, 31)))


@contextmanager
def running(server):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def served(tiny_lm):
    with running(make_server(tiny_lm, "127.0.0.1", 0, model_name="tiny", batch_size=4)) as url:
        yield url


def _backend(url, tokenizer=None, **kw):
    sleeps = []
    cfg = ModelConfig("tiny", backend="openai", base_url=url, **kw)
    return OpenAIBackend(cfg, tokenizer, backoff_s=0.01, sleep=sleeps.append), sleeps


def _post(url, body):
    req = urllib.request.Request(url + "/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_backend_through_server_equals_in_process_greedy(tiny_lm, served):
    cfg = DecodingConfig(max_new_tokens=8, batch_size=2)
    want = generate(tiny_lm, PROMPTS, cfg)
    backend, sleeps = _backend(served, tiny_lm.tokenizer, concurrency=3)
    batches, events = [], []
    got = backend.generate(PROMPTS, cfg, progress=events.append, on_batch=batches.append)
    assert [(g.key, g.completion, g.finish_reason) for g in got] == [(g.key, g.completion, g.finish_reason)
                                                                     for g in want]
    # the API returns text only: completion ids are the re-tokenized text (the model's own ids may differ
    # where decoding is not invertible, e.g. partial UTF-8 bytes from this random model)
    assert all(list(g.completion_ids) == tiny_lm.tokenizer(g.completion, add_special_tokens=False)["input_ids"]
               for g in got)
    assert sum(len(b) for b in batches) == len(PROMPTS) and all(len(b) <= 3 for b in batches)
    assert events[-1].done == events[-1].total == len(PROMPTS) and not sleeps
    text_only, _ = _backend(served)  # no tokenizer: text prompts go as text
    got_text = text_only.generate(PROMPTS[:4], cfg)
    assert [g.completion for g in got_text] == [g.completion for g in want[:4]]


def test_sampled_requests_carry_per_row_seeds(tiny_lm, served):
    cfg = DecodingConfig(temperature=1.0, num_samples=2, max_new_tokens=6, seed=5)
    backend, _ = _backend(served, tiny_lm.tokenizer)
    got = backend.generate(PROMPTS[:2], cfg, skip=lambda k: k == GenKey("generic", "g0", 1))
    assert [g.key for g in got] == [GenKey("generic", "g0", 0), GenKey("generic", "g1", 0),
                                    GenKey("generic", "g1", 1)]
    for g in got:  # the server seeds its single row "p0" from the seed the client derived
        one = DecodingConfig(temperature=1.0, max_new_tokens=6, seed=row_seed(5, g.key.prompt_id, g.key.sample_index))
        (ref,) = generate(tiny_lm, [Prompt("served", "p0", g.prompt.text)], one)
        assert g.completion == ref.completion
    again = {g.key: g.completion for g in backend.generate(PROMPTS[:2], cfg)}
    assert all(again[g.key] == g.completion for g in got)


def test_server_follows_the_openai_schema(tiny_lm, served):
    with urllib.request.urlopen(served + "/models", timeout=30) as r:
        models = json.loads(r.read())
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    status, reply = _post(served, {"model": "tiny", "prompt": ["The cat", [5, 9, 14]], "max_tokens": 4,
                                   "temperature": 0.8, "n": 2, "seed": 1})
    assert status == 200 and reply["object"] == "text_completion" and reply["model"] == "tiny"
    assert reply["id"].startswith("cmpl-") and isinstance(reply["created"], int)
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2, 3]
    assert all(c["logprobs"] is None and c["finish_reason"] in ("stop", "length") for c in reply["choices"])
    n_prompt = 2 * (len(tiny_lm.tokenizer("The cat", add_special_tokens=False)["input_ids"]) + 3)
    usage = reply["usage"]
    assert usage["prompt_tokens"] == n_prompt and usage["total_tokens"] == n_prompt + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 16


@pytest.mark.parametrize("body,status,needle", [
    ({"model": "other", "prompt": "x"}, 404, "not served here"),
    ({"prompt": "x", "stream": True}, 400, "'stream' is not supported"),
    ({"prompt": "x", "temperature": 0, "n": 2}, 400, "greedy decoding"),
    ({"prompt": "x", "max_tokens": 1000}, 400, "leaves no room"),
    ({"prompt": [], "max_tokens": 2}, 400, "'prompt' must be"),
    ({"prompt": "x", "max_tokens": "many"}, 400, "'max_tokens' must be an integer"),
])
def test_server_rejects_bad_requests(served, body, status, needle):
    got_status, reply = _post(served, body)
    assert got_status == status and needle in reply["error"]["message"]


def test_server_rejects_malformed_json(served):
    req = urllib.request.Request(served + "/completions", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400 and "not JSON" in json.loads(e.value.read())["error"]["message"]


# ---- scripted failures ---------------------------------------------------------------------------

GOOD = json.dumps({"id": "x", "object": "text_completion", "choices": [
    {"text": "ok", "index": 0, "logprobs": None, "finish_reason": "stop"}]}).encode()


def scripted(replies):
    """A server answering POSTs with the scripted (status, body, headers) in turn, then GOOD."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((json.loads(self.rfile.read(int(self.headers["Content-Length"]))),
                         self.headers.get("Authorization")))
            status, body, headers = replies.pop(0) if replies else (200, GOOD, {})
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler), seen


def test_retries_5xx_with_exponential_backoff_then_succeeds(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    server, seen = scripted([(500, b"boom", {}), (503, b"busy", {})])
    with running(server) as url:
        backend, sleeps = _backend(url, api_key_env="TEST_KEY", max_retries=3)
        (g,) = backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    assert g.completion == "ok" and g.finish_reason == "eos" and g.completion_ids == ()
    assert sleeps == [0.01, 0.02] and len(seen) == 3
    body, auth = seen[0]
    assert auth == "Bearer sk-test" and body["prompt"] == "The cat" and body["max_tokens"] == 3
    assert body["temperature"] == 0 and body["n"] == 1 and body["seed"] == row_seed(42, "g0", 0)


def test_429_honours_retry_after():
    server, seen = scripted([(429, b"slow down", {"Retry-After": "0.5"})])
    with running(server) as url:
        backend, sleeps = _backend(url)
        backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    assert sleeps == [0.5] and len(seen) == 2


def test_gives_up_naming_url_and_last_status():
    server, seen = scripted([(503, b"down", {})] * 10)
    with running(server) as url:
        backend, sleeps = _backend(url, max_retries=2)
        with pytest.raises(BackendError, match=r"/v1/completions failed after 3 attempt\(s\); last: HTTP 503: down"):
            backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    assert len(seen) == 3 and sleeps == [0.01, 0.02]


def test_malformed_reply_is_retried_then_reported():
    server, _ = scripted([(200, b"<html>oops", {})] * 3)
    with running(server) as url:
        backend, _ = _backend(url, max_retries=1)
        with pytest.raises(BackendError, match="last: malformed response"):
            backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    server2, seen2 = scripted([(200, b'{"choices": []}', {})])
    with running(server2) as url:
        backend, sleeps = _backend(url, max_retries=1)
        assert backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))[0].completion == "ok"
    assert len(seen2) == 2 and sleeps == [0.01]


def test_client_errors_are_not_retried():
    server, seen = scripted([(401, b"bad key", {})])
    with running(server) as url:
        backend, sleeps = _backend(url, max_retries=4)
        with pytest.raises(BackendError, match=r"refused the request \(HTTP 401: bad key\).*\$OPENAI_API_KEY"):
            backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    assert len(seen) == 1 and not sleeps


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    backend, sleeps = _backend(f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(BackendError, match=f"127.0.0.1:{port}/v1/completions failed .* connection error"):
        backend.generate([PROMPTS[0]], DecodingConfig(max_new_tokens=3))
    assert len(sleeps) == 2
