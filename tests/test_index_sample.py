"""The suffix-array sample (core/index/sa_search.py: packed prefixes of every SAMPLE_STEP-th suffix)
only narrows searches: longest matches and rank ranges equal brute force and the unsampled search,
for any step, on tokens whose byte order differs from their value order."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.index.sa_search as sa
from core.errors import IndexDamaged
from core.index import sais
from core.index.corpus_index import CorpusIndex
from tests.fixtures_index import brute_count, brute_longest, build_ids_index

ALPHABET = [1, 2, 255, 256, 257, 0xFF00, 0xFFFE]


@pytest.mark.parametrize("step", [1, 2, 5, 64])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_sampled_search_equals_brute_force_and_unsampled(step, data, monkeypatch):
    monkeypatch.setattr(sa, "SAMPLE_STEP", step)
    monkeypatch.setattr(sais, "MIN_TOKENS", 0)  # libsais sorts, and takes the sample from its arrays
    docs = data.draw(st.lists(st.lists(st.sampled_from(ALPHABET), max_size=40), min_size=1, max_size=6))
    flat = [t for d in docs for t in d]
    queries = [data.draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=6)) for _ in range(4)]
    if flat:
        i = data.draw(st.integers(0, len(flat) - 1))
        queries.append(flat[i:i + data.draw(st.integers(1, 12))] + [data.draw(st.sampled_from(ALPHABET))])
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", 0xFFFF)
        searcher = index._shard_searchers()[0]
        assert searcher._step == step and searcher._sample is not None  # the sample is really used
        taken = np.load(sa.sample_path(index._shards[0]))  # taken by libsais from its arrays in RAM
        sa.write_sample(index._shards[0], step)  # taken again from the written files
        assert np.array_equal(np.load(sa.sample_path(index._shards[0])), taken)
        plain = [sa.ShardSearcher(s, sample=False) for s in index._shards]
        lengths = index.longest_matches_many(queries)
        assert [x.tolist() for x in sa.longest_matches_many(plain, [np.asarray(q) for q in queries])] == lengths
        assert lengths == [brute_longest(docs, q) for q in queries]
        ranges = sa.find_many(index._shard_searchers(), queries)
        assert ranges == sa.find_many(plain, queries)
        assert [sum(e - s for s, e in r) for r in ranges] == [brute_count(docs, q) for q in queries]


def test_rust_indexing_builds_write_the_same_sample(tmp_path, monkeypatch):
    docs = [[1, 256, 2, 0xFF00] * 30, [256, 256, 1] * 40, [0xFFFE, 2]]
    monkeypatch.setattr(sa, "SAMPLE_STEP", 3)
    small = build_ids_index(docs, tmp_path / "rust", 0xFFFF)  # under MIN_TOKENS: rust_indexing
    assert small.manifest["build_seconds"]["suffix_array_steps"]["engine"] == "rust_indexing"
    monkeypatch.setattr(sais, "MIN_TOKENS", 0)
    big = build_ids_index(docs, tmp_path / "sais", 0xFFFF)
    assert big.manifest["build_seconds"]["suffix_array_steps"]["engine"] == "libsais16"
    assert np.array_equal(np.load(sa.sample_path(small._shards[0])), np.load(sa.sample_path(big._shards[0])))


def test_a_stale_sample_is_not_used(tmp_path):
    index = build_ids_index([[1, 2, 3] * 50], tmp_path / "ix", 0xFFFF)
    path = sa.sample_path(index._shards[0])
    np.save(path, np.array([7, 1, 2, 3]))  # wrong length for this shard
    with pytest.raises(IndexDamaged, match="sa-sample.0.npy does not match its checksum"):  # ours: damage
        CorpusIndex.open(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    del manifest["checksums"]  # an index built before checksums were recorded: the stale sample is ignored
    (tmp_path / "ix" / "manifest.json").write_text(json.dumps(manifest))
    again = CorpusIndex.open(tmp_path / "ix")
    assert again._shard_searchers()[0]._sample is None
    assert again.longest_matches([1, 2, 3, 1, 9]) == [4, 3, 2, 1, 0]
