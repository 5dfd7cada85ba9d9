"""Index builds and tracing on a local Ray cluster: 1 node vs 2 nodes, against the local sharded build.

Text: Python source, one document per file (the standard library, as ``bench/make_bench_corpus.py``
reads it, then the installed packages' sources), tokenized with the demo model's tokenizer (about 0.35 tokens per character: 32 MB
of text is ~11M tokens). In one run, on this machine:

1. the local sharded build (``core.index.sharded``, ``--cpus`` sorts at once): the baseline;
2. the Ray build (``core.cluster.build``) on a local cluster of 1 node, then 2 nodes, each node
   ``--cpus-per-node`` CPUs, all bound to 127.0.0.1: seconds, tokens/s, the 1-vs-2-node ratio, and
   whether every shard file equals the baseline's byte for byte;
3. on the 2-node cluster: ``--completions`` completions (corpus slices among new words) traced with the
   local index in one process and with the cluster index (shard groups on both nodes): completions/s,
   and whether the results are identical.

    python bench/bench_ray.py --source-mb 32 --shard-tokens 2000000

Ray's start (seconds) is not in the build times. The machine may be shared: ``uptime`` is printed.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    metadata: dict = field(default_factory=dict)


def uptime() -> str:
    return subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()


def shard_files(folder: Path) -> dict[str, bytes]:
    out = {}
    for f in sorted(folder.glob("shard-*/*")):
        data = f.read_bytes()
        if f.name == "manifest.json":
            m = json.loads(data)
            m.pop("build_seconds"), m.pop("built_at")
            data = json.dumps(m, sort_keys=True).encode()
        out[str(f.relative_to(folder))] = data
    return out


def completions(docs, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "model", "wrote", "a", "new", "line", "of", "code", "here", "and", "there", "return", "value"]
    out = []
    for _ in range(n):
        d = rng.choice(docs).text
        a = rng.randrange(max(1, len(d) - 100))
        piece = d[a:a + rng.randrange(100, 1000)]
        filler = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 20)))
        out.append(rng.choice([piece, filler + " " + piece, piece + "\n" + filler]))
    return out


def source_texts(max_mb: float) -> tuple[list[str], int]:
    """Python source as documents, one per file: the standard library first (``stdlib_texts``), then the
    installed packages' sources (site-packages, sorted) until ``max_mb`` MB of text."""
    import sysconfig

    from make_bench_corpus import stdlib_texts

    src = stdlib_texts(max_mb)
    texts, total = list(src.texts), src.chars
    for path in sorted(Path(sysconfig.get_paths()["purelib"]).rglob("*.py")):
        if total >= max_mb * 1e6:
            break
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts.append(text)
        total += len(text)
    return texts, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source-mb", type=float, default=32.0)
    ap.add_argument("--shard-tokens", type=int, default=2_000_000)
    ap.add_argument("--copies", type=int, default=1, help="index the source this many times (more work per task; "
                    "each copy's documents get their own ids)")
    ap.add_argument("--cpus", type=int, default=2, help="local baseline: shards sorted at once")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--nodes", default="1,2")
    ap.add_argument("--completions", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_ray"))
    args = ap.parse_args()

    from core.cluster import connect, local_cluster
    from core.cluster.build import build_sharded_on_ray
    from core.config import TraceConfig
    from core.index.corpus_index import CorpusIndex
    from core.index.sharded import build_sharded_index
    from core.index.tokenizer import load_tokenizer
    from core.records import GenKey
    from core.tracing.trace import trace_many

    print("uptime before:", uptime(), flush=True)
    texts, chars = source_texts(args.source_mb)
    docs = [Doc(f"f{i}" + (f"-{c}" if c else ""), t, {"n": i, "copy": c})
            for c in range(max(1, args.copies)) for i, t in enumerate(texts)]
    tok = load_tokenizer(str(ROOT / "demo" / "model"))
    print(f"corpus: {len(texts)} files of Python source, {chars / 1e6:.1f} M characters"
          + (f", {args.copies} copies" if args.copies > 1 else ""), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)

    local = args.out / "local"
    t0 = time.perf_counter()
    index = build_sharded_index(docs, tok, local, shard_tokens=args.shard_tokens, parallel=args.cpus)
    t_local = time.perf_counter() - t0
    tokens = index.num_tokens
    size = sum(f.stat().st_size for f in local.glob("shard-*/*"))
    print(f"local sharded build (--cpus {args.cpus}): {t_local:.1f} s, {tokens / 1e6:.2f} M tokens, "
          f"{tokens / t_local / 1e6:.2f} M tokens/s, {len(index.dirs)} shards, {size / tokens:.2f} bytes/token on disk",
          flush=True)
    want = shard_files(local)
    results = {"tokens": tokens, "local_s": t_local, "bytes_per_token": size / tokens}
    for nodes in [int(x) for x in args.nodes.split(",")]:
        cluster = local_cluster(nodes, cpus_per_node=args.cpus_per_node, object_store_memory=600 << 20)
        ray = connect(cluster.address)
        out = args.out / f"ray{nodes}"
        t0 = time.perf_counter()
        build_sharded_on_ray(docs, tok, out, address=cluster.address, shard_tokens=args.shard_tokens,
                             open_index=False)
        secs = time.perf_counter() - t0
        same = shard_files(out) == want
        info = json.loads((out / "sharded.json").read_text())
        spread = {k[:8]: len(v["shards"]) for k, v in info["placement"]["nodes"].items()}
        results[f"ray{nodes}_s"] = secs
        print(f"Ray build, {nodes} node(s) x {args.cpus_per_node} CPU: {secs:.1f} s, {tokens / secs / 1e6:.2f} M tokens/s, "
              f"shards per node {spread}, shard files identical to the local build: {same}", flush=True)
        if nodes >= 2 and args.completions:
            from core.cluster.index import open_cluster_index

            items = [(GenKey("b", f"p{i}", 0), t) for i, t in enumerate(completions(docs, args.completions))]
            cfg = TraceConfig(workers=1)
            lidx = CorpusIndex.open(local, tokenizer=tok)
            t0 = time.perf_counter()
            want_tr = trace_many(lidx, tok, items, cfg)
            t_lt = time.perf_counter() - t0
            cidx = open_cluster_index([out], cluster.address, tokenizer=tok)
            t0 = time.perf_counter()
            got_tr = trace_many(cidx, tok, items, cfg)
            t_ct = time.perf_counter() - t0
            spans = sum(len(r.spans) for r in want_tr)
            print(f"trace {len(items)} completions ({spans} spans): local 1 process {t_lt:.2f} s "
                  f"({len(items) / t_lt:.1f}/s); cluster, {len(set(cidx.nodes))} shard groups on "
                  f"{len(set(cidx.nodes))} nodes {t_ct:.2f} s ({len(items) / t_ct:.1f}/s); identical: {got_tr == want_tr}",
                  flush=True)
            results.update(trace_local_s=t_lt, trace_cluster_s=t_ct, trace_identical=got_tr == want_tr)
            cidx.close()
        ray.shutdown()
        cluster.shutdown()
    if "ray1_s" in results and "ray2_s" in results:
        print(f"1-vs-2-node ratio (1-node seconds / 2-node seconds): {results['ray1_s'] / results['ray2_s']:.2f}x; "
              f"local sharded build / 2-node Ray build: {results['local_s'] / results['ray2_s']:.2f}x")
    print("uptime after:", uptime())
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
