"""A sharded index (core/index/sharded.py: independent shards side by side, no merge) opens and
answers exactly like a one-shard index of the same corpus, checked against brute force, and traces
like it (spans, counts, frequencies and the sampled documents: occurrences are sampled in corpus
order, so one index and its shards sample the same ones; above ``CORPUS_ORDER_LIMIT`` occurrences
they are sampled in suffix-array order, which depends on the layout)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.config import TraceConfig
from core.errors import IndexNotBuilt
from core.index import layout as fmt
from core.index.build import SA_RAM_PER_BYTE, build_index_from_ids
from core.index.corpus_index import CorpusIndex
from core.index.sharded import SHARDS_FILE, build_sharded_index_from_ids, plan_shard_tokens, shard_name
from core.records import GenKey
from core.tracing.trace import tokenize, trace_many
from tests.fixtures_index import brute_count, brute_longest
from tests.fixtures_trace import byte_bpe_tokenizer, random_corpus

VOCAB = 40


def _docs(lists):
    return ((f"doc{i}", np.asarray(t, dtype=np.int64), {"n": i}) for i, t in enumerate(lists))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    rng = random.Random(5)
    lists = [[rng.randrange(VOCAB) for _ in range(rng.randrange(1, 60))] for _ in range(50)]
    lists += [lists[4], lists[4][3:], [7] * 30, lists[10] + lists[11]]  # repeats across shards
    lists.insert(20, [rng.randrange(VOCAB) for _ in range(400)])  # larger than a shard: a shard of its own
    root = tmp_path_factory.mktemp("shards")
    one = build_index_from_ids(_docs(lists), root / "one", vocab_size=VOCAB, eos_token_id=0, cpus=1)
    many = build_sharded_index_from_ids(_docs(lists), root / "many", vocab_size=VOCAB, eos_token_id=0,
                                        shard_tokens=250, parallel=2)
    return lists, one, many, root / "many"


def test_layout_is_independent_shards(pair):
    lists, _one, many, folder = pair
    info = json.loads((folder / SHARDS_FILE).read_text())
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert names == [s["name"] for s in info["shards"]] == [shard_name(i) for i in range(len(names))]
    assert len(names) >= 6 and len(many._shards) == len(names)
    assert sum(s["num_docs"] for s in info["shards"]) == len(lists)
    for s in info["shards"]:  # bounded shards; only a single document may exceed the bound
        assert s["num_tokens"] <= 250 or s["num_docs"] == 1
        assert (folder / s["name"] / fmt.MANIFEST).is_file() and (folder / s["name"] / fmt.TABLE).is_file()
    assert not (folder / fmt.BUILDING).exists()
    # the reopened folder is the same index
    again = CorpusIndex.open(folder)
    assert again.fingerprint == many.fingerprint and again.num_tokens == many.num_tokens


def test_documents_and_counts_equal_one_shard_and_brute_force(pair):
    lists, one, many, _folder = pair
    assert (many.num_docs, many.num_tokens) == (one.num_docs, one.num_tokens) == (len(lists), sum(map(len, lists)))
    for i, t in enumerate(lists):
        assert many.doc_tokens(i) == one.doc_tokens(i) == list(t)
        assert many.doc_id(i) == one.doc_id(i) == f"doc{i}"
    assert np.array_equal(many.unigram_counts(), one.unigram_counts())
    assert np.array_equal(many.doc_lengths(), one.doc_lengths())
    rng = random.Random(1)
    queries = [list(lists[d][a:a + n]) for d, a, n in
               ((rng.randrange(len(lists)), rng.randrange(5), rng.randrange(1, 9)) for _ in range(150))]
    queries += [[rng.randrange(VOCAB) for _ in range(rng.randrange(1, 4))] for _ in range(80)]
    queries = [q for q in queries if q]
    many.prefetch(queries[::2])  # the vectorised range search and the engine must agree too
    for q in queries:
        want = brute_count(lists, q)
        assert many.count(q) == one.count(q) == want, q
        assert many.distinct_docs(q, 5) == one.distinct_docs(q, 5)
        for spread in ("random", "even"):  # all occurrences, or the same sample of them
            got = [(o.doc_ix, o.start, o.doc_len) for o in many.occurrences(q, 12, seed=3, spread=spread)]
            assert got == [(o.doc_ix, o.start, o.doc_len) for o in one.occurrences(q, 12, seed=3, spread=spread)]
            assert len(got) == min(12, want)
            assert all(lists[d][s:s + len(q)] == q for d, s, _ in got)


def test_above_the_corpus_order_limit_samples_depend_on_the_layout(pair, monkeypatch):
    import core.index.corpus_index as ci

    lists, one, many, _folder = pair
    q = [7, 7]  # in the run of thirty 7s and elsewhere
    assert brute_count(lists, q) > 12
    monkeypatch.setattr(ci, "CORPUS_ORDER_LIMIT", 12)  # every sample of q now in suffix-array order
    a, b = many.occurrences(q, 12, seed=3), one.occurrences(q, 12, seed=3)
    assert all(lists[o.doc_ix][o.start:o.start + 2] == q for o in a + b) and len(a) == len(b) == 12
    assert any([(o.doc_ix, o.start) for o in many.occurrences(q, 12, seed=s)]
               != [(o.doc_ix, o.start) for o in one.occurrences(q, 12, seed=s)] for s in range(5))


def test_longest_matches_equal_brute_force(pair):
    lists, one, many, _folder = pair
    rng = random.Random(2)
    qs = [list(lists[rng.randrange(len(lists))][:20]) + [rng.randrange(VOCAB) for _ in range(10)]
          + list(lists[rng.randrange(len(lists))][5:25]) for _ in range(25)]
    got = many.longest_matches_many(qs)
    assert got == one.longest_matches_many(qs)
    assert got == [brute_longest(lists, q) for q in qs]
    assert many.longest_matches_engine(qs[0]) == got[0]


def test_traces_like_one_shard(tmp_path):
    rng = random.Random(8)
    texts = random_corpus(rng, n_docs=40, words_per_doc=60)
    texts += [texts[2]] * 3 + [texts[9]] * 12  # spans that occur more often than docs_per_span
    tok = byte_bpe_tokenizer(texts, vocab_size=300)
    ids = [np.asarray(i, dtype=np.int64) for i, _ in tokenize(tok, texts)]

    def docs():
        return ((f"t{i}", a, {}) for i, a in enumerate(ids))

    kw = {"vocab_size": len(tok), "eos_token_id": tok.eos_token_id}
    one = build_index_from_ids(docs(), tmp_path / "one", cpus=1, **kw)
    many = build_sharded_index_from_ids(docs(), tmp_path / "many", shard_tokens=400, parallel=2, **kw)
    assert len(many._shards) >= 5
    comps = []
    for i in range(24):
        src = texts[(i * 5) % len(texts)]
        a = rng.randrange(0, len(src) // 2)
        comps.append(("ok " if i % 2 else "") + src[a:a + rng.randrange(40, 180)])
    comps.append(texts[9])
    items = [(GenKey("s", str(i)), c) for i, c in enumerate(comps)]
    for cfg in (TraceConfig(workers=1, docs_per_span=4), TraceConfig(mode="mixed", workers=2, docs_per_span=4)):
        want = trace_many(one, tok, items, cfg)
        got = trace_many(many, tok, items, cfg)
        assert got == want  # spans, counts, frequencies, sampled documents, windows, tiers, nv_recall
        frequent = sum(s.count > cfg.docs_per_span for r in want for s in r.spans)
        assert frequent > 0 and sum(len(s.docs) for r in got for s in r.spans) > 50
    from core.tracing import parallel

    parallel.shutdown()


def test_unfinished_or_failed_sharded_build_refuses_to_open(tmp_path):
    lists = [[1, 2, 3]] * 10 + [[1, VOCAB + 5]] + [[4, 5]] * 10  # an id outside the vocabulary in shard 3
    with pytest.raises(IndexNotBuilt, match="outside"):
        build_sharded_index_from_ids(_docs(lists), tmp_path / "bad", vocab_size=VOCAB, eos_token_id=0,
                                     shard_tokens=12, parallel=2)
    with pytest.raises(IndexNotBuilt, match="did not finish"):
        CorpusIndex.open(tmp_path / "bad")
    # a rebuild into the same folder replaces the old shards and opens
    good = build_sharded_index_from_ids(_docs(lists[:10]), tmp_path / "bad", vocab_size=VOCAB, eos_token_id=0,
                                        shard_tokens=12, parallel=2)
    assert good.num_docs == 10 and len(good._shards) == 4
    assert sorted(p.name for p in (tmp_path / "bad").iterdir() if p.is_dir()) == [shard_name(i) for i in range(4)]


def test_shard_size_keeps_the_sorts_within_the_budget():
    for budget in (1 << 30, 4 << 30, 16 << 30):
        for parallel in (1, 2, 4):
            for width in (2, 4):
                n = plan_shard_tokens(budget, parallel, width)
                assert SA_RAM_PER_BYTE * n * width * parallel <= budget
                assert SA_RAM_PER_BYTE * n * width * parallel >= 0.7 * budget
                n = plan_shard_tokens(budget, parallel, width, ram_per_token=8)  # libsais sorts
                assert 0.7 * budget <= 8 * n * parallel <= budget


def test_cli_builds_a_sharded_index_that_answers_like_one_index(tmp_path, capsys):
    import json as _json

    from core.cli import main
    from tests.fixtures_index import train_tiny_tokenizer

    rng = random.Random(12)
    texts = random_corpus(rng, n_docs=30, words_per_doc=40) + ["the same words again"] * 6
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(_json.dumps({"id": f"c{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    tok = train_tiny_tokenizer(texts, 300, folder=tmp_path / "tok")
    common = ["index", "build", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "tok")]
    # --holdout-docs 0: a sharded build holds nothing out as a chance floor, so the single index keeps every
    # document too (the same documents in both)
    assert main([*common, "--out", str(tmp_path / "one"), "--cpus", "1", "--holdout-docs", "0"]) == 0
    assert main([*common, "--out", str(tmp_path / "many"), "--shard-tokens", "300", "--cpus", "2",
                 "--memory-mb", "256"]) == 0
    out = capsys.readouterr().out
    many, one = CorpusIndex.open(tmp_path / "many", tokenizer=tok), CorpusIndex.open(tmp_path / "one", tokenizer=tok)
    assert len(many.dirs) >= 3 and f"in {len(many.dirs)} shards" in out
    info = _json.loads((tmp_path / "many" / SHARDS_FILE).read_text())
    assert info["shard_tokens"] == 300 and all(s["num_tokens"] + s["num_docs"] <= 300 for s in info["shards"])
    assert (many.num_docs, many.num_tokens) == (one.num_docs, one.num_tokens) == (36, one.num_tokens)
    assert [many.doc_id(i) for i in range(36)] == [f"c{i}" for i in range(36)]
    ids = tok("the same words again", add_special_tokens=False)["input_ids"]
    assert many.count(ids) == one.count(ids) >= 6
    assert many.occurrences(ids, 3, seed=1) == one.occurrences(ids, 3, seed=1)
    assert main([*common, "--out", str(tmp_path / "bad"), "--shard-tokens", "0"]) == 2
