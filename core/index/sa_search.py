"""Longest prefix matches by a vectorised binary search over a memory-mapped suffix array.

For many query strings at once (every start of a completion: ``flat[pos[i]:pos[i] + n[i]]``), one
numpy binary search per shard finds each query's insertion point in the suffix array; the longest
prefix of the query that occurs in the shard is then its longer common prefix with the two suffixes
around that point (either can be the longer one, so both are checked).

infini-gram's ``rust_indexing`` sorts suffixes by the *bytes* of the little-endian token file, so
tokens are compared as byte-swapped integers; a suffix that runs out of bytes (end of file) sorts
first, and a document separator (all 0xFF bytes) is larger than any token id and matches none, so
matches never cross documents. Binary search steps compare only from ``min(lcp(lo), lcp(hi))`` on
(every suffix between the bounds shares that prefix with the query), in blocks of a few tokens.

A u16 shard built here also has ``sa-sample.N.npy``: the first :data:`PREFIX` tokens of every
:data:`SAMPLE_STEP`-th suffix, packed into one int64 each (:func:`write_sample`). One ``searchsorted``
in it narrows every query's rank range to about SAMPLE_STEP suffixes before the binary search, which
then takes ~8 steps instead of ~28 (exact: only suffixes whose packed prefix sorts strictly below or
above every string starting with the query are excluded).
"""
from __future__ import annotations

import numpy as np

from core.index.shards import Shard

BLOCK = 8  # tokens compared per gather; longer agreements take another round for those queries only
SAMPLE_STEP = 256  # suffix-array ranks between two sampled suffixes (8 bytes of RAM each per process)
PREFIX = 3  # tokens of a sampled suffix packed into its int64 key (17 bits each: 0 = end of file)
_PAD_HIGH = (1 << 17) - 1  # above every packed token


def sample_path(shard: Shard):
    """The sample file beside the shard's token file (``tokenized.0`` -> ``sa-sample.0.npy``)."""
    return shard.token_path.with_name("sa-sample" + shard.token_path.suffix + ".npy")


def pack(keys: np.ndarray) -> np.ndarray:
    """int64 of rows of PREFIX sort keys (-1: end of file) that orders like the rows do."""
    out = np.zeros(len(keys), dtype=np.int64)
    for i in range(PREFIX):
        out = (out << 17) | (keys[:, i] + 1)
    return out


def write_sample(shard: Shard, step: int | None = None, packed: np.ndarray | None = None) -> None:
    """Write the shard's sample of packed suffix prefixes (u16 shards only; see the module docstring);
    ``packed``: the sample already taken (by :func:`core.index.sais.suffix_array`) with this ``step``."""
    if shard.width != 2:
        return
    step = step or SAMPLE_STEP
    if packed is not None:
        np.save(sample_path(shard), np.concatenate([[step], packed]))
        return
    searcher = ShardSearcher(shard, sample=False)
    ranks = np.arange(0, shard.tok_cnt, step, dtype=np.int64)
    keys = np.concatenate([searcher._suffix_keys(searcher._suffix_starts(ranks[i:i + (1 << 20)])[:, None]
                                                 + np.arange(PREFIX)) for i in range(0, len(ranks), 1 << 20)])
    np.save(sample_path(shard), np.concatenate([[step], pack(keys)]))


def _sort_keys(tokens: np.ndarray) -> np.ndarray:
    """int64 keys that order token ids as their little-endian bytes do."""
    return tokens.byteswap().astype(np.int64) if tokens.dtype.itemsize > 1 else tokens.astype(np.int64)


class ShardSearcher:
    """Suffix-array search over one shard's memory maps (no engine calls, nothing loaded in RAM)."""

    def __init__(self, shard: Shard, sample: bool = True):
        self.shard = shard
        self.n_suffixes = shard.tok_cnt
        if shard.ptr_size in (1, 2, 4, 8):
            flat = np.asarray(shard.table).reshape(-1)
            self._table = flat.view(f"<u{shard.ptr_size}")
        else:
            self._table = None
        self._step, self._sample = 0, None
        path = sample_path(shard)
        if sample and shard.width == 2 and path.exists():
            data = np.load(path)
            step = int(data[0]) if len(data) else 0
            if step > 0 and len(data) - 1 == -(-shard.tok_cnt // step):  # else stale: not used
                self._step, self._sample = step, data[1:]

    def _suffix_starts(self, ranks: np.ndarray) -> np.ndarray:
        """Token index where the suffix of each rank starts."""
        if self._table is not None:
            ptrs = self._table[ranks].astype(np.int64)
        else:
            ptrs = self.shard.ptrs(ranks)
        return ptrs // self.shard.width

    def _suffix_keys(self, idx: np.ndarray) -> np.ndarray:
        """Sort keys of tokens at ``idx`` (any shape); -1 past the end of the file."""
        n = self.n_suffixes
        keys = _sort_keys(np.asarray(self.shard.tokens[np.minimum(idx, n - 1)]))
        keys[idx >= n] = -1
        return keys

    def _compare(self, suf: np.ndarray, qkeys: np.ndarray, pos: np.ndarray, n: np.ndarray,
                 m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """lcp of each suffix (token start ``suf``) with its query, known to be >= ``m``, and whether
        the suffix sorts at or after the query."""
        lcp, ge = m.copy(), np.zeros(len(suf), dtype=bool)
        todo = np.arange(len(suf))
        step = np.arange(BLOCK, dtype=np.int64)
        while todo.size:
            off = lcp[todo, None] + step  # (k, BLOCK) offsets into suffix and query
            in_query = off < n[todo, None]
            q = qkeys[pos[todo, None] + np.minimum(off, n[todo, None] - 1)]
            s = self._suffix_keys(suf[todo, None] + off)
            differ = (s != q) | ~in_query
            first = differ.argmax(axis=1)
            stop = differ[np.arange(len(todo)), first]
            rows = todo[stop]
            f = first[stop]
            lcp[rows] += f
            k = np.nonzero(stop)[0]
            ended = ~in_query[k, f]  # the whole query matched: it sorts at or before the suffix
            ge[rows] = ended | (s[k, f] > q[k, f])
            lcp[todo[~stop]] += BLOCK
            todo = todo[~stop]
        return lcp, ge

    def _search(self, qkeys: np.ndarray, pos: np.ndarray, n: np.ndarray,
                upper: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """First rank whose suffix sorts at or after each query (``upper``: after every suffix that
        starts with the query), with the query's lcp with the suffixes at rank - 1 and rank."""
        count = len(pos)
        lo = np.zeros(count, dtype=np.int64)
        hi = np.full(count, self.n_suffixes, dtype=np.int64)
        lo_lcp = np.zeros(count, dtype=np.int64)  # lcp with the suffix at rank lo - 1 (0 if none)
        hi_lcp = np.zeros(count, dtype=np.int64)  # lcp with the suffix at rank hi (0 if none)
        if self._sample is not None and count:
            self._narrow(qkeys, pos, n, lo, hi, lo_lcp, hi_lcp)
        act = np.nonzero(lo < hi)[0]
        while act.size:
            mid = (lo[act] + hi[act]) // 2
            q_n = n[act]
            lcp, ge = self._compare(self._suffix_starts(mid), qkeys, pos[act], q_n,
                                    np.minimum(lo_lcp[act], hi_lcp[act]))
            if upper:
                ge &= lcp < q_n
            left, right = act[ge], act[~ge]
            hi[left], hi_lcp[left] = mid[ge], lcp[ge]
            lo[right], lo_lcp[right] = mid[~ge] + 1, lcp[~ge]
            act = act[lo[act] < hi[act]]
        return lo, lo_lcp, hi_lcp

    def _narrow(self, qkeys, pos, n, lo, hi, lo_lcp, hi_lcp) -> None:
        """Set [lo, hi] from the sample (in place), with the exact lcps at ranks lo - 1 and hi."""
        low = high = np.zeros(len(pos), dtype=np.int64)
        for i in range(PREFIX):
            inside = i < n
            k = np.where(inside, qkeys[np.minimum(pos + i, len(qkeys) - 1)] + 1, 0)
            low = (low << 17) | k
            high = (high << 17) | np.where(inside, k, _PAD_HIGH)
        below = np.searchsorted(self._sample, low, side="left")  # samples that sort below the query
        above = np.searchsorted(self._sample, high, side="right")  # the first sample above it
        lo[:] = np.where(below > 0, (below - 1) * self._step + 1, 0)
        hi[:] = np.where(above < len(self._sample), above * self._step, self.n_suffixes)
        for bound, lcp, ok in ((lo - 1, lo_lcp, lo > 0), (hi, hi_lcp, hi < self.n_suffixes)):
            rows = np.nonzero(ok)[0]
            if rows.size:
                lcp[rows] = self._compare(self._suffix_starts(bound[rows]), qkeys, pos[rows], n[rows],
                                          np.zeros(rows.size, dtype=np.int64))[0]

    def longest(self, qkeys: np.ndarray, pos: np.ndarray, n: np.ndarray) -> np.ndarray:
        """For each query i (keys ``qkeys[pos[i]:pos[i] + n[i]]``, n[i] >= 1), the length of its
        longest prefix that occurs in the shard."""
        _rank, lo_lcp, hi_lcp = self._search(qkeys, pos, n, upper=False)
        return np.maximum(lo_lcp, hi_lcp)

    def ranges(self, qkeys: np.ndarray, pos: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Suffix-array rank range [start, end) of the suffixes that start with each query."""
        start, _, _ = self._search(qkeys, pos, n, upper=False)
        end, _, _ = self._search(qkeys, pos, n, upper=True)
        return start, end


def _flatten(searchers: list[ShardSearcher], queries: list[np.ndarray]):
    lens = np.array([len(q) for q in queries], dtype=np.int64)
    tokens = np.concatenate([np.asarray(q, dtype=np.int64) for q in queries] + [np.zeros(0, np.int64)])
    return lens, _sort_keys(tokens.astype(searchers[0].shard.tokens.dtype))


def find_many(searchers: list[ShardSearcher], queries: list[np.ndarray]) -> list[list[tuple[int, int]]]:
    """For each non-empty query, its rank range [start, end) in every shard (as infini-gram's
    ``find`` reports ``segment_by_shard``); the count is the sum of the range sizes."""
    lens, qkeys = _flatten(searchers, queries)
    if not len(lens):
        return []
    if (lens < 1).any():
        raise ValueError("find_many needs non-empty queries")
    pos = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    per_shard = [s.ranges(qkeys, pos, lens) for s in searchers]
    return [[(int(st[i]), int(en[i])) for st, en in per_shard] for i in range(len(lens))]


def longest_matches_many(searchers: list[ShardSearcher], queries: list[np.ndarray]) -> list[np.ndarray]:
    """For every query and every start s, the length of the longest prefix of ``query[s:]`` that
    occurs in any shard (the maximum over shards). Token ids must be below the separator."""
    lens, qkeys = _flatten(searchers, queries)
    total = int(lens.sum())
    if total == 0:
        return [np.zeros(0, dtype=np.int64) for _ in queries]
    ends = np.repeat(np.cumsum(lens), lens)
    pos = np.arange(total, dtype=np.int64)
    n = ends - pos
    best = np.zeros(total, dtype=np.int64)
    for searcher in searchers:
        np.maximum(best, searcher.longest(qkeys, pos, n), out=best)
    return np.split(best, np.cumsum(lens)[:-1])
