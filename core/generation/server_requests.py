"""What one client may ask of the reference server (core.generation.server): the limits, and the
parsing and validation of a ``/v1/completions`` request body into prompts and a DecodingConfig.

Every field is checked (types, finite numbers, ranges; unknown fields refused); any bad input is a
:class:`RequestError`, which the server answers with a JSON 400 (or the error's own status).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core.config import DecodingConfig
from core.errors import PropMeError
from core.generation.model import LoadedModel, context_length
from core.records import Prompt

UNSUPPORTED = ("stream", "logprobs", "echo", "stop", "suffix", "logit_bias")
ZERO_ONLY = ("presence_penalty", "frequency_penalty")  # accepted only at their "off" value
KNOWN = frozenset({"model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "seed", "best_of",
                   "repetition_penalty", "user", *UNSUPPORTED, *ZERO_ONLY})
MAX_N = 128  # samples per prompt (the OpenAI API's own limit)
MAX_SEED = 2 ** 63


@dataclass(frozen=True)
class ServerLimits:
    """Bounds on what one client can make the server do."""

    max_body_bytes: int = 4 << 20  # request body size
    max_request_tokens: int = 1 << 16  # prompts x n x max_tokens per request
    max_pending: int = 16  # requests generating or waiting for the model; more get 503
    request_timeout_s: float = 300.0  # a request still generating after this is stopped (503)
    socket_timeout_s: float = 30.0  # a client silent this long mid-request is dropped
    max_connections: int = 256  # open connections; more get a 503 and are closed
    max_connections_per_client: int = 32  # open connections from one client address; more get a 503
    header_timeout_s: float = 15.0  # request line + headers must arrive within this (slowloris), idle keep-alive too
    backlog: int = 128  # listen backlog (the socketserver default of 5 resets bursts of clients)

    def __post_init__(self):
        for name in ("max_body_bytes", "max_request_tokens", "max_pending", "max_connections",
                     "max_connections_per_client", "backlog"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise PropMeError(f"server limit {name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("request_timeout_s", "socket_timeout_s", "header_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise PropMeError(f"server limit {name} must be a number of seconds > 0, got {value!r}")


class RequestError(Exception):
    """A client error (or an overload): answered with an OpenAI-style error body and ``status``."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error", close: bool = False):
        super().__init__(message)
        self.status, self.code, self.close = status, code, close


# -- request validation ------------------------------------------------------------------------------
def _text_prompt(i: int, p: str) -> Prompt:
    if not p:
        raise RequestError(f"prompt[{i}] is an empty string")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"prompt[{i}] is not valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    return Prompt("served", f"p{i}", p)


def _is_ids(p: Any) -> bool:
    return isinstance(p, list) and bool(p) and all(isinstance(t, int) and not isinstance(t, bool) for t in p)


def prompts_from_request(raw: Any) -> list[Prompt]:
    """The schema's prompt forms: a string, a list of ints, a list of strings, a list of int lists."""
    def one(i: int, p: Any) -> Prompt:
        if isinstance(p, str):
            return _text_prompt(i, p)
        if _is_ids(p):
            if not all(0 <= t < 1 << 40 for t in p):
                raise RequestError(f"prompt[{i}] holds a negative or huge token id")
            return Prompt("served", f"p{i}", "", token_ids=tuple(p))
        raise RequestError(f"prompt[{i}] must be a non-empty string or a non-empty list of token ids")

    if isinstance(raw, str) or _is_ids(raw):
        return [one(0, raw)]
    if isinstance(raw, list) and raw:
        return [one(i, p) for i, p in enumerate(raw)]
    raise RequestError("'prompt' must be a non-empty string, a list of token ids, or a non-empty list of those")


def _number(body: dict, name: str, default, kind=float, ok=lambda v: True, rule: str = ""):
    """``body[name]`` (``default`` when absent or null) checked to be a finite number of ``kind`` with ``ok``."""
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(f"'{name}' must be a finite number, got {value!r}")
    if not ok(value):
        raise RequestError(f"'{name}' must be {rule}, got {value!r}")
    return kind(value)


def decoding_from_request(body: dict, n_prompts: int, lm: LoadedModel, batch_size: int,
                          limits: ServerLimits) -> DecodingConfig:
    """Check every decoding field of a request body and build the DecodingConfig (RequestError when bad)."""
    unknown = sorted(str(k) for k in set(body) - KNOWN)
    if unknown:
        raise RequestError(f"unknown field(s) {unknown}; this server accepts {sorted(KNOWN)}")
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, [], "", {}):
            raise RequestError(f"'{name}' is not supported by this reference server")
    for name in ZERO_ONLY:
        _number(body, name, 0.0, ok=lambda v: v == 0, rule="0 (not supported by this reference server)")
    if body.get("user") is not None and not isinstance(body.get("user"), str):
        raise RequestError(f"'user' must be a string, got {body.get('user')!r}")
    _number(body, "best_of", 1, int, lambda v: v == 1, "1 (best_of > 1 is not supported by this reference server)")
    temperature = _number(body, "temperature", 1.0, ok=lambda v: v >= 0, rule=">= 0")
    top_p = _number(body, "top_p", 1.0, ok=lambda v: 0 < v <= 1, rule="in (0, 1]")
    top_k = _number(body, "top_k", 0, int, lambda v: v >= -1, ">= 0 (0 or -1: off)")
    penalty = _number(body, "repetition_penalty", 1.0, ok=lambda v: v > 0, rule="> 0 (1.0: off)")
    n = _number(body, "n", 1, int, lambda v: 1 <= v <= MAX_N, f"in [1, {MAX_N}]")
    max_tokens = _number(body, "max_tokens", 16, int, lambda v: v >= 1, ">= 1")
    seed = _number(body, "seed", 0, int, lambda v: -MAX_SEED < v < MAX_SEED, "a 64-bit integer")
    asked = n_prompts * n * max_tokens
    if asked > limits.max_request_tokens:
        raise RequestError(f"this request asks for up to {asked} new tokens (prompts {n_prompts} x n {n} x max_tokens "
                           f"{max_tokens}); the limit per request is {limits.max_request_tokens}: lower n or "
                           "max_tokens, or split the request")
    if temperature == 0 and n > 1:
        raise RequestError("greedy decoding (temperature 0) gives identical samples: use n = 1 or a temperature > 0")
    try:
        return DecodingConfig(temperature=temperature, top_p=top_p, top_k=max(0, top_k), repetition_penalty=penalty,
                              num_samples=n, max_new_tokens=max_tokens,
                              max_prompt_tokens=context_length(lm.model) or 1 << 30, batch_size=batch_size, seed=seed)
    except PropMeError as e:
        raise RequestError(str(e)) from None


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_body(raw: bytes) -> dict:
    """A request body as a JSON object (RequestError: not JSON, NaN/Infinity, too deeply nested, not an object)."""
    try:
        body = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise RequestError(f"request body is not JSON: {reason}") from None
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    return body
