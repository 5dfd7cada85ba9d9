"""Index-build throughput: a >= 100M-token index from text generated on this machine.

Corpus: see bench/make_bench_corpus.py (Python stdlib source, tokenized with a BPE trained on it,
then spliced into documents with a fixed seed). Measured in one run:

1. tokenization throughput of the real stdlib text (HF fast tokenizer, batched);
2. a baseline build of ``--baseline-tokens`` (10M) pre-tokenized tokens;
3. the full build of ``--tokens`` (100M) into ``--out``; ratio = time per token vs the baseline;
4. peak RSS of this process and of the largest rust_indexing child (getrusage);
5. a few spot checks of counts against numpy, and the latency of longest_matches on 256 tokens.

    python bench/bench_index_build.py --out /work/bench_data/index_100m

Sharded curve (``--curve``): the corpus of the largest size is generated once as a token file
(``make_bench_corpus.write_token_file``; reused, and not part of any build time), then sharded builds
(core/index/sharded.py, independent shards side by side within ``--memory-mb``) of each size, e.g.
10M -> 100M -> 1B, read it block by block: build time per token (ratio against the first, smallest
size, and with ``--rust-baseline`` against that size built with rust_indexing's sort), peak RSS of the
process tree, size on disk, and tracing 100 completions x 256 tokens against each (every core vs
one worker, identical results). Indexes are deleted after their row unless ``--keep``.

    python bench/bench_index_build.py --curve 1e7,1e8,1e9 --out /work/bench-data/curve --memory-mb 4096 --rust-baseline
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.make_bench_corpus import spliced_docs, stdlib_texts, tokenize_all, train_bench_tokenizer
from core.index.build import build_index_from_ids
from core.index.tokenizer import tokenizer_fingerprint, tokenizer_identity


def _build(stream, num_tokens, out: Path, tok, seed: int, cpus: int, memory_mb: int):
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    index = build_index_from_ids(spliced_docs(stream, num_tokens, seed), out, vocab_size=len(tok),
                                 eos_token_id=tok.eos_token_id, tokenizer_name=tokenizer_identity(tok),
                                 tokenizer_fingerprint=tokenizer_fingerprint(tok),
                                 corpus_fingerprint=f"make_bench_corpus:stdlib:seed={seed}:tokens={num_tokens}",
                                 cpus=cpus, max_memory_bytes=memory_mb << 20)
    return index, time.perf_counter() - t0


def _rss_mb(who) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


class TreeRss:
    """Samples the summed RSS of this process and its live descendants (Linux /proc) every 0.1 s.

    getrusage(RUSAGE_CHILDREN) reports only the largest single child, and a forked child's maximum
    includes the parent's pages before exec, so the sum of the live tree is the honest peak.
    """

    def __init__(self):
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self, pid: int) -> list[int]:
        out = [pid]
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            for child in task.read_text().split():
                out.extend(self._tree(int(child)))
        return out

    def _rss_kb(self, pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            total = 0
            for pid in self._tree(os.getpid()):
                try:
                    total += self._rss_kb(pid)
                except (FileNotFoundError, ProcessLookupError):
                    continue  # the process ended between listing and reading: it holds no memory now
            self.peak_kb = max(self.peak_kb, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _sharded_build(n: int, out: Path, corpus: Path, tok, args, rust: bool = False) -> tuple:
    """Build a sharded index of the first ``n`` corpus tokens; (index, seconds, peak RSS of the tree in MB)."""
    from bench.make_bench_corpus import read_token_file
    from core.index import sais
    from core.index.sharded import build_sharded_index_from_ids

    shutil.rmtree(out, ignore_errors=True)
    usable = sais.usable
    if rust:  # the previous sort (infini-gram's rust_indexing), planned for its own memory use
        sais.usable = lambda *a: False
    try:
        with TreeRss() as tree:
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            index = build_sharded_index_from_ids(
                read_token_file(corpus, n), out, vocab_size=len(tok), eos_token_id=tok.eos_token_id,
                tokenizer_name=tokenizer_identity(tok), tokenizer_fingerprint=tokenizer_fingerprint(tok),
                corpus_fingerprint=f"make_bench_corpus:write_token_file:seed={args.seed}:tokens={n}",
                parallel=args.cpus, max_memory_bytes=args.memory_mb << 20)
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
    finally:
        sais.usable = usable
    return index, seconds, tree.peak_kb / 1024, cpu


def _cpu_seconds() -> float:
    """CPU seconds of this process (all its threads) and of its ended children (rust_indexing)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def curve(args, tok, stream) -> None:
    from bench.bench_trace import make_completions, time_workers
    from bench.make_bench_corpus import write_token_file
    from core.records import GenKey
    from core.tracing import parallel
    from core.tracing.trace import tokenize

    sizes = [int(float(x)) for x in args.curve.split(",")]
    corpus = args.out / "corpus"
    t0 = time.perf_counter()
    write_token_file(stream, max(sizes), corpus, seed=args.seed)
    print(f"corpus: {max(sizes) / 1e6:.0f} M tokens of spliced stdlib token slices in {corpus} "
          f"({time.perf_counter() - t0:.1f} s, reused when present; not part of any build time); {_load()}", flush=True)
    base = None
    print(f"sharded builds, memory budget {args.memory_mb} MB, {args.cpus} sorts at a time; {_load()}")
    if args.rust_baseline:
        n = sizes[0]
        load0 = _load()
        index, t_rust, peak, cpu = _sharded_build(n, args.out / "rust_baseline", corpus, tok, args, rust=True)
        print(f"baseline, rust_indexing sort: {index.num_tokens / 1e6:8.1f} M tokens, {len(index.dirs)} shards: "
              f"build {t_rust:.1f} s ({cpu:.1f} s CPU; {t_rust / index.num_tokens * 1e9:.1f} s per G token), "
              f"peak RSS {peak:.0f} MB; "
              f"{load0} -> {_load()}", flush=True)
        base_rust = t_rust / index.num_tokens
        del index
        shutil.rmtree(args.out / "rust_baseline")
    for n in sizes:
        out = args.out / f"sharded_{n}"
        load0 = _load()
        index, t_build, peak, cpu = _sharded_build(n, out, corpus, tok, args)
        per_tok = t_build / index.num_tokens
        base = base or per_tok
        disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        vs_rust = f", x{base_rust / per_tok:.2f} faster per token than the rust_indexing baseline" \
            if args.rust_baseline else ""
        print(f"{index.num_tokens / 1e6:8.1f} M tokens, {len(index.dirs)} shards: build {t_build:7.1f} s "
              f"({cpu:.1f} s CPU) "
              f"({per_tok * 1e9:.1f} s per G token, x{per_tok / base:.2f} the first size's time per token{vs_rust}), "
              f"peak RSS of the process tree {peak:.0f} MB, {disk / 1e9:.2f} GB on disk; "
              f"{load0} -> {_load()}", flush=True)
        load0 = _load()
        comps = make_completions(index, tok, 100, 256, args.seed)
        items = [(GenKey("bench", str(i)), c) for i, c in enumerate(comps)]
        other = [(GenKey("warm", str(i)), c) for i, c in enumerate(make_completions(index, tok, 100, 256, args.seed + 1))]
        w = time_workers(index, tok, items, other, parallel.resolve_workers(0))
        toks = [ids for ids, _ in tokenize(tok, comps)]
        t0 = time.perf_counter()
        index.longest_matches_many(toks)
        t_spans = time.perf_counter() - t0
        print(f"          trace 100 x 256: {w['par']:.2f} s on {parallel.resolve_workers(0)} workers "
              f"({w['cpu_par']:.2f} s CPU), {w['one']:.2f} s on one ({w['cpu_one']:.2f} s CPU; "
              f"{w['one'] / w['par']:.2f}x; identical), span finding {t_spans:.2f} s; "
              f"{load0} -> {_load()}", flush=True)
        parallel.shutdown()
        del index
        if not args.keep:
            shutil.rmtree(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=100_000_000)
    ap.add_argument("--baseline-tokens", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=Path("/work/bench_data/index_100m"))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-mb", type=int, default=2048,
                    help="RAM budget of the suffix-array step (below ~10x the text size: parts + a slow merge)")
    ap.add_argument("--curve", help="sharded builds of these sizes, e.g. 1e7,1e8,1e9 (see above)")
    ap.add_argument("--keep", action="store_true", help="--curve: keep the indexes")
    ap.add_argument("--rust-baseline", action="store_true",
                    help="--curve: first build the smallest size with rust_indexing's sort (the previous engine)")
    args = ap.parse_args()

    src = stdlib_texts()
    t0 = time.perf_counter()
    tok = train_bench_tokenizer(src.texts)
    t_train = time.perf_counter() - t0
    stream, t_tok = tokenize_all(tok, src.texts)
    tok_folder = args.out.parent / (args.out.name + "_tokenizer")
    tok.save_pretrained(str(tok_folder))
    tok.name_or_path = str(tok_folder)  # recorded as the index's tokenizer name
    print(f"source: {src.files} stdlib files, {src.chars / 1e6:.1f} M chars; BPE vocab {len(tok)} trained in {t_train:.1f} s")
    print(f"tokenize: {len(stream) / 1e6:.2f} M tokens in {t_tok:.1f} s = {len(stream) / t_tok / 1e6:.2f} M tokens/s")
    if args.curve:
        del src
        curve(args, tok, stream)
        return

    base_dir = args.out.parent / (args.out.name + "_baseline")
    base, t_base = _build(stream, args.baseline_tokens, base_dir, tok, args.seed, args.cpus, args.memory_mb)
    print(f"baseline build: {base.num_tokens / 1e6:.1f} M tokens in {t_base:.1f} s = "
          f"{base.num_tokens / t_base / 1e6:.2f} M tokens/s  {base.manifest['build_seconds']}")
    shutil.rmtree(base_dir)

    del src
    with TreeRss() as tree:
        index, t_full = _build(stream, args.tokens, args.out, tok, args.seed, args.cpus, args.memory_mb)
    ratio = (t_full / index.num_tokens) / (t_base / base.num_tokens)
    print(f"full build: {index.num_tokens / 1e6:.1f} M tokens, {index.num_docs} docs in {t_full:.1f} s = "
          f"{index.num_tokens / t_full / 1e6:.2f} M tokens/s  {index.manifest['build_seconds']}")
    print(f"time per token vs the {args.baseline_tokens / 1e6:.0f} M baseline: x{ratio:.2f} (1.0 = linear scaling)")
    print(f"peak RSS during the full build (this process + live children, sampled): {tree.peak_kb / 1024:.0f} MB; "
          f"getrusage: self {_rss_mb(resource.RUSAGE_SELF):.0f} MB, largest child "
          f"{_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB")
    print(f"index: {args.out} ({sum(p.stat().st_size for p in args.out.iterdir()) / 1e6:.0f} MB), "
          f"tokenizer: {tok_folder}, fingerprint {index.fingerprint[:16]}")

    rng = np.random.default_rng(1)
    doc = np.asarray(index.doc_tokens(int(rng.integers(index.num_docs))))
    for n in (1, 3, 8, 32):
        q = doc[:n].tolist()
        assert index.count(q) >= 1, q
    t0 = time.perf_counter()
    query = doc[:128].tolist() + stream[:128].tolist()
    spans = index.longest_matches(query)
    print(f"longest_matches on {len(query)} tokens: {(time.perf_counter() - t0) * 1e3:.1f} ms, "
          f"max span {max(spans)}")


if __name__ == "__main__":
    main()
