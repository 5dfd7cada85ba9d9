"""Tracing's fast paths give exactly the results of the plain ones on a real index.

Fast: spans batched across completions (``longest_matches_many``), kept spans' ranges prefetched
(``prefetch``), windows decoded from a byte table (core/index/byte_decode.py) and cached per span within a
run. Plain: one completion per call, engine lookups, the tokenizer's own decode, no shared state.
"""
from __future__ import annotations

import random

import pytest

import core.tracing.windows
from core.config import TraceConfig
from core.records import GenKey
from core.tracing.trace import trace_completion, trace_many
from tests.fixtures_trace import byte_bpe_tokenizer, metaspace_tokenizer, random_corpus


class PlainIndex:
    """The real index without its batched methods (tracing then calls the engine per query)."""

    longest_matches_many = None
    prefetch = None

    def __init__(self, index):
        self._index = index

    def __getattr__(self, name):
        return getattr(self._index, name)


@pytest.fixture(scope="module", params=["byte", "meta"])
def case(request, tmp_path_factory):
    from core.corpus.load import Document
    from core.index.build import build_index

    rng = random.Random(3)
    texts = random_corpus(rng, n_docs=12, words_per_doc=60)
    texts += [texts[2]] * 3  # a repeated document: spans with several occurrences
    make = byte_bpe_tokenizer if request.param == "byte" else metaspace_tokenizer
    tok = make(texts, vocab_size=300)
    index = build_index([Document(f"d{i}", t, {}) for i, t in enumerate(texts)], tok,
                        tmp_path_factory.mktemp("fast") / "idx", cpus=1)
    comps = []
    for i in range(16):  # copies of the same passages recur across completions (repeated spans)
        src = texts[i % 4]
        a = rng.randrange(0, len(src) // 2)
        comps.append(("xq " if i % 3 else "") + src[a:a + rng.randrange(30, 160)] + (" zz" if i % 2 else ""))
    comps += [comps[0], "", "a"]
    return tok, index, comps


@pytest.mark.parametrize("mode,merge", [("text", "union"), ("mixed", "union"), ("text", "always")])
def test_fast_paths_equal_plain_tracing(case, mode, merge, monkeypatch):
    tok, index, comps = case
    cfg = TraceConfig(mode=mode, merge=merge, docs_per_span=4, window_factor=3)
    items = [(GenKey("g", str(i)), c) for i, c in enumerate(comps)]
    fast = trace_many(index, tok, items, cfg)
    monkeypatch.setattr(core.tracing.windows, "byte_decoder", lambda tokenizer: None)
    plain = [trace_completion(PlainIndex(index), tok, key, text, cfg) for key, text in items]
    assert fast == plain
    assert sum(len(s.docs) for t in fast for s in t.spans) > 20  # documents were really compared
