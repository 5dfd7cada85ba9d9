"""The reference server stops work nobody waits for and cannot be held open (issue 21, item 7).

Real sockets on 127.0.0.1 (and 127.0.0.2 as a second client address), the real server and tiny model."""
from __future__ import annotations

import json
import socket
import time

import pytest

import core.generation.generate as generate_module
from core.generation.server import ServerLimits
from tests import fixtures_model
from tests.test_server_hardening import ok_body, post, serving

tiny_model_dir, tiny_lm = fixtures_model.tiny_model_dir, fixtures_model.tiny_lm  # shared fixtures


def _closed_by_server(s: socket.socket, drip: bytes, every_s: float, give_up_s: float) -> float | None:
    """Send ``drip`` every ``every_s`` until the server closes the connection; seconds that took, or None."""
    t0 = time.monotonic()
    s.settimeout(every_s)
    while time.monotonic() - t0 < give_up_s:
        try:
            s.sendall(drip)
            if s.recv(1) == b"":
                return time.monotonic() - t0
        except TimeoutError:
            continue
        except OSError:  # reset / broken pipe: closed
            return time.monotonic() - t0
    return None


def test_slowloris_headers_are_cut_at_the_deadline(tiny_lm):
    limits = ServerLimits(header_timeout_s=1.0, socket_timeout_s=30)
    with serving(tiny_lm, limits) as port:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
        took = _closed_by_server(s, b"X", 0.3, give_up_s=10)  # a header byte every 0.3 s: never idle 30 s
        s.close()
        assert took is not None and took < 3.0, took
        # and a real client is served at once afterwards
        status, _, body = post(port, ok_body())
        assert status == 200 and len(body["choices"]) == 1


def test_forty_slowloris_connections_do_not_lock_out_others(tiny_lm):
    """40 connections dribbling header bytes from one address: 8 kept (the per-address cap), 32 refused
    with a 503 naming the cap, the 8 cut at the header deadline; a client from another address is served
    meanwhile, and one from the same address afterwards."""
    import select

    limits = ServerLimits(header_timeout_s=4.0, socket_timeout_s=60, max_connections=48,
                          max_connections_per_client=8)
    with serving(tiny_lm, limits) as port:
        t_open = time.monotonic()
        socks = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\n")
            socks.append(s)
        other = socket.socket()
        other.bind(("127.0.0.2", 0))
        other.settimeout(120)
        other.connect(("127.0.0.1", port))
        body = ok_body().encode()
        other.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert other.recv(12) == b"HTTP/1.1 200"
        other.close()
        outcome: dict[socket.socket, tuple[bytes, float]] = {}
        deadline = time.monotonic() + 60
        while len(outcome) < len(socks) and time.monotonic() < deadline:
            waiting = [s for s in socks if s not in outcome]
            for s in waiting:  # a header byte now and then: never idle for the socket timeout
                try:
                    s.send(b"Y")
                except OSError:
                    pass
            readable, _, _ = select.select(waiting, [], [], 0.5)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                outcome[s] = (data, time.monotonic() - t_open)
        refused = [t for d, t in outcome.values() if d.startswith(b"HTTP/1.1 503")
                   and b"too many open connections from 127.0.0.1" in d]
        cut = [t for d, t in outcome.values() if d == b""]
        assert len(outcome) == 40 and len(refused) == 32 and len(cut) == 8, (len(outcome), len(refused), len(cut))
        assert all(3.0 < t < 30 for t in cut), cut  # at the 4 s header deadline (not the 60 s socket timeout)
        for s in socks:
            s.close()
        status, _, _ = post(port, ok_body())
        assert status == 200


def test_idle_keep_alive_connections_are_closed_at_the_header_deadline(tiny_lm):
    with serving(tiny_lm, ServerLimits(header_timeout_s=1.0, socket_timeout_s=30)) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        t0 = time.monotonic()
        assert s.recv(1) == b""  # nothing sent: closed after the deadline, not the 30 s socket timeout
        assert 0.8 < time.monotonic() - t0 < 4
        s.close()


def test_the_work_of_disconnected_clients_stops(tiny_lm, monkeypatch):
    """Six clients send long requests (batch size 1: many batches each) and hang up; the server drops
    their work between batches, and a following 2-token request is answered as on an idle server."""
    batches = []
    real = generate_module.generate
    monkeypatch.setattr(generate_module, "generate", lambda *a, **k: batches.append(time.monotonic()) or real(*a, **k))
    long_body = json.dumps({"prompt": [f"The cat {i}" for i in range(24)], "max_tokens": 24}).encode()
    with serving(tiny_lm, batch_size=1) as port:
        t0 = time.monotonic()
        status, _, _ = post(port, ok_body(max_tokens=2))
        idle_latency = time.monotonic() - t0
        assert status == 200
        socks = []
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(long_body)).encode() + b"\r\n\r\n" + long_body)
            socks.append(s)
        time.sleep(1.0)
        started = len(batches)
        assert started >= 2, "the long requests never started generating"
        for s in socks:
            s.close()
        time.sleep(1.5)  # every abandoned request reaches its next check within one batch
        settled = len(batches)
        time.sleep(1.5)
        assert len(batches) == settled, "generation went on for clients that hung up"
        assert settled - started <= 6 + 1  # at most the batch each was in (and one about to start)
        t0 = time.monotonic()
        status, _, body = post(port, ok_body(max_tokens=2))
        latency = time.monotonic() - t0
        assert status == 200 and len(body["choices"]) == 1
        print(f"2-token request: {idle_latency:.3f} s idle, {latency:.3f} s after 6 clients hung up")
        assert latency < idle_latency + 1.0
    # abandoned: 6 x 24 batches were asked for; far fewer ran
    assert len(batches) - 2 < 6 * 24 // 2


def test_server_limits_have_bounds():
    from core.errors import PropMeError

    for bad in ({"header_timeout_s": 0}, {"header_timeout_s": float("inf")}, {"max_connections_per_client": 0}):
        with pytest.raises(PropMeError):
            ServerLimits(**bad)
