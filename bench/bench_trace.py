"""Tracing throughput: trace_many vs a naive per-start loop, on the same completions and index.

Completions (seeded): half are planted copies (a random window of an indexed document, decoded)
spliced with random text, half random text only, each about ``--tokens`` index tokens long.

Measured in one run, on the same warm index:

1. span finding: ``index.longest_matches`` (a vectorised suffix-array search, :mod:`core.index.sa_search`)
   vs the naive loop that grows every start one token at a time with ``index.count`` (one engine
   ``find`` per step), and vs the previous engine path (``creativity``); lengths must be identical;
2. the whole pipeline: ``trace_many`` vs ``trace_many`` on an index whose ``longest_matches`` is the
   naive loop; the final spans must be identical;
3. the split of ``trace_many`` time: tokenize + spans vs documents (windows, tiers, nv_recall);
4. every core: ``trace_many`` with ``TraceConfig(workers=N)`` (default: the cores available) vs one
   worker, in the same process, both with fresh tracing caches (:func:`time_workers`); results must
   be identical.

Wall and CPU seconds are printed with the load average: on a shared machine the CPU seconds of this
(single-threaded) process estimate an idle machine's wall time.

    python bench/bench_trace.py --index /work/bench_data/index_100m \\
        --tokenizer /work/bench_data/index_100m_tokenizer
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from core.config import TraceConfig
from core.index.corpus_index import CorpusIndex
from core.index.tokenizer import load_tokenizer
from core.records import GenKey
from core.tracing import parallel
from core.tracing.trace import tokenize, trace_many


def naive_longest(index, ids) -> list[int]:
    """Per start, extend one token at a time while the prefix still occurs (one find per step)."""
    out = []
    for s in range(len(ids)):
        n = 0
        while s + n < len(ids) and index.count(ids[s:s + n + 1]) > 0:
            n += 1
        out.append(n)
    return out


class NaiveSpans:
    """The same index, except that longest_matches is the naive per-start loop."""

    longest_matches_many = None  # trace_many then calls longest_matches once per completion

    def __init__(self, index):
        self._index = index

    def __getattr__(self, name):
        return getattr(self._index, name)

    def longest_matches(self, ids):
        return naive_longest(self._index, list(ids))


def make_completions(index, tok, n: int, n_tokens: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [tok.decode([rng.randrange(256, len(tok))]) for _ in range(2000)]
    out = []
    for i in range(n):
        noise = "".join(rng.choice(words) for _ in range(n_tokens))
        if i % 2 == 0:
            doc = rng.randrange(index.num_docs)
            toks = index.doc_tokens(doc)
            a = rng.randrange(max(1, len(toks) - n_tokens // 2))
            copy = tok.decode(toks[a:a + n_tokens // 2])
            cut = rng.randrange(len(noise) // 4)
            text = noise[:cut] + copy + noise[cut:]
        else:
            text = noise
        ids = tok(text, add_special_tokens=False)["input_ids"][:n_tokens]
        out.append(tok.decode(ids))
    return out


def time_workers(index, tok, items, other, workers: int, cfg: TraceConfig | None = None) -> dict:
    """Wall seconds of ``trace_many(items)`` on one worker and on ``workers`` processes (results
    asserted identical), both with fresh tracing caches: the pool is started and paged in on ``other``
    completions under another seed, so the workers' tracers (kept between calls of one config) start
    empty for the timed config, as the one-worker path's tracer does (made per call)."""
    from dataclasses import replace

    cfg = cfg or TraceConfig()
    one_cfg, par_cfg = replace(cfg, workers=1), replace(cfg, workers=workers)
    trace_many(index, tok, other, one_cfg)  # page in the index, unigram counts, byte table
    t0, c0 = time.perf_counter(), time.process_time()
    one = trace_many(index, tok, items, one_cfg)
    t_one, c_one = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    trace_many(index, tok, other, replace(par_cfg, seed=cfg.seed + 1))  # start the pool
    t_start = time.perf_counter() - t0
    pids = [w.proc.pid for w in parallel._POOL.workers] if parallel._POOL is not None else []
    w0 = sum(_proc_cpu(p) for p in pids)
    t0, c0 = time.perf_counter(), time.process_time()
    par = trace_many(index, tok, items, par_cfg)
    t_par = time.perf_counter() - t0
    c_par = time.process_time() - c0 + sum(_proc_cpu(p) for p in pids) - w0
    assert par == one, "parallel tracing differs from one worker"
    return {"one": t_one, "par": t_par, "start": t_start, "results": one, "cpu_one": c_one, "cpu_par": c_par}


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    _CPU.append(time.process_time() - c0)  # CPU seconds of this process (all threads), see _cpu()
    return res, time.perf_counter() - t0


_CPU: list[float] = []


def _cpu() -> str:
    return f"{_CPU[-1]:.2f} s CPU"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, default=Path("/work/bench_data/index_100m"))
    ap.add_argument("--tokenizer", default="/work/bench_data/index_100m_tokenizer")
    ap.add_argument("--n", type=int, default=100, help="completions")
    ap.add_argument("--tokens", type=int, default=256, help="index tokens per completion")
    ap.add_argument("--naive-n", type=int, default=100, help="completions for the naive baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="tracing workers for step 4 (0: every core)")
    args = ap.parse_args()

    tok = load_tokenizer(args.tokenizer)
    index = CorpusIndex.open(args.index, tokenizer=tok)
    print(f"index: {args.index} ({index.num_tokens / 1e6:.1f} M tokens, {index.num_docs} docs); {_load()}")
    comps = make_completions(index, tok, args.n, args.tokens, args.seed)
    items = [(GenKey("bench", str(i)), c) for i, c in enumerate(comps)]
    cfg = TraceConfig(workers=1)

    other = [(GenKey("warm", str(i)), c) for i, c in enumerate(make_completions(index, tok, args.n, args.tokens,
                                                                                args.seed + 1))]
    toks = [ids for ids, _ in tokenize(tok, comps)]
    print(f"completions: {len(comps)}, mean {sum(map(len, toks)) / len(toks):.0f} tokens")
    workers = parallel.resolve_workers(args.workers)
    w = time_workers(index, tok, items, other, workers)
    print(f"every core: trace_many {len(items)} x {args.tokens} with {workers} workers: {w['par']:.2f} s "
          f"({w['cpu_par']:.2f} s CPU; the pool started in {w['start']:.2f} s on other completions); one worker "
          f"{w['one']:.2f} s ({w['cpu_one']:.2f} s CPU) -> {w['one'] / w['par']:.2f}x (identical results); {_load()}")
    if args.naive_n <= 0:
        return

    fast, t_fast = _time(lambda: [index.longest_matches(ids) for ids in toks])
    m = args.naive_n
    slow, t_slow = _time(lambda: [naive_longest(index, ids) for ids in toks[:m]])
    assert fast[:m] == slow, "longest_matches differs from the naive loop"
    t_fast_m = t_fast * m / len(toks)
    print(f"span finding: longest_matches {t_fast:.2f} s for {len(toks)} (one query at a time); naive loop "
          f"{t_slow:.2f} s for {m} -> {t_slow / t_fast_m:.1f}x faster (identical lengths)")
    batched, t_batch = _time(lambda: index.longest_matches_many(toks))  # what trace_many does
    assert batched == fast, "longest_matches_many differs from longest_matches"
    print(f"  longest_matches_many (all {len(toks)} queries in one search, as trace_many does): {t_batch:.2f} s "
          f"-> {t_fast / t_batch:.1f}x the one-at-a-time search (identical lengths)")
    _eng, t_eng = _time(lambda: [index.longest_matches_engine(ids) for ids in toks[:m]])
    assert _eng == slow, "the engine (creativity) path differs from the naive loop"
    print(f"  engine creativity path (previous longest_matches): {t_eng:.2f} s for {m} "
          f"-> {t_eng / t_fast_m:.1f}x slower than longest_matches")

    traced, t_trace = _time(lambda: trace_many(index, tok, items, cfg))
    cpu_trace = _cpu()
    naive_traced, t_naive = _time(lambda: trace_many(NaiveSpans(index), tok, items[:m], cfg))
    same = all([(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
               for a, b in zip(traced, naive_traced))
    assert same, "trace_many spans differ between longest_matches and the naive loop"
    n_spans = sum(len(t.spans) for t in traced)
    n_docs = sum(len(t.docs) for t in traced)
    print(f"trace_many: {t_trace:.2f} s ({cpu_trace}) for {len(items)} ({n_spans} spans, {n_docs} documents); "
          f"naive-span trace {t_naive:.2f} s for {m} -> {t_naive / (t_trace * m / len(items)):.1f}x "
          f"(identical spans)")
    print(f"  of which span finding about {t_batch:.2f} s (every start; trace_many searches only where spans can "
          f"start), documents/tiers/nv_recall about {max(0.0, t_trace - t_batch):.2f} s")
    _nodocs, t_nodocs = _time(lambda: trace_many(index, tok, items, TraceConfig(docs_per_span=1, window_factor=1)))
    print(f"trace_many with docs_per_span=1, window_factor=1: {t_nodocs:.2f} s ({_cpu()})")
    print(_load())


if __name__ == "__main__":
    main()
