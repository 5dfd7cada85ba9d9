"""The reference server (core.generation.server) against hostile and careless clients (issue 10, item 6).

Every test starts the real server on a free 127.0.0.1 port with the tiny model and talks raw HTTP to it,
so malformed headers and bodies reach it byte for byte."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest

from core import cli
from core.errors import PropMeError
from core.generation.server import make_server
from core.generation.server_completions import ModelGate
from core.generation.server_requests import RequestError, ServerLimits
from tests import fixtures_model

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures


@contextmanager
def serving(lm, limits=None, batch_size=4):
    server = make_server(lm, "127.0.0.1", 0, model_name="tiny", batch_size=batch_size, limits=limits or ServerLimits())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def raw(port: int, data: bytes, timeout: float = 300) -> tuple[int, dict, dict]:
    """Send ``data`` as is; return (status, headers, JSON body) of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            assert chunk, f"connection closed without a response (got {buf!r})"
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = s.recv(65536)
            assert chunk, "connection closed mid-body"
            body += chunk
    return status, headers, json.loads(body[:length])


def post(port: int, body: bytes | str, headers: dict | None = None) -> tuple[int, dict, dict]:
    body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    hdrs = {"Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(len(body)),
            **(headers or {})}
    head = "POST /v1/completions HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    return raw(port, head.encode() + b"\r\n" + body)


def ok_body(**kw) -> str:
    return json.dumps({"model": "tiny", "prompt": "The cat", "max_tokens": 4, **kw})


@pytest.fixture(scope="module")
def port(tiny_lm):
    with serving(tiny_lm, ServerLimits(socket_timeout_s=2)) as p:
        yield p


HOSTILE_BODIES = {
    "temperature NaN": '{"prompt": "The cat", "temperature": NaN}',
    "temperature Infinity": '{"prompt": "The cat", "temperature": Infinity}',
    "top_p -Infinity": '{"prompt": "The cat", "top_p": -Infinity}',
    "temperature 1e999 (inf)": '{"prompt": "The cat", "temperature": 1e999}',
    "temperature negative": ok_body(temperature=-0.5),
    "temperature a string": ok_body(temperature="hot"),
    "temperature a bool": ok_body(temperature=True),
    "repetition_penalty 0": ok_body(repetition_penalty=0),
    "repetition_penalty -2": ok_body(repetition_penalty=-2),
    "top_p 0": ok_body(top_p=0),
    "top_p 1.5": ok_body(top_p=1.5),
    "top_k -5": ok_body(top_k=-5),
    "top_k a float": ok_body(top_k=2.5),
    "n 0": ok_body(n=0, temperature=1),
    "n 1000000 max_tokens 1": ok_body(n=1000000, max_tokens=1, temperature=1),
    "n 100 x max_tokens 1000 over the cap": ok_body(n=100, max_tokens=1000, temperature=1),
    "many prompts over the cap": json.dumps({"prompt": ["a"] * 20000, "max_tokens": 4}),
    "max_tokens 0": ok_body(max_tokens=0),
    "max_tokens beyond the context": ok_body(max_tokens=500),
    "seed huge": ok_body(seed=2 ** 70),
    "seed a string": ok_body(seed="0"),
    "lone surrogate prompt": '{"prompt": "abc \\ud800 def", "max_tokens": 2}',
    "lone surrogate in a prompt list": '{"prompt": ["ok", "\\udfff"], "max_tokens": 2}',
    "empty prompt": ok_body(prompt=""),
    "empty prompt list": ok_body(prompt=[]),
    "prompt a number": ok_body(prompt=7),
    "prompt a dict": ok_body(prompt={"text": "x"}),
    "negative token id": ok_body(prompt=[1, -3]),
    "token id outside the vocabulary": ok_body(prompt=[1, 10 ** 6]),
    "bool token ids": ok_body(prompt=[True, False]),
    "mixed prompt list": ok_body(prompt=["a", [1, 2], 3]),
    "unknown field": ok_body(temprature=0.5),
    "stream": ok_body(stream=True),
    "best_of 3": ok_body(best_of=3),
    "presence_penalty": ok_body(presence_penalty=1.0),
    "model a list": ok_body(model=["tiny"]),
    "not JSON": "{prompt: 'The cat'",
    "JSON array": '["The cat"]',
    "JSON string": '"The cat"',
    "deeply nested": "[" * 100000 + "]" * 100000,
    "huge integer literal": '{"prompt": "x", "max_tokens": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
def test_hostile_bodies_get_a_json_400(port, case):
    status, headers, body = post(port, HOSTILE_BODIES[case])
    assert status == 400, body
    assert headers["content-type"] == "application/json"
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]
    # the server is still there and still right
    status, _, good = post(port, ok_body(temperature=0))
    assert status == 200 and len(good["choices"]) == 1


def test_a_non_utf8_body_gets_a_json_400(port):
    status, _, body = post(port, b'{"prompt": "\xff\xfe\xfa"}')
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("case, length", [
    ("Content-Length abc", "abc"), ("Content-Length negative", "-5"), ("Content-Length 1.5", "1.5"),
    ("Content-Length arabic digits", "\u0663"), ("Content-Length missing", None), ("Content-Length 0", "0"),
    ("oversized body (1 GB announced)", str(10 ** 9)), ("Content-Length 40 digits", "9" * 40),
])
def test_bad_content_length_gets_a_json_400(port, case, length):
    body = ok_body().encode()
    head = ("POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + (f"Content-Length: {length}\r\n" if length else "")
            + "\r\n").encode("utf-8")
    status, headers, reply = raw(port, head + body)
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    assert headers.get("connection") == "close"  # the unread body is not taken for a next request


def test_chunked_and_short_bodies_get_a_json_400(port):
    status, _, reply = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\n0\r\n\r\n")
    assert status == 400 and "Content-Length" in reply["error"]["message"]
    # announces 100 bytes, sends 10, then waits: answered when the socket timeout (2 s here) passes
    status, _, reply = raw(port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"


def test_http_level_errors_are_json_too(port):
    status, _, reply = raw(port, b"GET /v1 /models HTTP/1.1\r\n\r\n")
    assert status == 400 and reply["error"]["type"] == "invalid_request_error"
    status, _, reply = raw(port, b"GET /v1/models HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
    assert status == 431 and reply["error"]["type"] == "invalid_request_error"  # too many headers
    status, _, reply = raw(port, b"PUT /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 501 and reply["error"]["message"]
    status, _, reply = raw(port, b"POST /v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 404 and reply["error"]["code"] == "not_found"


def test_valid_requests_still_work_and_top_k_minus_one_is_off(port, tiny_lm):
    s1, _, a = post(port, ok_body(temperature=1.0, top_k=-1, seed=3, n=2))
    s2, _, b = post(port, ok_body(temperature=1.0, top_k=0, seed=3, n=2))
    assert s1 == s2 == 200 and [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    assert len(a["choices"]) == 2


def test_fifty_concurrent_clients_get_200_or_503_and_no_reset(tiny_lm):
    limits = ServerLimits(max_pending=3)
    results: list = []

    def client(i):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                     data=ok_body(prompt=f"The cat {i}", max_tokens=8).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                results.append((r.status, json.loads(r.read())))
        except urllib.error.HTTPError as e:
            results.append((e.code, json.loads(e.read())))
        except OSError as e:  # a reset, refused or dropped connection
            results.append(("failed", repr(e)))

    with serving(tiny_lm, limits) as port:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
    statuses = [s for s, _ in results]
    assert len(results) == 50
    assert set(statuses) <= {200, 503}, [r for r in results if r[0] not in (200, 503)]
    assert statuses.count(200) >= 3  # at least the first max_pending were served
    for status, body in results:
        if status == 503:
            assert body["error"]["code"] == "server_busy"
        else:
            assert len(body["choices"]) == 1


def test_a_full_queue_answers_503_at_once(tiny_lm):
    gate = ModelGate(ServerLimits(max_pending=2))
    gate.admit()
    gate.admit()
    with pytest.raises(RequestError) as e:
        gate.admit()
    assert e.value.status == 503 and e.value.code == "server_busy"
    gate.leave()
    gate.admit()  # a slot that frees is usable again


def test_a_request_past_its_time_limit_stops_between_batches_with_503(tiny_lm):
    with serving(tiny_lm, ServerLimits(request_timeout_s=0.01), batch_size=1) as port:
        t0 = time.monotonic()
        status, headers, body = post(port, ok_body(n=16, temperature=1.0, max_tokens=30))
        assert status == 503 and body["error"]["code"] == "timeout" and headers["retry-after"] == "1"
        assert time.monotonic() - t0 < 10


def test_a_long_request_does_not_hold_the_model_from_a_short_one(tiny_lm):
    """The long request takes the model one batch at a time; a short request that arrives meanwhile is
    answered while the long one is still generating."""
    with serving(tiny_lm, batch_size=1) as port:
        long_done: list = []
        long_body = json.dumps({"prompt": [f"The cat {i}" for i in range(24)], "max_tokens": 24})
        t = threading.Thread(target=lambda: long_done.append(post(port, long_body)))
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "the long request finished too fast for this test to mean anything"
        status, _, body = post(port, ok_body())
        short_finished_while_long_runs = t.is_alive()
        t.join(300)
    assert status == 200 and len(body["choices"]) == 1
    assert short_finished_while_long_runs
    assert long_done[0][0] == 200 and len(long_done[0][2]["choices"]) == 24


def test_serve_with_a_bad_port_is_one_clear_error(tiny_model_dir, capsys):
    t0 = time.monotonic()
    assert cli.main(["serve", "--model", str(tiny_model_dir), "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --port 99999") and "Traceback" not in err
    assert time.monotonic() - t0 < 5  # refused before the model is loaded


def test_serve_on_a_busy_port_is_one_clear_error(tiny_model_dir, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        assert cli.main(["serve", "--model", str(tiny_model_dir), "--device", "cpu", "--port", str(busy)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (model-load warnings may precede)
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot listen on 127.0.0.1:{busy}")
    assert "Traceback" not in err


def test_bad_server_limits_are_refused():
    with pytest.raises(PropMeError, match="max_pending"):
        ServerLimits(max_pending=0)
    with pytest.raises(PropMeError, match="request_timeout_s"):
        ServerLimits(request_timeout_s=float("nan"))
