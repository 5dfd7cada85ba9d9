"""Our own small OpenAI-compatible reference server: any local Hugging Face model, served through
:func:`core.generation.generate.generate` (``python -m core serve --model PATH --port N``).

It implements ``POST /v1/completions`` and ``GET /v1/models`` of the documented OpenAI schema (no
streaming, logprobs, echo, stop sequences or best_of: those get a 400). It is a reference and test
server for the ``openai`` backend, not a production engine: requests are served one at a time
(each request's prompts and ``n`` samples are batched together). For throughput on GPUs use a real
engine such as vLLM, which speaks the same API. Binds 127.0.0.1 unless ``--host`` says otherwise.

Extensions accepted as vLLM does: ``top_k`` and ``repetition_penalty``. ``seed`` defaults to 0, so
a request without one is still reproducible. finish_reason is ``stop`` at eos, else ``length``.
"""
from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.config import DecodingConfig, ModelConfig
from core.errors import PropMeError
from core.generation.model import LoadedModel, context_length
from core.records import Prompt

log = logging.getLogger(__name__)

UNSUPPORTED = ("stream", "logprobs", "echo", "stop", "suffix")
MAX_BODY_BYTES = 16 << 20


class RequestError(Exception):
    """A client error: answered with an OpenAI-style error body and ``status``."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.code = status, code


def _prompts(raw: Any) -> list[Prompt]:
    """The schema's prompt forms: a string, a list of ints, a list of strings, a list of int lists."""
    def one(i: int, p: Any) -> Prompt:
        if isinstance(p, str):
            return Prompt("served", f"p{i}", p)
        if isinstance(p, list) and p and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return Prompt("served", f"p{i}", "", token_ids=tuple(p))
        raise RequestError(f"prompt[{i}] must be a non-empty string or list of token ids")

    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        return [one(0, raw)]
    if isinstance(raw, list) and raw:
        return [one(i, p) for i, p in enumerate(raw)]
    raise RequestError("'prompt' must be a string, a list of token ids, or a list of those")


def _number(body: dict, name: str, default, kind=float):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(f"'{name}' must be a {'integer' if kind is int else 'number'}, got {value!r}")
    return kind(value)


def completion_response(lm: LoadedModel, body: dict, model_name: str, batch_size: int) -> dict:
    """Run one /v1/completions request body through core.generation.generate and build the OpenAI reply."""
    from core.generation.generate import generate, prompt_token_ids

    if body.get("model") not in (None, model_name):
        raise RequestError(f"model {body.get('model')!r} is not served here; this server serves {model_name!r}",
                           404, "model_not_found")
    for name in UNSUPPORTED:
        if body.get(name) not in (None, False, [], ""):
            raise RequestError(f"'{name}' is not supported by this reference server")
    if _number(body, "best_of", 1, int) > 1:
        raise RequestError("'best_of' > 1 is not supported by this reference server")
    prompts = _prompts(body.get("prompt"))
    try:
        cfg = DecodingConfig(
            temperature=_number(body, "temperature", 1.0), top_p=_number(body, "top_p", 1.0),
            top_k=max(0, _number(body, "top_k", 0, int)), repetition_penalty=_number(body, "repetition_penalty", 1.0),
            num_samples=_number(body, "n", 1, int), max_new_tokens=_number(body, "max_tokens", 16, int),
            max_prompt_tokens=context_length(lm.model) or 1 << 30, batch_size=batch_size,
            seed=_number(body, "seed", 0, int))
        gens = generate(lm, prompts, cfg)
    except PropMeError as e:
        raise RequestError(str(e)) from None
    n_prompt = sum(len(prompt_token_ids(p, lm.tokenizer)) for p in prompts)  # generate() has checked them
    choices = [{"text": g.completion, "index": i, "logprobs": None,
                "finish_reason": "stop" if g.finish_reason == "eos" else "length"} for i, g in enumerate(gens)]
    n_completion = sum(len(g.completion_ids) for g in gens)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model_name, "choices": choices,
            "usage": {"prompt_tokens": n_prompt * cfg.num_samples, "completion_tokens": n_completion,
                      "total_tokens": n_prompt * cfg.num_samples + n_completion}}


def make_server(lm: LoadedModel, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                batch_size: int = 16) -> ThreadingHTTPServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (``server.server_address``)."""
    name = model_name or lm.config.name_or_path
    lock = threading.Lock()  # one generate at a time: the model is shared

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, e: RequestError) -> None:
            self._send(e.status, {"error": {"message": str(e), "type": "invalid_request_error", "code": e.code}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._error(RequestError(f"no route GET {self.path}", 404, "not_found"))
            self._send(200, {"object": "list", "data": [
                {"id": name, "object": "model", "created": int(time.time()), "owned_by": "propme"}]})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/completions":
                return self._error(RequestError(f"no route POST {self.path}", 404, "not_found"))
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY_BYTES:
                    raise RequestError(f"request body must be 1..{MAX_BODY_BYTES} bytes of JSON")
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError as e:
                    raise RequestError(f"request body is not JSON: {e}") from None
                if not isinstance(body, dict):
                    raise RequestError("request body must be a JSON object")
                with lock:
                    reply = completion_response(lm, body, name, batch_size)
            except RequestError as e:
                return self._error(e)
            self._send(200, reply)

        def log_message(self, fmt: str, *args) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    """``serve --model PATH [--port 8000] [--host 127.0.0.1] [--name NAME] [--device auto] [--dtype auto]``."""
    from core.generation.model import load_model

    ap = argparse.ArgumentParser(prog="python -m core serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="local model folder (or hub id, if cached)")
    ap.add_argument("--revision", default=None, help="hub revision")
    ap.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ap.add_argument("--name", default=None, help="model name clients send (default: --model as given)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    ap.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per forward batch")
    ap.add_argument("--trust-remote-code", action="store_true", help="run code from the model folder")
    args = ap.parse_args(argv)
    lm = load_model(ModelConfig(args.model, revision=args.revision, device=args.device, dtype=args.dtype,
                                trust_remote_code=args.trust_remote_code))
    server = make_server(lm, args.host, args.port, args.name, args.batch_size)
    host, port = server.server_address[:2]
    log.warning("serving %s (%s, %s) at http://%s:%d/v1", args.name or args.model, lm.device, lm.dtype, host, port)
    print(f"serving {args.name or args.model} at http://{host}:{port}/v1  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
