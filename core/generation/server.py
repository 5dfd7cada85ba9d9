"""Our own small OpenAI-compatible reference server: any local Hugging Face model, served through
:func:`core.generation.generate.generate` (``python -m core serve --model PATH --port N``).

It implements ``POST /v1/completions`` and ``GET /v1/models`` of the documented OpenAI schema (no
streaming, logprobs, echo, stop sequences or best_of: those get a 400). It is a reference and test
server for the ``openai`` backend, not a production engine. For throughput on GPUs use a real engine
such as vLLM, which speaks the same API. Binds 127.0.0.1 unless ``--host`` says otherwise.

Extensions accepted as vLLM does: ``top_k`` (0 or -1: off) and ``repetition_penalty``. ``seed``
defaults to 0, so a request without one is still reproducible. finish_reason is ``stop`` at eos,
else ``length``.

Hostile or careless clients (see :class:`ServerLimits`):

* Every field is validated (types, finite numbers, ranges; unknown fields refused) and any bad input,
  including a missing or malformed ``Content-Length``, a body that is not JSON (``NaN`` too), too
  large or too deep, is answered with a JSON 400 ``{"error": {"message", "type", "code"}}``.
* One request asks for at most ``max_request_tokens`` = prompts x n x max_tokens new tokens.
* At most ``max_pending`` requests wait for or use the model; more are answered 503 with
  ``Retry-After`` at once. The model is taken for one batch of ``batch_size`` (prompt, sample) rows at
  a time, so requests interleave; a request past ``request_timeout_s`` stops between batches with a 503.
* Sockets time out after ``socket_timeout_s``; the listen backlog is 128.
* The request line and headers must all arrive within ``header_timeout_s`` (a slowloris client sending a
  byte now and then is cut there; an idle keep-alive connection too), and one client address holds at
  most ``max_connections_per_client`` connections, so one client cannot fill ``max_connections``.
* A client that hung up is noticed between batches (and while its request waits for the model): its
  remaining work is dropped, so it holds up nobody (:mod:`core.generation.server_completions`).
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.config import ModelConfig
from core.errors import PropMeError
from core.generation.model import LoadedModel
from core.generation.server_completions import CLIENT_GONE, ModelGate, completion_response, peer_open
from core.generation.server_requests import RequestError, ServerLimits, parse_body

log = logging.getLogger(__name__)

# -- HTTP ----------------------------------------------------------------------------------------------
def _error_body(status: int, message: str, code: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json.dumps({"error": {"message": message, "type": kind, "code": code}}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = ServerLimits.backlog  # replaced per server in make_server (read at bind time)
    limits = ServerLimits()

    def __init__(self, address, handler, limits: ServerLimits):
        self.limits, self.request_queue_size = limits, limits.backlog
        self._connections = threading.BoundedSemaphore(limits.max_connections)
        self._per_client: dict[str, int] = {}
        self._per_client_lock = threading.Lock()
        super().__init__(address, handler)

    def _take(self, client_address) -> str | None:
        """Take a connection slot for this client; the reason it is refused, or None."""
        host = str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)
        with self._per_client_lock:
            if self._per_client.get(host, 0) >= self.limits.max_connections_per_client:
                return f"too many open connections from {host} (at most {self.limits.max_connections_per_client})"
            if not self._connections.acquire(blocking=False):
                return "too many open connections"
            self._per_client[host] = self._per_client.get(host, 0) + 1
        return None

    def _give(self, client_address) -> None:
        host = str(client_address[0]) if isinstance(client_address, tuple) else str(client_address)
        with self._per_client_lock:
            left = self._per_client.get(host, 1) - 1
            if left > 0:
                self._per_client[host] = left
            else:
                self._per_client.pop(host, None)
            self._connections.release()

    def process_request(self, request, client_address):
        refused = self._take(client_address)
        if refused:  # a short 503, then close
            body = _error_body(503, f"server busy: {refused}; retry shortly", "server_busy")
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                                + b"\r\n\r\n" + body)
            except OSError:
                pass  # the client is gone: nothing to tell it
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give(client_address)


class _DeadlineReader(io.RawIOBase):
    """The handler's socket reads, each given at most what is left of the header deadline (then
    ``socket_timeout_s``): a header byte every few seconds no longer keeps a connection open for ever."""

    def __init__(self, handler):
        self.handler, self.sock = handler, handler.connection

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        limit = self.handler.timeout
        deadline = self.handler.header_deadline
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request line and headers not received within the server's "
                                   f"{self.handler.server.limits.header_timeout_s:g} s")
            limit = min(limit, left)
        self.sock.settimeout(limit)
        return self.sock.recv_into(buf)


def make_server(lm: LoadedModel, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                batch_size: int = 16, limits: ServerLimits = ServerLimits()) -> ThreadingHTTPServer:
    """A ready (not yet serving) server; ``port=0`` picks a free port (``server.server_address``)."""
    name = model_name or lm.config.name_or_path
    gate = ModelGate(limits)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = limits.socket_timeout_s  # applied to the socket: a stalled client cannot hold a thread forever
        header_deadline: float | None = None  # monotonic time by which the request line and headers must be in

        def setup(self) -> None:
            super().setup()
            self.rfile = io.BufferedReader(_DeadlineReader(self), 65536)

        def handle_one_request(self) -> None:
            self.header_deadline = time.monotonic() + limits.header_timeout_s
            super().handle_one_request()

        def parse_request(self) -> bool:
            ok = super().parse_request()  # reads the headers
            self.header_deadline = None  # the body has socket_timeout_s per read (and a bounded size)
            self.connection.settimeout(self.timeout)  # and so has writing the answer
            return ok

        def _send(self, status: int, data: bytes, close: bool = False, retry_after: bool = False) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after:
                    self.send_header("Retry-After", "1")
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # the client hung up before the answer: nothing left to tell it
                self.close_connection = True

        def _error(self, e: RequestError) -> None:
            self._send(e.status, _error_body(e.status, str(e), e.code), close=e.close, retry_after=e.status == 503)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own errors (bad request line, unsupported method, long headers) as JSON too."""
            text = message or self.responses.get(code, ("error",))[0]
            self._send(code, _error_body(code, f"{text}{f': {explain}' if explain else ''}",
                                         "invalid_request_error" if code < 500 else "server_error"), close=True)

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._error(RequestError(f"no route GET {self.path[:200]}", 404, "not_found"))
            data = json.dumps({"object": "list", "data": [
                {"id": name, "object": "model", "created": int(time.time()), "owned_by": "propme"}]}).encode()
            self._send(200, data)

        def _body(self) -> dict:
            if self.headers.get("Transfer-Encoding"):
                raise RequestError("chunked request bodies are not supported: send Content-Length", close=True)
            raw_length = (self.headers.get("Content-Length") or "").strip()
            if not re.fullmatch(r"[0-9]{1,15}", raw_length):
                raise RequestError(f"Content-Length must be a number of bytes, got {raw_length[:40]!r}", close=True)
            length = int(raw_length)
            if not 0 < length <= limits.max_body_bytes:
                raise RequestError(f"request body must be 1..{limits.max_body_bytes} bytes of JSON, got {length}",
                                   close=True)
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise RequestError(f"request body not received within {limits.socket_timeout_s:g} s",
                                   close=True) from None
            if len(raw) < length:
                raise RequestError("request body is shorter than its Content-Length", close=True)
            return parse_body(raw)

        def do_POST(self) -> None:
            try:
                if self.path.rstrip("/") != "/v1/completions":
                    raise RequestError(f"no route POST {self.path[:200]}", 404, "not_found", close=True)
                reply = completion_response(lm, self._body(), name, batch_size, limits, gate,
                                            alive=lambda: peer_open(self.connection))
            except RequestError as e:
                if e.code == CLIENT_GONE:  # nobody to answer
                    self.close_connection = True
                    return None
                return self._error(e)
            except Exception:  # a bug, not the client's fault: answer 500 and keep serving
                log.exception("request failed")
                return self._error(RequestError("internal server error (see the server log)", 500,
                                                "server_error", close=True))
            self._send(200, json.dumps(reply).encode())

        def log_message(self, fmt: str, *args) -> None:
            log.info("%s %s", self.address_string(), fmt % args)

    return _Server((host, port), Handler, limits)


def _port(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text.strip()) or int(text) > 65535:
        raise PropMeError(f"--port {text}: a TCP port is a number from 0 to 65535 (0: any free port)")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """``serve --model PATH [--port 8000] [--host 127.0.0.1] [--name NAME] [--device auto] [--dtype auto]``."""
    from core.generation.model import load_model

    d = ServerLimits()
    ap = argparse.ArgumentParser(prog="python -m core serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="local model folder (or hub id, if cached)")
    ap.add_argument("--revision", default=None, help="hub revision")
    ap.add_argument("--port", default="8000", help="TCP port (default 8000)")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    ap.add_argument("--name", default=None, help="model name clients send (default: --model as given)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    ap.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 | float16")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per forward batch")
    ap.add_argument("--max-pending", type=int, default=d.max_pending,
                    help=f"requests generating or queued; more get 503 (default {d.max_pending})")
    ap.add_argument("--request-timeout", type=float, default=d.request_timeout_s,
                    help=f"seconds one request may take; then 503 (default {d.request_timeout_s:g})")
    ap.add_argument("--max-request-tokens", type=int, default=d.max_request_tokens,
                    help=f"prompts x n x max_tokens allowed per request (default {d.max_request_tokens})")
    ap.add_argument("--header-timeout", type=float, default=d.header_timeout_s,
                    help=f"seconds a client has for its request line and headers (default {d.header_timeout_s:g})")
    ap.add_argument("--max-connections-per-client", type=int, default=d.max_connections_per_client,
                    help=f"open connections one client address may hold (default {d.max_connections_per_client})")
    ap.add_argument("--trust-remote-code", action="store_true", help="run code from the model folder")
    args = ap.parse_args(argv)
    port = _port(args.port)  # checked before the (slow) model load
    if args.batch_size < 1:
        raise PropMeError(f"--batch-size must be at least 1, got {args.batch_size}")
    limits = ServerLimits(max_pending=args.max_pending, request_timeout_s=args.request_timeout,
                          max_request_tokens=args.max_request_tokens, header_timeout_s=args.header_timeout,
                          max_connections_per_client=args.max_connections_per_client)
    lm = load_model(ModelConfig(args.model, revision=args.revision, device=args.device, dtype=args.dtype,
                                trust_remote_code=args.trust_remote_code))
    try:
        server = make_server(lm, args.host, port, args.name, args.batch_size, limits)
    except (OSError, OverflowError) as e:
        raise PropMeError(f"cannot listen on {args.host}:{port}: {getattr(e, 'strerror', None) or e}; "
                          "pick another --port or --host") from None
    host, port = server.server_address[:2]
    shown = repr(args.name or args.model)  # control and bidi characters escaped: a name cannot rewrite the terminal
    log.warning("serving %s (%s, %s) at http://%s:%d/v1", shown, lm.device, lm.dtype, host, port)
    print(f"serving {shown} at http://{host}:{port}/v1  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
