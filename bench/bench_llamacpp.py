"""OpenAIBackend against a real llama.cpp server (llama-cpp-python) vs in-process generation, same demo model.

Needs ``llama-cpp-python[server]`` in the venv and a GGUF of the demo model (scripts/convert_demo_to_gguf.py);
see docs/llamacpp.md. Prints, for greedy decoding: how many completions match in-process
:func:`core.generation.generate.generate` exactly (text and ids), how many tokens agree before the first difference,
and wall time of both paths in the same run; then a sampled run (schema round trip only: llama.cpp's
sampler is not ours, so samples are not expected to match).

    .venv/bin/python bench/bench_llamacpp.py --gguf /work/bench_data/demo.gguf [--prompts 24] [--tokens 32]
"""
from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import DecodingConfig, ModelConfig
from core.generation.generate import generate
from core.generation.model import load_model
from core.generation.openai_backend import OpenAIBackend
from core.records import Prompt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: Path, port: int, log_path: Path) -> subprocess.Popen:
    """``python -m llama_cpp.server`` on 127.0.0.1:port; returns once /v1/models answers."""
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "512", "--n_threads", "1", "--model_alias", "demo"],
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"llama_cpp.server did not answer within 120 s; see {log_path}")


def demo_prompts(tokenizer, n: int) -> list[Prompt]:
    """Half natural prompts (text) from demo/prompts, half 40-token corpus prefixes (token ids)."""
    import zstandard

    rows = [json.loads(line) for f in ("generic", "specific")
            for line in (ROOT / f"demo/prompts/{f}.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[::max(1, len(rows) // n)][:n // 2]
    prompts = [Prompt("generic", r["id"], r["text"]) for r in rows]
    with open(ROOT / "demo/data/corpus.jsonl.zst", "rb") as fh:
        docs = [json.loads(line) for line in io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), "utf-8")]
    docs = docs[::max(1, len(docs) // (n - len(prompts)))][:n - len(prompts)]
    for i, d in enumerate(docs):
        ids = tokenizer(d["text"], add_special_tokens=False)["input_ids"][:40]
        prompts.append(Prompt("prefix", f"prefix-{i}", tokenizer.decode(ids), token_ids=tuple(ids)))
    return prompts


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--log", type=Path, default=Path("/tmp/llamacpp_server.log"))
    args = ap.parse_args()

    lm = load_model(ModelConfig(name_or_path=str(ROOT / "demo/model"), device="cpu", dtype="float32"))
    prompts = demo_prompts(lm.tokenizer, args.prompts)
    greedy = DecodingConfig(temperature=0.0, max_new_tokens=args.tokens, batch_size=8)
    t0 = time.perf_counter()
    ref = generate(lm, prompts, greedy)
    t_ref = time.perf_counter() - t0

    port = free_port()
    t0 = time.perf_counter()
    proc = start_server(args.gguf, port, args.log)
    t_start = time.perf_counter() - t0
    try:
        cfg = ModelConfig(name_or_path="demo", backend="openai", base_url=f"http://127.0.0.1:{port}/v1",
                          concurrency=1, max_retries=0, server_api="llama.cpp")
        backend = OpenAIBackend(cfg, tokenizer=lm.tokenizer)
        t0 = time.perf_counter()
        got = backend.generate(prompts, greedy)
        t_srv = time.perf_counter() - t0
        sampled = backend.generate(prompts[:4], DecodingConfig(temperature=0.8, top_p=0.95, num_samples=2,
                                                                max_new_tokens=args.tokens, seed=7))
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # the API returns text, so compare texts, and token counts on the re-tokenized text of both sides
    retok = [tuple(lm.tokenizer(r.completion, add_special_tokens=False)["input_ids"]) for r in ref]
    same_text = sum(r.completion == g.completion for r, g in zip(ref, got))
    same_ids = sum(ids == g.completion_ids for ids, g in zip(retok, got))
    agree = sum(common_prefix(ids, g.completion_ids) for ids, g in zip(retok, got))
    total = sum(len(ids) for ids in retok)
    print(f"prompts: {len(prompts)} ({sum(p.token_ids is not None for p in prompts)} as token ids), "
          f"max_new_tokens {args.tokens}, greedy")
    print(f"exact text match: {same_text}/{len(prompts)}; exact ids match: {same_ids}/{len(prompts)}; "
          f"tokens agreeing before the first difference (re-tokenized text): {agree}/{total}")
    for r, g in zip(ref, got):
        if r.completion != g.completion:
            at = common_prefix(r.completion, g.completion)
            print(f"  differs {r.key.prompt_id} from char {at}: in-process {r.completion[at:at + 40]!r} | "
                  f"llama.cpp {g.completion[at:at + 40]!r}")
    print(f"wall: in-process {t_ref:.2f}s, llama.cpp server {t_srv:.2f}s (ratio {t_srv / t_ref:.2f}); "
          f"server start {t_start:.1f}s")
    print(f"sampled (T=0.8, top_p=0.95, 2 samples x 4 prompts): {len(sampled)} generations, "
          f"{len({g.completion for g in sampled})} distinct, finish reasons {sorted({g.finish_reason for g in sampled})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
