"""One /v1/completions request of the reference server (:mod:`core.generation.server`), HTTP aside:
admission and turn-taking at the one shared model (:class:`ModelGate`), noticing a client that hung up
(:func:`peer_open`), and the OpenAI reply built from :func:`core.generation.generate.generate`."""
from __future__ import annotations

import select
import socket
import threading
import time
import uuid
from collections import deque

from core.errors import PropMeError
from core.generation.model import LoadedModel
from core.generation.server_requests import (
    RequestError,
    ServerLimits,
    decoding_from_request,
    prompts_from_request,
)
from core.records import GenKey

ALIVE_CHECK_S = 0.25  # a request waiting for the model looks this often whether its client is still there
CLIENT_GONE = "client_closed"  # RequestError code: the client hung up; nothing is answered


def client_gone() -> RequestError:
    return RequestError("the client closed its connection: its remaining work is dropped", 499, CLIENT_GONE,
                        close=True)


def peer_open(sock: socket.socket) -> bool:
    """Whether the client at the other end of ``sock`` has not hung up (never blocks: a pending byte of a
    pipelined request counts as there; an orderly close or a reset as gone)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return True
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return True
    except (OSError, ValueError):
        return False


class ModelGate:
    """Admission and turn-taking for the one shared model: at most ``max_pending`` requests admitted (the
    rest get 503 at once), and the model is held for one batch at a time, taken in arrival order (a long
    request's next batch queues behind a batch another request asked for meanwhile)."""

    def __init__(self, limits: ServerLimits):
        self.limits = limits
        self._admitted = threading.BoundedSemaphore(limits.max_pending)
        self._turns = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False

    def admit(self) -> None:
        if not self._admitted.acquire(blocking=False):
            raise RequestError(f"server busy: {self.limits.max_pending} requests are already generating or waiting; "
                               "retry shortly", 503, "server_busy")

    def leave(self) -> None:
        self._admitted.release()

    def run(self, fn, deadline: float, alive=None):
        """``fn()`` while holding the model; 503 when the model does not come free before ``deadline``;
        :data:`CLIENT_GONE` as soon as ``alive()`` is False (checked while waiting too)."""
        me = object()
        with self._turns:
            self._waiting.append(me)
            try:
                while True:  # the deadline and the client are checked before every batch, waiting or not
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise RequestError(f"request stopped: not finished within the server's limit of "
                                           f"{self.limits.request_timeout_s:g} s; send fewer prompts or tokens, "
                                           "or retry", 503, "timeout")
                    if alive is not None and not alive():
                        raise client_gone()
                    if not self._busy and self._waiting[0] is me:
                        break
                    self._turns.wait(min(remaining, ALIVE_CHECK_S) if alive is not None else remaining)
            except BaseException:
                self._waiting.remove(me)
                self._turns.notify_all()
                raise
            self._waiting.popleft()
            self._busy = True
        try:
            return fn()
        finally:
            with self._turns:
                self._busy = False
                self._turns.notify_all()


def completion_response(lm: LoadedModel, body: dict, model_name: str, batch_size: int,
                        limits: ServerLimits = ServerLimits(), gate: ModelGate | None = None, alive=None) -> dict:
    """Run one /v1/completions request body through core.generation.generate and build the OpenAI reply.
    ``alive()`` False (the client hung up) drops the rest of the work before the next batch."""
    from core.generation.generate import generate, prompt_token_ids

    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError(f"'model' must be a string, got {model!r}")
    if model not in (None, model_name):
        raise RequestError(f"model {model!r} is not served here; this server serves {model_name!r}",
                           404, "model_not_found")
    prompts = prompts_from_request(body.get("prompt"))
    cfg = decoding_from_request(body, len(prompts), lm, batch_size, limits)
    gate = gate or ModelGate(limits)
    deadline = time.monotonic() + limits.request_timeout_s
    gate.admit()
    try:
        rows = [(j, GenKey(p.setting, p.prompt_id, i)) for j, p in enumerate(prompts) for i in range(cfg.num_samples)]
        keys = [k for _, k in rows]
        by_key: dict = {}
        for start in range(0, len(rows), batch_size):  # one batch per turn of the model: requests interleave
            chunk = set(keys[start:start + batch_size])
            todo = [prompts[j] for j in sorted({j for j, _ in rows[start:start + batch_size]})]
            try:
                gens = gate.run(lambda todo=todo, chunk=chunk: generate(
                    lm, todo, cfg, skip=lambda k: k not in chunk), deadline, alive)
            except PropMeError as e:
                raise RequestError(str(e)) from None
            by_key.update((g.key, g) for g in gens)
        n_prompt = sum(len(prompt_token_ids(p, lm.tokenizer)) for p in prompts)  # generate() has checked them
    finally:
        gate.leave()
    gens = [by_key[k] for k in keys]
    choices = [{"text": g.completion, "index": i, "logprobs": None,
                "finish_reason": "stop" if g.finish_reason == "eos" else "length"} for i, g in enumerate(gens)]
    n_completion = sum(len(g.completion_ids) for g in gens)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model_name, "choices": choices,
            "usage": {"prompt_tokens": n_prompt * cfg.num_samples, "completion_tokens": n_completion,
                      "total_tokens": n_prompt * cfg.num_samples + n_completion}}
