"""Benchmark: near-verbatim recall of one run, and re-scoring after a threshold change.

One run = 100 completions x 30 retrieved document windows: generations of 60-200 words and
windows 4x as long, cut from the words of the authors' conformance texts
(../shared/conformance/propme_release/nv_recall_cases.jsonl) when present, else from a synthetic
word stream. All strings are distinct, so no cache helps. Targets: full NVR <= 1 s; re-scoring from stored blocks <= 100 ms.

    .venv/bin/python bench/bench_nvr.py
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.tracing.nvrecall
from core.config import AdaptiveParam, NVBlocksConfig
from core.records import DocMatch, GenKey, Span, TraceResult
from core.scoring.metrics import nvr
from core.tracing.nvrecall import nv_recall, rescore

CASES = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "propme_release" / "nv_recall_cases.jsonl"
N_GEN, N_DOCS = 100, 30


def _corpus_words(rng: random.Random) -> list[str]:
    if CASES.is_file():
        cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
        texts = sorted({c["doc_text"] for c in cases} | {c["generation"] for c in cases})
        return " ".join(texts).split()
    vocab = [f"w{i}" for i in range(3000)]
    return rng.choices(vocab, k=60_000)


def _run_texts(rng: random.Random) -> list[tuple[str, list[str]]]:
    """Distinct generations (60-200 words) and windows (~4x longer) cut from the corpus words.

    Every window is a distinct string (no cache can help); 3 of 30 windows contain the generation.
    """
    words = _corpus_words(rng)
    pairs = []
    for _ in range(N_GEN):
        n = rng.randint(60, 200)
        s = rng.randrange(len(words) - n)
        gen = words[s:s + n]
        windows = []
        for j in range(N_DOCS):
            m = 4 * n
            a = rng.randrange(len(words) - m)
            win = words[a:a + m]
            if j < 3:
                win = win[: m // 3] + gen + win[m // 3 + n:]
            windows.append(" ".join(win))
        pairs.append((" ".join(gen), windows))
    return pairs


def main() -> None:
    rng = random.Random(42)
    pairs = _run_texts(rng)

    fast_matcher = core.tracing.nvrecall._FastMatcher
    core.tracing.nvrecall._FastMatcher = None  # baseline: plain difflib
    t0 = time.perf_counter()
    plain = [[nv_recall(gen, w) for w in windows] for gen, windows in pairs]
    plain_s = time.perf_counter() - t0
    core.tracing.nvrecall._FastMatcher = fast_matcher
    core.tracing.nvrecall._words.cache_clear()

    t0 = time.perf_counter()
    traces = []
    for i, (gen, windows) in enumerate(pairs):
        dm = tuple(DocMatch(j, str(j), "partial", w, 0, 0, nv_recall(gen, w)) for j, w in enumerate(windows))
        traces.append(TraceResult(GenKey("prefix", str(i)), gen, 0, (Span(0, 1, "", 0, 0, 1, dm),)))
    full = time.perf_counter() - t0
    assert [[d.nv for d in t.docs] for t in traces] == plain, "cydifflib and difflib disagree"
    value = nvr(traces)

    cfg = NVBlocksConfig(l2=AdaptiveParam(0.25, 3, 80), gap2=AdaptiveParam(0.1, 2, 15))
    t0 = time.perf_counter()
    new = rescore(traces, cfg)
    re_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    check = [nv_recall(t.completion, d.window_text, cfg) for t in traces[:10] for d in t.docs]
    assert [d.nv for t in new[:10] for d in t.docs] == check, "rescore disagrees with a full recompute"

    source = "conformance texts" if CASES.is_file() else "synthetic texts"
    print(f"NVR of one run ({N_GEN} completions x {N_DOCS} distinct windows, {source} words): {full:.3f} s (target <= 1 s); NVR = {value:.6f}")
    print(f"plain difflib baseline: {plain_s:.3f} s (matcher {'cydifflib' if fast_matcher else 'difflib'}: "
          f"{plain_s / full:.1f}x faster)")
    print(f"re-score after threshold change: {re_s * 1000:.1f} ms (target <= 100 ms); NVR = {nvr(new):.6f}")
    print(f"ratio re-score / full recompute: {re_s / full:.4f} ({full / re_s:.0f}x faster)")


if __name__ == "__main__":
    main()
