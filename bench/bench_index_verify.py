"""What the index checksums cost (core/index/verify.py): build time with and without them, the full
check, the first and the warm open. Everything is measured in this one run, on this machine.

1. ``--tokens`` pre-tokenized tokens (seeded Zipf-like ids in documents of 50-2000 tokens; hashing cost
   depends only on the bytes) are indexed ``--reps`` times each way, alternating: a baseline whose
   checksum step is switched off, and the real build (files hashed in a thread while the suffix array
   is sorted, the table after it); ratio = median build time with / without;
2. ``python -m core index verify`` of that index (every file hashed again; page cache warm: it was just
   written), as GB/s;
3. ``CorpusIndex.open``: the first open of the folder (no record: every file hashed) and warm opens
   (the record vouches for every file: structural checks only), median of 5;
4. the full check of a 1B-token index extrapolated from the measured hash rate and the file sizes a
   1B-token u16 index has (2 GB of tokens, 4 GB of suffix array, offsets and metadata).

    python bench/bench_index_verify.py --tokens 30000000 --out /tmp/bench_verify
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

VOCAB = 32000


def docs(num_tokens: int, seed: int):
    rng = np.random.default_rng(seed)
    left, i = num_tokens, 0
    while left > 0:
        n = int(min(left, rng.integers(50, 2000)))
        ids = np.minimum(rng.zipf(1.2, size=n), VOCAB - 1).astype(np.int64)
        yield f"d{i}", ids, {"n": n}
        left -= n
        i += 1


class _NoChecksums:
    """The baseline: the build without its checksum step."""

    def __init__(self, folder):
        pass

    def start(self, names):
        pass

    def result(self):
        return {}

    def cancel(self):
        pass


def build(out: Path, tokens: int, checksums: bool, memory_mb: int) -> float:
    from core.index import verify
    from core.index.build import build_index_from_ids

    shutil.rmtree(out, ignore_errors=True)
    real = verify.Checksums
    if not checksums:
        verify.Checksums = _NoChecksums
    waits = []
    if checksums:  # how long the build waits for its checksums (their cost on the critical path)
        class Timed(real):
            def result(self):
                t = time.perf_counter()
                try:
                    return super().result()
                finally:
                    waits.append(time.perf_counter() - t)
        verify.Checksums = Timed
    else:
        verify.Checksums = _NoChecksums
    try:
        c0, t0 = _cpu(), time.perf_counter()
        build_index_from_ids(docs(tokens, 7), out, vocab_size=VOCAB, eos_token_id=0, cpus=1,
                             max_memory_bytes=memory_mb << 20)
        return time.perf_counter() - t0, _cpu() - c0, sum(waits)
    finally:
        verify.Checksums = real


def _cpu() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=float, default=3e7)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--memory-mb", type=int, default=4096)
    ap.add_argument("--out", default=None, help="work folder (default: a temp folder, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the index built with checksums")
    args = ap.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_verify_"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["PROPME_CACHE_DIR"] = str(work / "cache")  # a record of its own
    tokens = int(args.tokens)
    print(f"load before: {os.getloadavg()[0]:.1f}", flush=True)
    build(work / "warmup", 1 << 21, True, args.memory_mb)  # compiles libsais on first use, warms imports
    shutil.rmtree(work / "warmup", ignore_errors=True)
    base, real = [], []
    for rep in range(args.reps):
        base.append(build(work / "index_base", tokens, False, args.memory_mb))
        real.append(build(work / "index", tokens, True, args.memory_mb))
        print(f"rep {rep}: without checksums {base[-1][0]:.2f} s wall / {base[-1][1]:.2f} s CPU, with "
              f"{real[-1][0]:.2f} s wall / {real[-1][1]:.2f} s CPU (waiting for checksums {real[-1][2]:.2f} s)",
              flush=True)
    shutil.rmtree(work / "index_base", ignore_errors=True)

    def med(rows, i):
        return statistics.median(r[i] for r in rows)

    print(f"build of {tokens / 1e6:.0f}M tokens, medians of {args.reps}: wall {med(base, 0):.2f} s without checksums, "
          f"{med(real, 0):.2f} s with (ratio {med(real, 0) / med(base, 0):.3f}); CPU {med(base, 1):.2f} s vs "
          f"{med(real, 1):.2f} s (ratio {med(real, 1) / med(base, 1):.3f}); the build waits {med(real, 2):.2f} s "
          f"for its checksums = {med(real, 2) / med(base, 0):.3f} of the baseline's wall time")

    from core.cli import main as cli
    from core.index import verify
    from core.index.corpus_index import CorpusIndex

    folder = work / "index"
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    from core.index import layout as fmt

    t0 = time.perf_counter()
    verify.check_checksums(folder, fmt.read_manifest(folder), use_record=False)
    hashing = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert cli(["index", "verify", str(folder)]) == 0
    full = time.perf_counter() - t0
    print(f"hashing every file (page cache warm): {size / 1e9:.2f} GB in {hashing:.2f} s = {size / 1e9 / hashing:.2f} GB/s; "
          f"index verify (hashes + structure, 65536 suffix-array pairs): {full:.2f} s")

    verify._record_path().unlink(missing_ok=True)
    past = time.time() - 60
    for p in folder.iterdir():
        os.utime(p, (past, past))  # as an index built a while ago
    t0 = time.perf_counter()
    CorpusIndex.open(folder)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        CorpusIndex.open(folder)
        warm.append(time.perf_counter() - t0)
    print(f"open: first (full check) {first:.2f} s; warm median {statistics.median(warm) * 1000:.1f} ms "
          f"(min {min(warm) * 1000:.1f}, max {max(warm) * 1000:.1f})")
    one_b = 2e9 + 4e9 + 6e7  # tokens (u16), table (4-byte pointers), offsets + metadata of ~1M documents
    print(f"1B-token index (~{one_b / 1e9:.1f} GB of files): full check ~{one_b / (size / hashing):.0f} s at this rate "
          "(extrapolated, not measured)")
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if not args.keep and not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
