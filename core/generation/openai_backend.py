"""Generation through an OpenAI-compatible ``/v1/completions`` endpoint (vLLM, llama.cpp, our own
``core.generation.server``), standard library only: ``urllib`` + a thread pool.

One request per (prompt, sample) with ``n = 1`` and that row's own seed (``core.generation.seeds.row_seed``),
so a sample does not depend on which other requests run with it, and results land in the same
:class:`Generation` records (and the same cache) as in-process generation. Whether a server honours
``seed`` is up to the server; greedy decoding (temperature 0) does not need it. ``top_k`` and
``repetition_penalty`` are not in the OpenAI schema: they are sent only when set (vLLM and
``core.generation.server`` accept them). With a tokenizer, prompts are sent as token ids (the schema allows a
list of ints), truncated to ``max_prompt_tokens`` keeping their start, and completion ids are the
tokenization of the returned text; without one, prompts without ``token_ids`` are sent as text.

``model.server_api = "llama.cpp"`` is for llama-cpp-python's server (``python -m llama_cpp.server``),
which departs from the schema in two ways (measured, docs/llamacpp.md): its ``prompt`` takes text only
(token ids get HTTP 500), and knobs left out are not off but llama.cpp's defaults (``top_k`` 40, ``min_p``
0.05, ``repeat_penalty`` 1.1, which changes even greedy output), while it silently ignores
``repetition_penalty``. So that mode sends the prompt as text (token ids decoded, after truncation) and
always sends ``top_k``, ``min_p = 0`` and ``repeat_penalty`` with this config's values.

Replicas: ``model.base_url`` may name several servers of the same model, separated by commas or
whitespace (``"http://gpu1:8000/v1, http://gpu2:8000/v1"``: e.g. one vLLM per GPU or node). Each
request goes to the replica with the fewest requests in flight (ties in turn), ``concurrency``
requests in flight per replica; a retry goes to another replica when there is one, and a replica
that refused a connection is left out for the backoff delay while others are up. Every request
carries its own row seed and results are returned in prompt order, so the replicas change where
the work runs, not what comes back.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from core.config import SERVER_APIS, DecodingConfig, ModelConfig
from core.errors import BackendError, ConfigError
from core.generation.seeds import row_seed
from core.jsonio import json_problem
from core.progress import ProgressFn, rated_event
from core.records import Generation, GenKey, Prompt

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})  # transient: retried with backoff


def replica_urls(base_url: str) -> list[str]:
    """The ``/completions`` URL of each server named in ``base_url`` (commas or whitespace between replicas).

    >>> replica_urls("http://a:8000/v1, http://b:8000/v1/")
    ['http://a:8000/v1/completions', 'http://b:8000/v1/completions']
    """
    parts = [u for u in re.split(r"[,\s]+", base_url or "") if u]
    bad = [u for u in parts if not u.startswith(("http://", "https://"))]
    if not parts or bad:
        raise ConfigError(f"model.base_url = {base_url!r}: expected one or more http(s):// URLs separated by commas, "
                          "e.g. \"http://127.0.0.1:8000/v1, http://127.0.0.1:8001/v1\"")
    return [u.rstrip("/") + "/completions" for u in parts]


class _Replicas:
    """Which replica takes the next request: the fewest in flight, ties in turn; a replica that refused a
    connection sits out until ``down_until`` while another is up. Counts what each one served."""

    def __init__(self, urls: list[str], clock: Callable[[], float] = time.monotonic):
        self.urls, self.clock = urls, clock
        self.busy, self.served, self.down_until = [0] * len(urls), [0] * len(urls), [0.0] * len(urls)
        self._next, self._lock = 0, threading.Lock()

    def acquire(self, avoid: int | None = None) -> int:
        n, now = len(self.urls), self.clock()
        with self._lock:
            up = [i for i in range(n) if self.down_until[i] <= now] or list(range(n))
            pool = [i for i in up if i != avoid] or up
            i = min(pool, key=lambda j: (self.busy[j], (j - self._next) % n))
            self.busy[i] += 1
            self._next = (i + 1) % n
            return i

    def release(self, i: int, ok: bool, down_for: float = 0.0) -> None:
        with self._lock:
            self.busy[i] -= 1
            self.served[i] += ok
            if down_for > 0:
                self.down_until[i] = self.clock() + down_for


def _reply_problem(reply) -> str | None:
    """What is wrong with a /v1/completions reply; None when it has a first choice with text."""
    if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list) or not reply["choices"]:
        return "no 'choices' list"
    first = reply["choices"][0]
    if not isinstance(first, dict) or not isinstance(first.get("text"), str):
        return "choices[0].text is not a string"
    return None


class OpenAIBackend:
    """Client for ``cfg.base_url`` (e.g. ``http://127.0.0.1:8000/v1``, or several replicas separated by
    commas) serving model ``cfg.name_or_path``."""

    def __init__(self, cfg: ModelConfig, tokenizer=None, *, timeout_s: float = 300.0, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, sleep: Callable[[float], None] = time.sleep):
        if not cfg.base_url:
            raise ConfigError("the openai backend needs model.base_url, e.g. http://127.0.0.1:8000/v1")
        if cfg.concurrency < 1 or cfg.max_retries < 0:
            raise ConfigError("model.concurrency must be >= 1 and model.max_retries >= 0")
        if cfg.server_api not in SERVER_APIS:
            raise ConfigError(f"model.server_api = {cfg.server_api!r}: expected one of {', '.join(SERVER_APIS)}")
        self.cfg, self.tokenizer = cfg, tokenizer
        self.urls = replica_urls(cfg.base_url)
        self.url = self.urls[0] if len(self.urls) == 1 else f"{len(self.urls)} replicas ({', '.join(self.urls)})"
        self.replicas = _Replicas(self.urls)
        self.api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        self.timeout_s, self.backoff_s, self.max_backoff_s, self._sleep = timeout_s, backoff_s, max_backoff_s, sleep

    # ---- one request ---------------------------------------------------------------------------
    def _prompt(self, prompt: Prompt, cfg: DecodingConfig) -> str | list[int]:
        text_only = self.cfg.server_api == "llama.cpp"
        if self.tokenizer is not None:
            from core.generation.generate import prompt_token_ids

            ids = prompt_token_ids(prompt, self.tokenizer)
            if not text_only:
                return ids[:cfg.max_prompt_tokens]
            if prompt.token_ids is None and len(ids) <= cfg.max_prompt_tokens:
                return prompt.text
            return self.tokenizer.decode(ids[:cfg.max_prompt_tokens])
        if prompt.token_ids is not None and not text_only:
            return list(prompt.token_ids[:cfg.max_prompt_tokens])
        return prompt.text

    def _payload(self, prompt: Prompt, sample_index: int, cfg: DecodingConfig) -> dict:
        body = {"model": self.cfg.name_or_path, "prompt": self._prompt(prompt, cfg), "max_tokens": cfg.max_new_tokens,
                "temperature": cfg.temperature, "top_p": cfg.top_p, "n": 1,
                "seed": row_seed(cfg.seed, prompt.prompt_id, sample_index)}
        if self.cfg.server_api == "llama.cpp":  # its defaults are not "off": send every knob
            body.update(top_k=cfg.top_k, min_p=0.0, repeat_penalty=cfg.repetition_penalty)
            return body
        if cfg.top_k:
            body["top_k"] = cfg.top_k
        if cfg.repetition_penalty != 1.0:
            body["repetition_penalty"] = cfg.repetition_penalty
        return body

    def complete(self, body: dict) -> dict:
        """POST ``body``; retries 408/409/429/5xx, connection errors and malformed replies with exponential
        backoff (``Retry-After`` honoured); raises BackendError naming the URL and the last problem."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last, url, replica = "", self.urls[0], None
        for attempt in range(self.cfg.max_retries + 1):
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
            replica = self.replicas.acquire(avoid=replica)
            url, ok, down_for = self.urls[replica], False, 0.0
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                reply, bad = json_problem(raw)  # the one JSON reader: a hostile reply is a retry, not a crash
                problem = f"not JSON ({bad})" if bad else _reply_problem(reply)
                if problem is None:
                    ok = True
                    return reply
                last = f"malformed response: {problem}"
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {e.code}: {detail}"
                if e.code not in RETRY_STATUS:
                    raise BackendError(f"{url} refused the request ({last}); check model name, base_url and "
                                       f"the API key in ${self.cfg.api_key_env}") from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = min(self.max_backoff_s, float(retry_after))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                last, down_for = f"connection error: {getattr(e, 'reason', e)}", delay
            except ValueError as e:  # json.JSONDecodeError
                last = f"malformed response: {e}"
            finally:
                self.replicas.release(replica, ok, down_for)
            if attempt < self.cfg.max_retries:
                log.warning("%s: %s; retry %d/%d in %.2fs", url, last, attempt + 1, self.cfg.max_retries, delay)
                self._sleep(delay)
        hint = ("; if this server takes text prompts only (llama-cpp-python), set model.server_api = 'llama.cpp'"
                if isinstance(body.get("prompt"), list) and self.cfg.server_api == "openai" else "")
        raise BackendError(f"{url} failed after {self.cfg.max_retries + 1} attempt(s); last: {last}{hint}")

    def _one(self, prompt: Prompt, sample_index: int, cfg: DecodingConfig) -> Generation:
        choice = self.complete(self._payload(prompt, sample_index, cfg))["choices"][0]
        text = choice["text"]
        ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if self.tokenizer is not None else ()
        reason = "eos" if choice.get("finish_reason") == "stop" else "length"
        return Generation(GenKey(prompt.setting, prompt.prompt_id, sample_index), prompt, text, ids, reason)

    # ---- many requests -------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Prompt], cfg: DecodingConfig, progress: ProgressFn | None = None, *,
                 skip: Callable[[GenKey], bool] | None = None,
                 on_batch: Callable[[list[Generation]], None] | None = None) -> list[Generation]:
        """Same contract as :func:`core.generation.generate.generate`: non-skipped generations in prompt order;
        ``on_batch`` gets every ``cfg.batch_size`` finished generations (called from this thread)."""
        rows = [(p, s) for p in prompts for s in range(cfg.num_samples)
                if skip is None or not skip(GenKey(p.setting, p.prompt_id, s))]
        results: dict[int, Generation] = {}
        pending: list[Generation] = []
        t0, tokens = time.perf_counter(), 0
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency * len(self.urls)) as pool:
            futures = {pool.submit(self._one, p, s, cfg): i for i, (p, s) in enumerate(rows)}
            todo = set(futures)
            while todo:
                done, todo = wait(todo, return_when=FIRST_COMPLETED)
                for fut in done:
                    if fut.exception() is not None:
                        for f in todo:
                            f.cancel()
                        raise fut.exception()
                    gen = results[futures[fut]] = fut.result()
                    pending.append(gen)
                    tokens += len(gen.completion_ids)
                if on_batch is not None and (len(pending) >= cfg.batch_size or not todo):
                    on_batch(pending)
                    pending = []
                if progress is not None and done:
                    elapsed = time.perf_counter() - t0
                    tok_s = f"{tokens / elapsed:.0f} tokens/s, " if elapsed > 0 and self.tokenizer is not None else ""
                    progress(rated_event("generate", len(results), len(rows), "generations", elapsed,
                                         f"{tok_s}{self.url}, {self.cfg.concurrency} in flight"
                                         f"{' per replica' if len(self.urls) > 1 else ''}"))
        if on_batch is not None and pending:
            on_batch(pending)
        return [results[i] for i in range(len(rows))]


# -- the backend interface (core.generation.backends) ---------------------------------------------------
def identity(cfg: ModelConfig) -> str:
    """The served model's identity for cache keys: the server and the name it serves."""
    return f"openai:{cfg.base_url}:{cfg.name_or_path}"


def start(cfg: ModelConfig, tokenizer=None, progress: ProgressFn | None = None) -> OpenAIBackend:
    """A client of ``cfg.base_url`` (nothing to load)."""
    return OpenAIBackend(cfg, tokenizer=tokenizer)
