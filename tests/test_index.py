"""CorpusIndex against brute-force oracles: counts, maximal spans, occurrences, windows, manifests."""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import CorpusError, IndexMismatch, IndexNotBuilt, ModelLoadError, QueryOutOfRange
from core.index import layout as fmt
from core.index.build import build_index, build_index_from_ids
from core.index.corpus_index import CorpusIndex
from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint
from tests.fixtures_index import (
    TinyDoc,
    brute_count,
    brute_longest,
    build_ids_index,
    build_tiny_index,
    train_tiny_tokenizer,
    wordlevel_tokenizer,
)

VOCAB = 8  # ids 0..7; small alphabets make long repeats likely
corpora = st.lists(st.lists(st.integers(1, VOCAB - 1), max_size=40), min_size=1, max_size=8)
slow_build = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _with_copies(docs: list[list[int]], data) -> list[list[int]]:
    """Repeat some documents and plant slices of others inside new ones."""
    docs = list(docs)
    pool = sorted({t for d in docs for t in d}) or [1]
    if data.draw(st.booleans()):
        docs.append(list(data.draw(st.sampled_from(docs))))
    src = data.draw(st.sampled_from(docs))
    if src:
        i = data.draw(st.integers(0, len(src) - 1))
        docs.append(data.draw(st.lists(st.sampled_from(pool), max_size=5)) + src[i:i + 12])
    return docs


@slow_build
@given(corpora, st.data())
def test_count_equals_brute_force(docs, data):
    docs = _with_copies(docs, data)
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", VOCAB)
        for _ in range(15):
            query = data.draw(st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=4))
            assert index.count(query) == brute_count(docs, query)
        assert index.num_tokens == sum(map(len, docs)) and index.num_docs == len(docs)


@slow_build
@given(corpora, st.data())
def test_longest_matches_equal_brute_force(docs, data):
    docs = _with_copies(docs, data)
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", VOCAB)
        for _ in range(5):
            query = data.draw(st.lists(st.integers(0, VOCAB - 1), max_size=25))
            if data.draw(st.booleans()):  # plant a true copy, possibly spanning two documents
                flat = [t for d in docs for t in d]
                i = data.draw(st.integers(0, max(0, len(flat) - 1)))
                query = query[:5] + flat[i:i + 15] + query[5:]
            assert index.longest_matches(query) == brute_longest(docs, query)


# ids whose bytes look like the 0xFF separator, or differ only in their high byte
TRICKY = {"u16": ([1, 255, 256, 511, 0xFF00, 0xFFFE], 0xFFFF), "u32": ([1, 255, 0xFFFF, 0x10000, 0xFFFF00, 0x1FF], 0xFFFF01)}


@pytest.mark.parametrize("dtype", ["u16", "u32"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tricky_token_ids_count_and_match_exactly(dtype, data):
    alphabet, vocab = TRICKY[dtype]
    tokens = st.sampled_from(alphabet)
    docs = data.draw(st.lists(st.lists(tokens, max_size=30), min_size=1, max_size=6))
    docs = _with_copies(docs, data) if any(docs) else docs
    with tempfile.TemporaryDirectory() as tmp:
        index = build_ids_index(docs, Path(tmp) / "ix", vocab)
        assert index.token_dtype == dtype
        for _ in range(8):
            query = data.draw(st.lists(tokens, min_size=1, max_size=4))
            assert index.count(query) == brute_count(docs, query)
        query = data.draw(st.lists(tokens, max_size=20))
        assert index.longest_matches(query) == brute_longest(docs, query)


@slow_build
@given(corpora, st.data())
def test_longest_matches_across_two_shards_equal_brute_force(docs, data):
    docs = _with_copies(docs, data)
    cut = data.draw(st.integers(0, len(docs)))
    if cut in (0, len(docs)):
        docs = docs + [[1]] if cut == len(docs) else [[1]] + docs
        cut = max(1, min(cut, len(docs) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        build_ids_index(docs[:cut], Path(tmp) / "a", VOCAB)
        build_ids_index(docs[cut:], Path(tmp) / "b", VOCAB)
        index = CorpusIndex.open([Path(tmp) / "a", Path(tmp) / "b"])
        for _ in range(4):
            query = data.draw(st.lists(st.integers(0, VOCAB - 1), max_size=20))
            if data.draw(st.booleans()):
                src = data.draw(st.sampled_from(docs))
                query = query[:4] + src[:12] + query[4:]
            assert index.longest_matches(query) == brute_longest(docs, query)
            assert all(index.count(query[:1 + i]) == brute_count(docs, query[:1 + i]) for i in range(min(3, len(query))))


def test_longest_match_in_a_shard_where_the_query_sorts_first(tmp_path):
    # [1, 3, 4] sorts before shard a's first suffix [1, 3, 5] (the engine reports 0 there) while
    # shard b reports 1 from [1, 2]; the true answer is 2.
    build_ids_index([[1, 3, 5]], tmp_path / "a", VOCAB)
    build_ids_index([[1, 2]], tmp_path / "b", VOCAB)
    index = CorpusIndex.open([tmp_path / "a", tmp_path / "b"])
    assert index.longest_matches([1, 3, 4]) == brute_longest([[1, 3, 5], [1, 2]], [1, 3, 4]) == [2, 1, 0]


def test_longest_match_when_query_sorts_before_every_suffix(tmp_path):
    # infini-gram's creativity() inspects no neighbour at rank 0 and reports 0 here.
    index = build_ids_index([[1, 3]], tmp_path / "ix", VOCAB)
    assert index.longest_matches([1, 2]) == [1, 0]
    assert index.longest_matches([1, 3, 1]) == [2, 1, 1]


def _ngram_count(docs_flat: np.ndarray, query: list[int]) -> int:
    n = len(query)
    windows = np.lib.stride_tricks.sliding_window_view(docs_flat, n)
    return int(np.all(windows == np.asarray(query), axis=1).sum())


@pytest.mark.parametrize("num_tokens,cpus,memory", [(95_000, 2, 1 << 30), (105_000, 2, 1 << 30),
                                                    (600_000, 2, 1 << 30), (600_000, 2, 3 << 20)])
def test_counts_around_the_small_file_boundary(tmp_path, num_tokens, cpus, memory):
    """u16 files near 200 KB (where 2 rust jobs used to fail), a 1.2 MB one built with 2 parallel jobs,
    and the same with a memory cap that splits it into several batches of jobs."""
    rng = np.random.default_rng(num_tokens)
    lengths = rng.integers(50, 400, size=num_tokens // 200)
    docs = [rng.integers(1, 40, size=n) for n in lengths]
    docs.append(docs[3].copy())
    ids = ((f"d{i}", d, {}) for i, d in enumerate(docs))
    index = build_index_from_ids(ids, tmp_path / "ix", vocab_size=40, eos_token_id=0, cpus=cpus,
                                 max_memory_bytes=memory)
    flat = np.concatenate([np.append(d, -1) for d in docs])  # -1 never matches a query id
    for n in (1, 2, 3, 5):
        for _ in range(6):
            d = docs[int(rng.integers(len(docs)))]
            i = int(rng.integers(0, len(d) - n))
            query = d[i:i + n].tolist()
            assert index.count(query) == _ngram_count(flat, query)
    long_query = docs[3][10:60].tolist()
    assert index.count(long_query) == _ngram_count(flat, long_query) >= 2


def test_multi_shard_from_two_folders_and_a_parent_folder(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.integers(1, VOCAB, size=int(rng.integers(0, 60))).tolist() for _ in range(30)]
    build_ids_index(docs[:12], tmp_path / "shards" / "a", VOCAB)
    build_ids_index(docs[12:], tmp_path / "shards" / "b", VOCAB)
    both = CorpusIndex.open([tmp_path / "shards" / "a", tmp_path / "shards" / "b"])
    parent = CorpusIndex.open(tmp_path / "shards")
    assert both.num_docs == parent.num_docs == 30 and both.fingerprint == parent.fingerprint
    for _ in range(40):
        query = rng.integers(1, VOCAB, size=int(rng.integers(1, 4))).tolist()
        assert both.count(query) == parent.count(query) == brute_count(docs, query)
        for occ in both.occurrences(query, k=50, seed=0):
            assert docs[occ.doc_ix][occ.start:occ.start + len(query)] == query
            assert occ.doc_id == f"d{occ.doc_ix - (12 if occ.doc_ix >= 12 else 0)}"
    query = rng.integers(1, VOCAB, size=12).tolist()
    assert both.longest_matches(query) == brute_longest(docs, query)
    assert both.doc_tokens(20) == docs[20] and both.doc_lengths().tolist() == [len(d) for d in docs]


def test_occurrences_are_true_sampled_by_seed_and_spread(tmp_path):
    rng = np.random.default_rng(2)
    docs = [rng.integers(1, 4, size=int(rng.integers(5, 50))).tolist() for _ in range(40)]
    index = build_ids_index(docs, tmp_path / "ix", VOCAB)
    query = [1, 2]
    truth = {(i, s) for i, d in enumerate(docs) for s in range(len(d) - 1) if d[s:s + 2] == query}
    every = index.occurrences(query, k=10_000, seed=0)
    assert {(o.doc_ix, o.start) for o in every} == truth
    assert all(o.doc_len == len(docs[o.doc_ix]) and o.doc_id == f"d{o.doc_ix}" for o in every)
    a, b = index.occurrences(query, 7, seed=5), index.occurrences(query, 7, seed=5)
    assert a == b and len(a) == 7 and {(o.doc_ix, o.start) for o in a} <= truth
    assert len({tuple(index.occurrences(query, 7, seed=s)) for s in range(5)}) > 1
    even = index.occurrences(query, 7, seed=0, spread="even")
    assert len(set(even)) == 7 and {(o.doc_ix, o.start) for o in even} <= truth
    in_order = sorted(truth)  # the sample is taken in corpus order: an oracle that needs no suffix array
    for seed in range(4):
        picks = np.sort(np.random.default_rng(seed).choice(len(in_order), size=7, replace=False))
        assert [(o.doc_ix, o.start) for o in index.occurrences(query, 7, seed=seed)] == [in_order[i] for i in picks]
    assert [(o.doc_ix, o.start) for o in even] == [in_order[i * len(in_order) // 7] for i in range(7)]
    docs_with = {i for i, _ in truth}
    assert index.distinct_docs(query, cap=1000) == len(docs_with)
    assert index.distinct_docs(query, cap=3) == min(3, len(docs_with))
    assert index.occurrences([7, 7, 7, 7], 5, seed=0) == [] and index.distinct_docs([7, 7, 7, 7], 5) == 0


def test_doc_window_is_centred_and_clipped(tmp_path):
    docs = [list(range(1, 8)) * 3, [5, 6]]
    index = build_ids_index(docs, tmp_path / "ix", VOCAB)
    occ = next(o for o in index.occurrences([3, 4], 10, seed=0) if o.doc_ix == 0 and o.start == 9)
    window, at = index.doc_window(occ, match_len=2, window_tokens=6)
    assert window == docs[0][7:13] and window[at:at + 2] == [3, 4]
    first = next(o for o in index.occurrences([1, 2], 10, seed=0) if o.start == 0)
    window, at = index.doc_window(first, match_len=2, window_tokens=10)
    assert at == 0 and window == docs[0][:6]
    short = index.occurrences([5, 6], 10, seed=0)[-1]
    assert short.doc_ix == 1 and index.doc_window(short, 2, 50) == ([5, 6], 0)


def test_text_index_round_trips_documents_and_metadata(tmp_path):
    texts = ["Der Bär läuft über die Brücke. 東京は大きい。", "def f(x):\n    return x * 2\n", "",
             "Der Bär läuft über die Brücke. 東京は大きい。", "emoji 🙂 and more text here"]
    docs = [TinyDoc(f"row-{i}", t, {"source": "unit", "n": i}) for i, t in enumerate(texts)]
    tok = train_tiny_tokenizer(texts, 320, tmp_path / "tok")
    index = build_index(docs, tok, tmp_path / "ix", cpus=1)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert [index.doc_tokens(i) for i in range(len(texts))] == ids
    assert index.doc_id(4) == "row-4" and index.doc_metadata(4) == {"source": "unit", "n": 4}
    phrase = tok(" über die Brücke", add_special_tokens=False)["input_ids"]
    count, occs = index.search(" über die Brücke", tokenizer=tok)
    assert count == brute_count(ids, phrase) == 2 and {o.doc_ix for o in occs} == {0, 3}
    counts = np.bincount(np.concatenate([np.asarray(i, dtype=np.int64) for i in ids if i]),
                         minlength=index.vocab_size)
    assert np.array_equal(index.unigram_counts(), counts)
    logp = index.unigram_log_probs()
    assert np.all(np.isfinite(logp)) and np.isclose(logp[ids[0][0]], np.log(counts[ids[0][0]] / index.num_tokens))
    assert index.tokenizer_fingerprint == tokenizer_fingerprint(tok) and index.manifest["num_docs"] == 5


def test_same_corpus_gives_the_same_fingerprint(tmp_path):
    docs = [[1, 2, 3], [4, 5], [1, 2]]
    a = build_ids_index(docs, tmp_path / "a", VOCAB)
    b = build_ids_index(docs, tmp_path / "b", VOCAB)
    c = build_ids_index([[1, 2, 3], [4, 5], [1, 3]], tmp_path / "c", VOCAB)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert len(a.fingerprint) == 64


def test_unfinished_builds_are_refused(tmp_path):
    build_ids_index([[1, 2, 3], [4, 5]], tmp_path / "ix", VOCAB)
    shutil.copytree(tmp_path / "ix", tmp_path / "trunc")
    (tmp_path / "ix" / fmt.MANIFEST).unlink()
    with pytest.raises(IndexNotBuilt, match=re.escape(f"No finished index at {tmp_path / 'ix'}")):
        CorpusIndex.open(tmp_path / "ix")
    with open(tmp_path / "trunc" / fmt.TOKENS, "r+b") as f:
        f.truncate(4)
    with pytest.raises(IndexNotBuilt, match="tokenized.0 has 4 bytes, the manifest says"):
        CorpusIndex.open(tmp_path / "trunc")
    (tmp_path / "trunc" / fmt.BUILDING).write_text("")
    with pytest.raises(IndexNotBuilt, match="did not finish"):
        CorpusIndex.open(tmp_path / "trunc")
    with pytest.raises(IndexNotBuilt, match="does not exist"):
        CorpusIndex.open(tmp_path / "missing")


def test_prebuilt_infini_gram_folder_opens_without_manifest(tmp_path):
    docs = [[1, 2, 3, 1, 2], [2, 3], [7, 1, 2]]
    ours = build_ids_index(docs, tmp_path / "ours", VOCAB)
    (tmp_path / "plain").mkdir()
    for name in fmt.SHARD_FILES:
        shutil.copy(tmp_path / "ours" / name, tmp_path / "plain" / name)
    # metadata lines as infini-gram's indexer writes them; document 1 has no id
    lines = [json.dumps({"path": "a.jsonl", "linenum": i, "metadata": {"id": f"x{i}"} if i != 1 else {}}) + "\n"
             for i in range(3)]
    (tmp_path / "plain" / fmt.META).write_text("".join(lines))
    starts = np.cumsum([0] + [len(x.encode()) for x in lines[:-1]]).astype(np.uint64)
    (tmp_path / "plain" / fmt.METAOFF).write_bytes(starts.tobytes())
    plain = CorpusIndex.open(tmp_path / "plain")
    assert plain.token_dtype == "u16" and plain.tokenizer_fingerprint is None
    assert plain.count([1, 2]) == ours.count([1, 2]) == 3
    assert np.array_equal(plain.unigram_counts()[:VOCAB], ours.unigram_counts())
    assert [plain.doc_id(i) for i in range(3)] == ["x0", "1", "x2"]
    assert plain.doc_metadata(2)["linenum"] == 2 and plain.doc_tokens(2) == [7, 1, 2]
    with open(tmp_path / "plain" / fmt.OFFSETS, "ab") as f:  # a broken prebuilt shard is refused, not opened
        f.write(b"\0")
    with pytest.raises(IndexNotBuilt, match="offset.0 has 25 bytes, not a multiple of 8"):
        CorpusIndex.open(tmp_path / "plain")


def test_tokenizer_mismatch_names_both(tmp_path):
    tok_a = train_tiny_tokenizer(["alpha beta gamma"] * 3, 280, tmp_path / "tok_a")
    tok_b = train_tiny_tokenizer(["zeta eta theta iota"] * 3, 290, tmp_path / "tok_b")
    build_tiny_index(["alpha beta", "gamma"], tmp_path / "ix", tokenizer=tok_a)
    CorpusIndex.open(tmp_path / "ix", tokenizer=load_tokenizer(str(tmp_path / "tok_a")))
    with pytest.raises(IndexMismatch, match=re.escape(str(tmp_path / "tok_a"))) as err:
        CorpusIndex.open(tmp_path / "ix", tokenizer=tok_b)
    assert str(tmp_path / "tok_b") in str(err.value)


def test_load_tokenizer_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="No tokenizer files in"):
        load_tokenizer(str(tmp_path / "empty"))
    tok = wordlevel_tokenizer(50, tmp_path / "wl")
    assert tokenizer_fingerprint(load_tokenizer(str(tmp_path / "wl"))) == tokenizer_fingerprint(tok)


def test_u32_tokens_for_a_large_vocab(tmp_path):
    tok = wordlevel_tokenizer(70_000)
    texts = ["w69999 w65535 w3 w70 w69999 w65535", "w65535 w69999 w1", "w3 w70"]
    index = build_index([TinyDoc(f"d{i}", t) for i, t in enumerate(texts)], tok, tmp_path / "ix", cpus=1)
    assert index.token_dtype == "u32" and index.vocab_size == 70_000
    ids = [tok(t)["input_ids"] for t in texts]
    assert index.count([69999, 65535]) == brute_count(ids, [69999, 65535]) == 2
    assert index.count([65535, 69999]) == brute_count(ids, [65535, 69999]) == 1
    assert index.doc_tokens(1) == [65535, 69999, 1]
    query = [3, 70, 69999, 65535, 3, 5, 65535, 69999, 1]
    assert index.longest_matches(query) == brute_longest(ids, query)
    assert (tmp_path / "ix" / fmt.TOKENS).stat().st_size == 4 * (index.num_tokens + index.num_docs)


def test_bad_queries_and_empty_corpus(tmp_path):
    index = build_ids_index([[1, 2]], tmp_path / "ix", VOCAB)
    with pytest.raises(QueryOutOfRange, match=r"token id 8 outside \[0, 8\)"):
        index.count([8])
    with pytest.raises(QueryOutOfRange, match="doc_ix 1 outside"):
        index.doc_tokens(1)
    with pytest.raises(CorpusError, match="corpus is empty"):
        build_index([], wordlevel_tokenizer(10), tmp_path / "empty")


def test_progress_reports_every_stage(tmp_path):
    events = []
    tok = wordlevel_tokenizer(20)
    build_index([TinyDoc("a", "w1 w2 w3"), TinyDoc("b", "w2 w3")], tok, tmp_path / "ix", progress=events.append, cpus=1)
    stages = [e.stage for e in events]
    assert {"tokenize", "write", "suffix-array", "unigrams"} <= set(stages)
    assert events[-1].stage == "suffix-array" or stages.index("suffix-array") > stages.index("tokenize")
    manifest = json.loads((tmp_path / "ix" / fmt.MANIFEST).read_text())
    assert manifest["num_tokens"] == 5 and manifest["token_dtype"] == "u16"


def test_build_tiny_index_trains_its_own_tokenizer(tmp_path):
    index = build_tiny_index(["the cat sat on the mat", "the dog sat"], tmp_path / "ix")
    tok = load_tokenizer(str(tmp_path / "tiny_tokenizer"))
    index.check_tokenizer(tok)
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in ["the cat sat on the mat", "the dog sat"]]
    phrase = tok(" sat", add_special_tokens=False)["input_ids"]
    assert index.count(phrase) == brute_count(ids, phrase) == 2


def test_unreachable_hub_id_is_a_model_load_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never touch the network
    with pytest.raises(ModelLoadError, match=re.escape("Cannot load a tokenizer from hub id")):
        load_tokenizer("nobody/no-such-tokenizer-xyz")


def test_folder_names_holding_engine_keywords(tmp_path):
    # infini-gram picks its files by words found anywhere in the path; such folders must still work
    docs = [[1, 2, 3], [2, 3, 4]]
    index = build_ids_index(docs, tmp_path / "metadata_table" / "offset.tokenized", VOCAB)
    assert index.count([2, 3]) == 2 and index.longest_matches([1, 2, 3, 4]) == brute_longest(docs, [1, 2, 3, 4])
    assert index.doc_id(1) == "d1"
