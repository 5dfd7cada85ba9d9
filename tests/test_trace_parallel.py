"""Tracing on several worker processes gives exactly the results of one process.

The parallel path (core/tracing/parallel.py) reopens the index in each worker and traces chunks of
completions there; every TraceResult (spans, counts, sampled documents, windows, tiers, nv_recall)
must equal the one-process result, and the spans must equal those of a brute-force index.
"""
from __future__ import annotations

import logging
import random

import pytest

from core.config import TraceConfig
from core.errors import ConfigError
from core.records import GenKey
from core.tracing import parallel
from core.tracing.trace import trace_many
from tests.fixtures_trace import BruteIndex, byte_bpe_tokenizer, metaspace_tokenizer, random_corpus


def span_facts(results):
    """What a brute-force index must agree on: spans, their counts, and whole-completion frequency."""
    return [[(s.start, s.end, s.count) for s in r.spans] + [r.full_doc_frequency] for r in results]


@pytest.fixture(scope="module", params=["byte", "meta"])
def case(request, tmp_path_factory):
    from core.corpus.load import Document
    from core.index.build import build_index

    rng = random.Random(11)
    texts = random_corpus(rng, n_docs=24, words_per_doc=50)
    texts += [texts[3]] * 4  # a repeated document: spans with more occurrences than docs_per_span
    make = byte_bpe_tokenizer if request.param == "byte" else metaspace_tokenizer
    tok = make(texts, vocab_size=300)
    index = build_index([Document(f"d{i}", t, {}) for i, t in enumerate(texts)], tok,
                        tmp_path_factory.mktemp("par") / "idx", cpus=1)
    comps = []
    for i in range(22):
        src = texts[i % 12]
        a = rng.randrange(0, len(src) // 2)
        comps.append(("qq " if i % 3 else "") + src[a:a + rng.randrange(40, 140)] + (" zz" if i % 2 else ""))
    comps += [comps[5], comps[7], "", "a", texts[3]]  # repeats, too short, a whole document
    yield request.param, tok, index, texts, [(GenKey("g", str(i)), c) for i, c in enumerate(comps)]
    parallel.shutdown()


@pytest.mark.parametrize("mode,merge", [("text", "union"), ("mixed", "union"), ("text", "always")])
def test_parallel_equals_one_worker(case, mode, merge):
    kind, tok, index, _texts, items = case
    one = trace_many(index, tok, items, TraceConfig(mode=mode, merge=merge, docs_per_span=3, workers=1))
    for workers in (2, 3) if (kind, mode, merge) == ("byte", "text", "union") else (2,):
        got = trace_many(index, tok, items, TraceConfig(mode=mode, merge=merge, docs_per_span=3, workers=workers))
        assert parallel._POOL is not None and len(parallel._POOL.workers) == workers  # really in workers
        assert all(w.proc.poll() is None for w in parallel._POOL.workers)
        assert got == one
    assert [r.key for r in one] == [k for k, _ in items]
    assert sum(len(s.docs) for r in one for s in r.spans) > 30  # documents were really compared
    assert any(s.count > 3 for r in one for s in r.spans)  # sampled, not all occurrences


@pytest.mark.slow  # worker processes against the brute-force oracle (test_parallel_equals_one_worker stays fast)
def test_parallel_spans_equal_brute_force(case):
    _kind, tok, index, texts, items = case
    items = items[:18] + items[-3:]
    got = trace_many(index, tok, items, TraceConfig(workers=2))
    want = trace_many(BruteIndex.from_texts(texts, tok), tok, items, TraceConfig(workers=1))
    assert span_facts(got) == span_facts(want)
    for g, w in zip(got, want):  # spans occurring at most docs_per_span times: all their documents
        for gs, ws in zip(g.spans, w.spans):
            if ws.count <= TraceConfig().docs_per_span:
                assert {d.doc_id for d in gs.docs} == {d.doc_id for d in ws.docs}


def test_pool_is_reused_and_progress_counts_every_item(case):
    _kind, tok, index, _texts, items = case
    trace_many(index, tok, items, TraceConfig(workers=2))
    pids = [w.proc.pid for w in parallel._POOL.workers]
    events = []
    trace_many(index, tok, items, TraceConfig(workers=2, docs_per_span=2), progress=events.append)
    assert [w.proc.pid for w in parallel._POOL.workers] == pids  # no new start-up
    assert events[-1].done == events[-1].total == len(items)
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_a_dead_worker_falls_back_to_this_process(case, caplog):
    kind, tok, index, _texts, items = case
    if kind != "byte":
        pytest.skip("the pool's behaviour does not depend on the tokenizer")
    want = trace_many(index, tok, items, TraceConfig(workers=1))
    trace_many(index, tok, items, TraceConfig(workers=2))
    victim = parallel._POOL.workers[0].proc
    victim.kill()
    victim.wait()
    with caplog.at_level(logging.WARNING, logger="core.tracing.parallel"):
        got = trace_many(index, tok, items, TraceConfig(workers=2))
    assert got == want
    assert "tracing in this process instead" in caplog.text
    assert trace_many(index, tok, items, TraceConfig(workers=2)) == want  # a fresh pool next time
    assert all(w.proc.poll() is None for w in parallel._POOL.workers)


def test_few_completions_or_a_wrapped_index_stay_in_this_process(case):
    kind, tok, index, _texts, items = case
    if kind != "byte":
        pytest.skip("the pool's behaviour does not depend on the tokenizer")
    parallel.shutdown()
    trace_many(index, tok, items[:15], TraceConfig(workers=4))  # under 2 * MIN_CHUNK: not worth a worker
    assert parallel._POOL is None

    class Wrapped:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            return getattr(self._inner, name)

    assert trace_many(Wrapped(index), tok, items, TraceConfig(workers=2)) == trace_many(
        index, tok, items, TraceConfig(workers=1))
    assert parallel._POOL is None


def test_workers_setting():
    assert TraceConfig().workers == 0
    assert parallel.resolve_workers(0) == parallel.available_cores() >= 1
    with pytest.raises(ConfigError, match="workers"):
        TraceConfig(workers=-1)
    for n in range(0, 200, 7):
        for w in (1, 2, 3, 8):
            chunks = parallel.plan_chunks(n, w)
            assert [i for a, b in chunks for i in range(a, b)] == list(range(n))
