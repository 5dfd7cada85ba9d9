"""Vectorised suffix-array search (core/index/sa_search.py) against brute force and infini-gram's engine."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.index.corpus_index import CorpusIndex
from tests.fixtures_index import brute_count, brute_longest, build_ids_index

VOCAB = 6  # few ids: long repeats and many equal prefixes, the hard case for a binary search
examples = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _query(data, docs: list[list[int]], alphabet) -> list[int]:
    query = data.draw(st.lists(st.sampled_from(alphabet), max_size=24))
    flat = [t for d in docs for t in d]
    if flat and data.draw(st.booleans()):  # a true copy, possibly running over a document boundary
        i = data.draw(st.integers(0, len(flat) - 1))
        query = query[:3] + flat[i:i + 14] + query[3:]
    return query


@examples
@given(st.lists(st.lists(st.integers(1, VOCAB - 1), max_size=30), min_size=1, max_size=6), st.data())
def test_equals_brute_force_and_engine(docs, data):
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", VOCAB)
        queries = [_query(data, docs, list(range(VOCAB))) for _ in range(4)]
        many = index.longest_matches_many(queries)
        for q, got in zip(queries, many):
            want = brute_longest(docs, q)
            assert got == want == index.longest_matches(q)
            if len(q) >= 2:  # the engine's single-shard answer (with its rank-0 repair) agrees
                assert index.longest_matches_engine(q) == want


# ids whose little-endian bytes sort differently from their values, and ids next to the separator
TRICKY = {"u16": ([1, 2, 255, 256, 257, 511, 0xFF00, 0xFFFE], 0xFFFF),
          "u32": ([1, 255, 256, 0xFFFF, 0x10000, 0x1FF, 0xFFFF00], 0xFFFF01)}


# u32 indexes are built by rust_indexing's processes (seconds per example): in the slow tier; the fast tier
# keeps u32 through tests/test_index.py::test_tricky_token_ids_count_and_match_exactly[u32]
@pytest.mark.parametrize("dtype", ["u16", pytest.param("u32", marks=pytest.mark.slow)])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_byte_order_of_tokens(dtype, data):
    alphabet, vocab = TRICKY[dtype]
    docs = data.draw(st.lists(st.lists(st.sampled_from(alphabet), max_size=25), min_size=1, max_size=5))
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", vocab)
        assert index.token_dtype == dtype
        for _ in range(3):
            q = _query(data, docs, alphabet)
            assert index.longest_matches(q) == brute_longest(docs, q)


@examples
@given(st.lists(st.lists(st.integers(1, VOCAB - 1), max_size=20), min_size=2, max_size=6), st.data())
def test_several_shards_take_the_maximum(docs, data):
    cut = data.draw(st.integers(1, len(docs) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        build_ids_index(docs[:cut], Path(tmp) / "a", VOCAB)
        build_ids_index(docs[cut:], Path(tmp) / "b", VOCAB)
        index = CorpusIndex.open([Path(tmp) / "a", Path(tmp) / "b"])
        queries = [_query(data, docs, list(range(VOCAB))) for _ in range(3)]
        assert index.longest_matches_many(queries) == [brute_longest(docs, q) for q in queries]


def test_query_before_first_and_after_last_suffix(tmp_path):
    index = build_ids_index([[2, 3], [3, 3, 4]], tmp_path / "ix", VOCAB)
    docs = [[2, 3], [3, 3, 4]]
    for q in ([1, 2, 3], [5, 5], [4, 5], [3, 3, 4, 4], [2, 3, 3, 4], [], [1]):
        assert index.longest_matches(q) == brute_longest(docs, q)
    assert index.longest_matches_many([]) == []
    assert index.longest_matches_many([[], [3]]) == [[], [1]]


def _scan_longest(docs: list[list[int]], q: list[int]) -> list[int]:
    """brute_longest by numpy scans (fast on tens of thousands of tokens): candidates that match
    q[s:s+n] are filtered one token at a time; -1 separates documents."""
    flat = np.concatenate([np.asarray([-1] + list(d), dtype=np.int64) for d in docs] + [np.full(1, -1)])
    out = []
    for s in range(len(q)):
        cand, n = np.arange(len(flat)), 0
        while s + n < len(q):
            cand = cand[cand + n < len(flat)]
            cand = cand[flat[cand + n] == q[s + n]]
            if not cand.size:
                break
            n += 1
        out.append(n)
    return out


def test_three_byte_pointers_and_long_repeats(tmp_path):
    # 40k u16 tokens: an 80 kB token file has 3-byte suffix-array entries (the generic pointer path);
    # a repeated 300-token block forces comparisons that run over many blocks of tokens
    rng = random.Random(7)
    block = [rng.randrange(1, 50) for _ in range(300)]
    docs = [[rng.randrange(1, 50) for _ in range(rng.randrange(50, 400))] for _ in range(180)]
    docs[3] = docs[3][:10] + block + docs[3][10:]
    docs[90] = block + block[:150]
    index = build_ids_index(docs, tmp_path / "ix", 300)
    assert index._shards[0].ptr_size == 3
    flat = np.concatenate([np.asarray(d) for d in docs])
    queries = [block[20:] + [7, 7, 7], [int(t) for t in flat[5000:5400]]]
    queries += [[rng.randrange(1, 50) for _ in range(60)] for _ in range(3)]
    got = index.longest_matches_many(queries)
    for q, g in zip(queries, got):
        assert g == _scan_longest(docs, q)
    assert _scan_longest(docs[:3], queries[2]) == brute_longest(docs[:3], queries[2])  # the scan itself
    assert max(got[0]) == 280 and max(got[1]) >= 50  # genuinely long matches were found


@examples
@given(st.lists(st.lists(st.integers(1, VOCAB - 1), max_size=30), min_size=2, max_size=6), st.data())
def test_prefetched_ranges_equal_the_engine(docs, data):
    cut = data.draw(st.integers(1, len(docs) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / "a", Path(tmp) / "b"]
        build_ids_index(docs[:cut], dirs[0], VOCAB)
        build_ids_index(docs[cut:], dirs[1], VOCAB)
        index, engine_only = CorpusIndex.open(dirs), CorpusIndex.open(dirs)
        queries = [q for q in (_query(data, docs, list(range(VOCAB)))[:data.draw(st.integers(1, 6))]
                               for _ in range(8)) if q]
        index.prefetch(queries)
        assert set(index._found) == {tuple(q) for q in queries}  # the next calls are served from it
        for q in queries:
            assert index._find(q) == engine_only._find(q)  # same rank segments in every shard
            assert index.count(q) == brute_count(docs, q)
            assert index.occurrences(q, 3, seed=5) == engine_only.occurrences(q, 3, seed=5)


@examples
@given(st.lists(st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=30), min_size=2, max_size=6), st.data())
def test_doc_windows_equal_doc_window_across_shards(docs, data):
    cut = data.draw(st.integers(1, len(docs) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        build_ids_index(docs[:cut], Path(tmp) / "a", VOCAB)
        build_ids_index(docs[cut:], Path(tmp) / "b", VOCAB)
        index = CorpusIndex.open([Path(tmp) / "a", Path(tmp) / "b"])
        q = data.draw(st.lists(st.integers(1, VOCAB - 1), min_size=1, max_size=2))
        occs = index.occurrences(q, 50, seed=1)
        n, width = len(q), data.draw(st.integers(0, 12))
        got = index.doc_windows(occs, n, width)
        assert [(w.tolist(), off) for w, off in got] == [index.doc_window(o, n, width) for o in occs]
        for (w, off), o in zip(got, occs):  # the match sits at the offset, inside its own document
            assert w[off:off + n].tolist() == q == docs[o.doc_ix][o.start:o.start + n]
