"""Sharded index builds: a corpus too big for one suffix array as independent shards side by side.

``out/shard-00000/``, ``out/shard-00001/``, ... are each a complete index folder (its own token
files, suffix array and manifest, built by :func:`core.index.build.build_index_from_ids`); there is
no global merge. Documents never straddle shards and matches never cross documents, so queries
over the shards are exact: a count is the sum of the shards' counts, a longest match the maximum
of theirs (:class:`core.index.corpus_index.CorpusIndex` opens ``out`` as one index).

Memory is bounded by the shard size: a shard's suffix-array sort takes about
:func:`sort_ram_per_token` bytes per token (8 with libsais, 20 for u16 tokens with rust_indexing),
and at most ``parallel`` sorts run at once, while the next shard's files are written. Nothing holds more than one shard's pending write buffer.
``sharded.json`` (written last) lists the shards; ``propme-building`` marks an unfinished build,
which refuses to open.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CorpusError, IndexNotBuilt
from core.index import layout as fmt
from core.index.build import SA_RAM_PER_BYTE, build_index_from_ids
from core.progress import ProgressFn

log = logging.getLogger(__name__)

SHARDS_FILE = "sharded.json"
SHARD_PREFIX = "shard-"
MEMORY_BUDGET = 4 << 30  # default peak RAM of a sharded build (all concurrent sorts together)
HEADROOM = 0.8  # share of the budget given to the sorts (the rest: this process, page tables, slack)


def shard_name(i: int) -> str:
    """Folder name of shard ``i`` (sorted names give the document order).

    >>> shard_name(7)
    'shard-00007'
    """
    return f"{SHARD_PREFIX}{i:05d}"


def sort_ram_per_token(token_width: int) -> int:
    """Peak RAM of a shard's suffix-array sort per token: libsais for u16 tokens when it is built
    here (:mod:`core.index.sais`), else rust_indexing."""
    from core.index import sais

    return sais.RAM_PER_TOKEN if sais.usable(token_width, 1) else SA_RAM_PER_BYTE * token_width


def plan_shard_tokens(max_memory_bytes: int, parallel: int, token_width: int, ram_per_token: int | None = None) -> int:
    """Tokens per shard so that ``parallel`` concurrent sorts stay within the memory budget
    (``ram_per_token``: see :func:`sort_ram_per_token`; default rust_indexing's).

    >>> plan_shard_tokens(4 << 30, 2, 2)  # 4 GiB, two rust_indexing sorts, u16 tokens: ~86M tokens a shard
    85899345
    >>> plan_shard_tokens(4 << 30, 2, 2, ram_per_token=8)  # two libsais sorts: ~215M tokens a shard
    214748364
    """
    per_token = ram_per_token or SA_RAM_PER_BYTE * token_width
    return max(1, int(max_memory_bytes * HEADROOM / (per_token * max(1, parallel))))


class _ShardFeed:
    """The documents of one shard, pulled from the shared stream until the shard is full (``limit``
    tokens, one separator per document included: the sort's size); ``written``
    is set when the shard's writer has taken its last document (the next shard may start)."""

    def __init__(self, stream: Iterator, limit: int, first: tuple | None):
        self.stream, self.limit, self.first = stream, limit, first
        self.tokens = self.docs = 0
        self.carry: tuple | None = None  # the document that did not fit: first of the next shard
        self.written = threading.Event()

    def __iter__(self):
        try:
            doc = self.first
            while True:
                if doc is None:
                    doc = next(self.stream, None)
                    if doc is None:
                        return
                n = len(doc[1])
                if self.docs and self.tokens + self.docs + n + 1 > self.limit:  # separators count too
                    self.carry = doc
                    return
                self.tokens += n
                self.docs += 1
                yield doc
                doc = None
        finally:
            self.written.set()


def build_sharded_index(documents: Iterable, tokenizer, out_dir: str | Path, *, shard_tokens: int | None = None,
                        parallel: int | None = None, max_memory_bytes: int = MEMORY_BUDGET,
                        progress: ProgressFn | None = None, load=None):
    """Tokenize ``documents`` (as :func:`core.index.build.build_index`) and index them as shards
    (:func:`build_sharded_index_from_ids`; ``python -m core index build --sharded``)."""
    from core.index.build import tokenized_corpus

    stream, ids_kw = tokenized_corpus(documents, tokenizer, out_dir, load=load, progress=progress)
    return build_sharded_index_from_ids(stream, out_dir, shard_tokens=shard_tokens, parallel=parallel,
                                        max_memory_bytes=max_memory_bytes, progress=progress, **ids_kw)


def build_sharded_index_from_ids(docs: Iterable[tuple[str, np.ndarray, Mapping[str, Any]]], out_dir: str | Path, *,
                                 vocab_size: int, eos_token_id: int, tokenizer_name: str | None = None,
                                 tokenizer_fingerprint: str | None = None, corpus_fingerprint: str | None = None,
                                 shard_tokens: int | None = None, parallel: int | None = None,
                                 max_memory_bytes: int = MEMORY_BUDGET, progress: ProgressFn | None = None,
                                 corpus_report: Mapping[str, Any] | None = None,
                                 tokenize: Mapping[str, Any] | None = None):
    """Index pre-tokenized documents ``(doc_id, ids, metadata)`` as shards of at most ``shard_tokens``
    entries each (tokens and one separator per document; a longer document gets a shard of its own),
    in document order. ``corpus_report``: what the corpus load skipped, ``tokenize``: which engine
    tokenized it (both kept in ``sharded.json``).

    ``parallel`` shards are sorted at once (default: the cores available, at most 2 per 4 GiB) while
    the next one is written; ``shard_tokens`` defaults to what keeps those sorts within
    ``max_memory_bytes``. Returns the opened :class:`~core.index.corpus_index.CorpusIndex`.
    """
    from core.index.corpus_index import CorpusIndex

    width = fmt.WIDTHS[fmt.choose_dtype(vocab_size)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parallel = max(1, parallel or cores)
    per_token = sort_ram_per_token(width)
    shard_tokens = shard_tokens or plan_shard_tokens(max_memory_bytes, parallel, width, per_token)
    if shard_tokens < 1:
        raise IndexNotBuilt(f"shard_tokens must be at least 1, got {shard_tokens}")
    # one sort's budget: the shard is then sorted in one job (no merge) whenever it fits
    sort_budget = max(per_token * (shard_tokens + 1), max_memory_bytes // parallel)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / fmt.BUILDING).write_text("sharded build in progress\n")
    for old in [p for p in out.iterdir() if p.name.startswith(SHARD_PREFIX)] + [out / SHARDS_FILE]:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)

    t0 = time.perf_counter()
    stream = iter(docs)
    carry = next(stream, None)  # the first document of the next shard
    if carry is None:
        raise CorpusError(f"No documents to index into {out}: the corpus is empty")
    slots = threading.Semaphore(parallel)  # shards being written or sorted
    futures: list[Future] = []
    feeds: list[_ShardFeed] = []
    common = {"vocab_size": vocab_size, "eos_token_id": eos_token_id, "tokenizer_name": tokenizer_name,
                  "tokenizer_fingerprint": tokenizer_fingerprint, "progress": progress, "cpus": 1,
                  "max_memory_bytes": sort_budget}

    def build(i: int, feed: _ShardFeed) -> None:
        try:
            fp = f"{corpus_fingerprint}:{shard_name(i)}" if corpus_fingerprint else None
            build_index_from_ids(feed, out / shard_name(i), corpus_fingerprint=fp, **common)
        finally:
            feed.written.set()
            slots.release()

    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="shard") as pool:
        while carry is not None and not any(f.done() and f.exception() for f in futures):
            slots.acquire()
            feed = _ShardFeed(stream, shard_tokens, carry)
            feeds.append(feed)
            futures.append(pool.submit(build, len(feeds) - 1, feed))
            feed.written.wait()  # the stream is read by one shard at a time
            carry = feed.carry
    for f in futures:  # every sort has ended (the pool is shut down): raise the first failure
        if f.exception() is not None:
            raise f.exception()
    shards = [{"name": shard_name(i), "num_docs": f.docs, "num_tokens": f.tokens} for i, f in enumerate(feeds)]
    fmt.write_json_atomic(out / SHARDS_FILE, {
        "format_version": fmt.FORMAT_VERSION, "shards": shards, "corpus_fingerprint": corpus_fingerprint,
        "tokenizer_name": tokenizer_name, "shard_tokens": shard_tokens, "parallel": parallel,
        "corpus_report": dict(corpus_report or {}), "tokenize": dict(tokenize or {}),
        "num_docs": sum(s["num_docs"] for s in shards), "num_tokens": sum(s["num_tokens"] for s in shards),
        "build_seconds": round(time.perf_counter() - t0, 3), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    (out / fmt.BUILDING).unlink()
    log.info("indexed %d shards, %d tokens into %s", len(shards), sum(s["num_tokens"] for s in shards), out)
    return CorpusIndex.open(out)
