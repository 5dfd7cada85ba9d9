"""The OpenAI backend with several base_urls (replicas of one model): requests spread over the
replicas, results identical and in prompt order, a dead replica left out. Servers bind 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import DecodingConfig, ModelConfig
from core.errors import ConfigError
from core.generation.generate import generate
from core.generation.openai_backend import OpenAIBackend, _Replicas, replica_urls
from core.generation.server import make_server
from core.records import Prompt
from tests import fixtures_model
from tests.test_backend_openai import running

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures

PROMPTS = [Prompt("generic", f"g{i}", t) for i, t in enumerate(
    ["The cat", "It was the best of times", "Hello world", "She sells", "A memorization audit", "Numbers like",
     "def f(x):", "The quick brown fox", "It was the worst", "Sea shells", "Hello", "The mat"])]


class Served(list):
    """The prompts a server answered, in order; ``arrived``: every prompt as its request came in."""

    def __init__(self):
        super().__init__()
        self.arrived: list[str] = []


def echo_server(name: str, hold: threading.Event | None = None):
    """Answers every completion with a text made of its prompt and seed only (not of the server),
    so any replica gives the same reply; records the prompts it served. ``hold``: wait for it first
    (keeps requests in flight, so the spreading is visible)."""
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            served.arrived.append(body["prompt"])
            if hold is not None:
                hold.wait(5)
            served.append(body["prompt"])
            reply = json.dumps({"choices": [{"text": f" after {body['prompt']!r} seed {body['seed']}",
                                             "finish_reason": "length"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *a):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler), served


def backend(urls: list[str], tokenizer=None, backoff_s: float = 0.01, **kw) -> tuple[OpenAIBackend, list[float]]:
    sleeps: list[float] = []  # the backoff is recorded, not slept
    cfg = ModelConfig("tiny", backend="openai", base_url=", ".join(urls), **kw)
    return OpenAIBackend(cfg, tokenizer, backoff_s=backoff_s, sleep=sleeps.append), sleeps


def test_requests_spread_over_two_replicas_and_results_keep_prompt_order():
    cfg = DecodingConfig(max_new_tokens=4)
    one_server, _ = echo_server("solo")
    with running(one_server) as url:
        want = backend([url])[0].generate(PROMPTS, cfg)
    gate = threading.Event()
    (a, served_a), (b, served_b) = echo_server("a", gate), echo_server("b", gate)
    with ExitStack() as stack:
        urls = [stack.enter_context(running(a)), stack.enter_context(running(b))]
        client, sleeps = backend(urls, concurrency=2)
        first: list[tuple[int, int]] = []

        def open_when_all_slots_filled():  # all four slots (2 replicas x concurrency 2) fill before any reply
            deadline = time.monotonic() + 10
            while len(served_a.arrived) + len(served_b.arrived) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            first.append((len(served_a.arrived), len(served_b.arrived)))
            gate.set()

        threading.Thread(target=open_when_all_slots_filled, daemon=True).start()
        got = client.generate(PROMPTS, cfg)
    assert [(g.key, g.completion, g.finish_reason) for g in got] == [(g.key, g.completion, g.finish_reason)
                                                                     for g in want]
    assert [g.prompt.prompt_id for g in got] == [p.prompt_id for p in PROMPTS]
    assert len(served_a) + len(served_b) == len(PROMPTS) and served_a and served_b
    assert sorted(served_a + served_b) == sorted(p.text for p in PROMPTS)
    assert first == [(2, 2)]  # the first requests went to both replicas, as many to each as it takes at once
    assert client.replicas.served == [len(served_a), len(served_b)]  # (later ones go to whichever is free)
    assert not sleeps


def test_a_replica_that_refuses_connections_is_left_out():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once the block ends
    alive, served = echo_server("alive")
    with running(alive) as url:
        client, sleeps = backend([dead, url], backoff_s=30.0, concurrency=1, max_retries=2)
        got = client.generate(PROMPTS, DecodingConfig(max_new_tokens=4))
    assert [g.prompt.prompt_id for g in got] == [p.prompt_id for p in PROMPTS] and len(served) == len(PROMPTS)
    assert client.replicas.served == [0, len(PROMPTS)]
    assert sleeps == [30.0]  # tried once, then it sits out its backoff while the other replica serves


def test_two_real_servers_give_in_process_greedy_results(tiny_lm):
    cfg = DecodingConfig(max_new_tokens=8, batch_size=2)
    want = generate(tiny_lm, PROMPTS, cfg)
    with ExitStack() as stack:
        urls = [stack.enter_context(running(make_server(tiny_lm, "127.0.0.1", 0, model_name="tiny", batch_size=4)))
                for _ in range(2)]
        client, _ = backend(urls, tiny_lm.tokenizer, concurrency=2)
        got = client.generate(PROMPTS, cfg)
    assert [(g.key, g.completion, g.finish_reason) for g in got] == [(g.key, g.completion, g.finish_reason)
                                                                     for g in want]
    assert all(n > 0 for n in client.replicas.served) and sum(client.replicas.served) == len(PROMPTS)


def test_replica_urls_parse_and_refuse_non_http():
    assert replica_urls("http://a/v1") == ["http://a/v1/completions"]
    assert replica_urls(" http://a/v1,http://b/v1/ \n https://c/v1") == [
        "http://a/v1/completions", "http://b/v1/completions", "https://c/v1/completions"]
    for bad in ("http://a/v1, ftp://b", "", " , "):
        with pytest.raises(ConfigError, match="base_url"):
            replica_urls(bad)


def test_replica_choice_is_least_busy_then_in_turn_and_skips_down_ones():
    now = [0.0]
    r = _Replicas(["u0", "u1", "u2"], clock=lambda: now[0])
    assert [r.acquire() for _ in range(3)] == [0, 1, 2]  # all idle: in turn
    r.release(1, ok=True)
    assert r.acquire() == 1  # the least busy
    r.release(0, ok=False, down_for=5.0)
    r.release(2, ok=True)
    assert r.acquire() == 2 and r.acquire(avoid=2) == 1  # 0 is down; avoid the replica that just failed
    now[0] = 6.0
    assert r.acquire() == 0  # back up, and the least busy
    assert r.served == [0, 1, 1]
