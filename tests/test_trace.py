"""SimpleTrace against an independent brute-force oracle, on the brute index and the real index.

The oracle below re-derives every step from token strings and n-gram sets (no code shared with
core.tracing.trace): maximal span per start, admissibility, suppression, rarity, counts and documents.
ALS and FMR are then recomputed by brute force from the corpus texts.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import TraceConfig
from core.corpus.load import Document
from core.errors import IndexMismatch
from core.index.build import build_index
from core.index.corpus_index import CorpusIndex
from core.records import GenKey
from core.scoring import metrics
from core.tracing.admissibility import crosses_sentence_end, word_boundaries
from core.tracing.trace import occurrence_seed, trace_completion, trace_many
from tests.fixtures_trace import (
    BruteIndex,
    byte_bpe_tokenizer,
    log_sum,
    metaspace_tokenizer,
    naive_longest,
    random_corpus,
)

CONFORMANCE = Path("/work/shared/conformance/propme_release/generations.jsonl")
WS_TOKEN_CHARS = set(" \t\n\r▁ĠĊĉč")
WS_BYTE_TOKENS = {"<0x0A>", "<0x20>", "<0x09>", "<0x0D>"}


# ---- the oracle ------------------------------------------------------------------------------------
def _ws_edge(tok_str: str, first: bool) -> bool:
    if tok_str in WS_BYTE_TOKENS:
        return True
    return bool(tok_str) and (tok_str[0] if first else tok_str[-1]) in WS_TOKEN_CHARS


_GRAMS: dict[int, tuple[int, set]] = {}


def _grams(docs: list[list[int]], n: int) -> set:
    """Every n-gram of length <= n of the documents (cached per corpus, grown on demand)."""
    have, grams = _GRAMS.get(id(docs), (0, set()))
    if n > have:
        grams = {tuple(d[i:j]) for d in docs for i in range(len(d)) for j in range(i + 1, min(len(d), i + n) + 1)}
        _GRAMS[id(docs)] = (n, grams)
    return grams


def oracle_spans(docs: list[list[int]], tok, text: str, mode: str = "text", fraction: float = 0.05):
    """Final spans (merge "none") of SPEC section 4, steps 1-4, by brute force over n-gram sets."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, starts = enc["input_ids"], [o[0] for o in enc["offset_mapping"]]
    L = len(ids)
    if L < 2:
        return ids, []
    grams = _grams(docs, L)
    strs = tok.convert_ids_to_tokens(ids)
    n_tok = sum(len(d) for d in docs)
    unigram = {}
    for d in docs:
        for t in d:
            unigram[t] = unigram.get(t, 0) + 1

    def boundary(p):
        if p in (0, L) or starts[p] == 0:  # at the text's first character: start of text
            return True
        if starts[p] == starts[p - 1]:  # byte piece inside one character
            return False
        return _ws_edge(strs[p], True) or _ws_edge(strs[p - 1], False)

    cands = []
    for s in range(L - 1):
        e = s
        while e < L and tuple(ids[s:e + 1]) in grams:
            e += 1
        if e == s:
            continue
        span_text = tok.decode(ids[s:e], clean_up_tokenization_spaces=False)
        if mode == "text":
            ok = (not any(c in "!.?\n" for c in span_text[:-1]) and boundary(s) and (e == L or boundary(e)))
        else:
            ok = (s == 0 and e == L) or (e - s >= 4 and span_text.strip() != "")
        if ok:
            cands.append((s, e))
    kept, far = [], -1
    for s, e in sorted(cands):
        if e > far:
            kept.append((s, e))
            far = e
    score = {(s, e): math.fsum(math.log(unigram[t] / n_tok) for t in ids[s:e]) for s, e in kept}
    k = max(math.ceil(fraction * L), 1)
    return ids, sorted(sorted(kept, key=lambda se: (score[se], se))[:k])


def brute_docs_containing(docs, span_ids) -> set[int]:
    n = len(span_ids)
    return {d for d, doc in enumerate(docs) if any(doc[i:i + n] == list(span_ids) for i in range(len(doc) - n + 1))}


def brute_count(docs, span_ids) -> int:
    n = len(span_ids)
    return sum(doc[i:i + n] == list(span_ids) for doc in docs for i in range(len(doc) - n + 1))


# ---- corpora and completions ----------------------------------------------------------------------
def make_case(seed: int, n_completions: int = 24):
    rng = random.Random(seed)
    texts = random_corpus(rng, n_docs=10, words_per_doc=50)
    texts += [texts[0], texts[3]]  # repeated documents
    texts.append("Unicode: naïve café e\u0301t søster. Zürich — “quoted”… 日本語のテキスト.")
    comps = []
    for i in range(n_completions):
        src = rng.choice(texts)
        a = rng.randrange(0, max(1, len(src) - 80))
        piece = src[a:a + rng.randrange(20, 120)]
        kind = i % 4
        if kind == 1:  # one word changed
            words = piece.split(" ")
            words[rng.randrange(len(words))] = "zebra"
            piece = " ".join(words)
        elif kind == 2:  # planted copy inside random text
            piece = "hello world " + piece + " goodbye xyzzy"
        elif kind == 3:
            piece = " ".join(rng.choice(["kat", "hund", "fox", "år", "det", "er"]) for _ in range(12))
        comps.append(piece)
    comps += ["", "   ", "\n\n", "a", texts[5], "e\u0301\u0301 \u0308x"]
    return texts, comps


def _real_index(texts, tok, tmp_path):
    docs = [Document(f"d{i}", t, {}) for i, t in enumerate(texts)]
    idx = build_index(docs, tok, tmp_path / "idx", cpus=1)
    assert isinstance(idx, CorpusIndex)
    return idx


@pytest.fixture(scope="module", params=[("byte", "brute"), ("meta", "brute"), ("byte", "real"), ("meta", "real")],
                ids=lambda p: "-".join(p))
def setup(request, tmp_path_factory):
    tok_kind, index_kind = request.param
    texts, comps = make_case(7 if tok_kind == "byte" else 11)
    tok = (byte_bpe_tokenizer if tok_kind == "byte" else metaspace_tokenizer)(texts, vocab_size=300)
    docs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    if index_kind == "brute":
        index = BruteIndex(docs, [f"d{i}" for i in range(len(texts))], len(tok), tok)
    else:
        index = _real_index(texts, tok, tmp_path_factory.mktemp("trace"))
    return texts, comps, tok, docs, index


# ---- the checks ---------------------------------------------------------------------------------------
def test_longest_matches_exact(setup):
    _texts, comps, tok, docs, index = setup
    for c in comps[:12]:
        ids = tok(c, add_special_tokens=False)["input_ids"]
        assert index.longest_matches(ids) == naive_longest(BruteIndex(docs, ["x"] * len(docs), len(tok)), ids)


@pytest.mark.parametrize("mode", ["text", "mixed"])
def test_spans_counts_and_docs_match_brute_force(setup, mode):
    _texts, comps, tok, docs, index = setup
    cfg = TraceConfig(mode=mode, merge="none", docs_per_span=4, window_factor=3)
    traces = trace_many(index, tok, [(GenKey("generic", str(i)), c) for i, c in enumerate(comps)], cfg)
    n_checked = 0
    for c, tr in zip(comps, traces):
        ids, expected = oracle_spans(docs, tok, c, mode)
        got = [(s.start, s.end) for s in tr.spans]
        if mode == "mixed":  # the full-match span (0, L) may be attached on top of the ranked spans
            got = [se for se in got if se != (0, len(ids))]
            expected = [se for se in expected if se != (0, len(ids))]
        assert got == expected, c
        assert tr.n_tokens == len(ids)
        for sp in tr.spans:
            n_checked += 1
            span_ids = ids[sp.start:sp.end]
            attached = mode == "mixed" and (sp.start, sp.end) == (0, len(ids))
            assert sp.count == brute_count(docs, span_ids) and (sp.count > 0 or attached)
            if attached and sp.count == 0:  # full match found through anchors: whole text in every window
                assert sp.docs and all(d.tier != "partial" for d in sp.docs)
                continue
            assert sp.sample_seed == (None if attached else occurrence_seed(cfg.seed, span_ids))
            containing = brute_docs_containing(docs, span_ids)
            got_docs = [d.doc_ix for d in sp.docs]
            assert len(got_docs) == len(set(got_docs)) or mode == "mixed"
            assert set(got_docs) <= containing
            if sp.count <= cfg.docs_per_span and (sp.start, sp.end) != (0, len(ids)):
                assert set(got_docs) == containing
            assert c[sp.char_start:sp.char_end] == sp.text and sp.text.strip() in (sp.text, "")
            for d in sp.docs:
                assert d.doc_id == f"d{d.doc_ix}"
                assert (d.tier == "exact_full_raw") == (c in d.window_text)
                assert d.window_text[d.match_char_start:d.match_char_end].strip() == \
                    tok.decode(span_ids, clean_up_tokenization_spaces=False).strip()
        full = brute_docs_containing(docs, ids) if len(ids) >= 2 else set()
        assert tr.full_doc_frequency == min(len(full), cfg.eidetic_cap)
    assert n_checked > 20


def test_als_fmr_equal_brute_force(setup):
    _texts, comps, tok, docs, index = setup
    # all docs (docs_per_span at its limit), windows of 100x the completion (window_factor's limit): wide enough to
    # hold the whole completion around any span, so full_match can be judged against the oracle
    cfg = TraceConfig(mode="text", docs_per_span=1000, window_factor=100, merge="none")
    traces = trace_many(index, tok, [(GenKey("prefix", str(i)), c) for i, c in enumerate(comps)], cfg)
    longest, full = [], []
    for c in comps:
        ids, spans = oracle_spans(docs, tok, c)
        longest.append(max((e - s for s, e in spans), default=0))
        doc_texts = {d: tok.decode(docs[d], clean_up_tokenization_spaces=False)
                     for s, e in spans for d in brute_docs_containing(docs, ids[s:e])}
        full.append(bool(c) and any(c in t for t in doc_texts.values()))
    als = sum(longest) / len(comps)
    fmr = sum(full) / len(comps)
    assert sum(t.longest_span for t in traces) / len(traces) == pytest.approx(als)
    assert sum(t.full_match for t in traces) / len(traces) == pytest.approx(fmr)
    assert 0 < fmr < 1 and als > 3
    assert metrics.als(traces) == pytest.approx(als) and metrics.fmr(traces) == pytest.approx(fmr)


def test_union_merge_equals_none_and_always_merges_overlaps(setup):
    """Exact maximal spans never have an occurring union (the union extends a maximal prefix), so
    "union" keeps them apart; "always" joins strictly overlapping neighbours, never touching ones."""
    _texts, comps, tok, _docs, index = setup
    items = [(GenKey("generic", str(i)), c) for i, c in enumerate(comps)]
    kw = {"mode": "text", "docs_per_span": 2, "window_factor": 2, "rarity_fraction": 0.5}
    none = trace_many(index, tok, items, TraceConfig(merge="none", **kw))
    union = trace_many(index, tok, items, TraceConfig(merge="union", **kw))
    always = trace_many(index, tok, items, TraceConfig(merge="always", **kw))
    merged_any = False
    for a, b, c in zip(none, union, always):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        expect = []
        for s in a.spans:
            if expect and s.start < expect[-1][1]:
                expect[-1] = (expect[-1][0], max(expect[-1][1], s.end))
                merged_any = True
            else:
                expect.append((s.start, s.end))
        assert [(s.start, s.end) for s in c.spans] == expect
        for s in c.spans:
            assert len(s.docs) <= 2 * 2  # budget ceil(2 / n) per constituent span, at most 2 spans' worth
    assert merged_any


def test_duplicate_completions_stay_separate(setup):
    texts, _comps, tok, _docs, index = setup
    text = texts[1][:80]
    keys = [GenKey("generic", "p1"), GenKey("generic", "p2"), GenKey("specific", "p1", 3)]
    out = trace_many(index, tok, [(k, text) for k in keys])
    assert [t.key for t in out] == keys
    assert out[0].spans == out[1].spans == out[2].spans and out[0].spans
    single = trace_completion(index, tok, keys[2], text)
    assert single == out[2]


def test_rarity_keeps_k_lowest_log_sums(setup):
    _texts, comps, tok, docs, index = setup
    lp = index.unigram_log_probs()
    for c in comps:
        ids, full = oracle_spans(docs, tok, c, fraction=1.0)
        kept = [(s.start, s.end) for s in trace_completion(index, tok, GenKey("g", "x"), c,
                                                           TraceConfig(mode="text", merge="none")).spans]
        k = max(math.ceil(0.05 * len(ids)), 1)
        assert len(kept) == min(k, len(full))
        worst_kept = max((log_sum(lp, ids[s:e]) for s, e in kept), default=-math.inf)
        dropped = [se for se in full if se not in kept]
        assert all(log_sum(lp, ids[s:e]) >= worst_kept for s, e in dropped)


def test_mixed_mode_full_and_normalized_matches(tmp_path):
    code = "def add(a, b):\n    return a + b\n\n\n\nprint(add(1, 2))\n"
    texts = [code, "other text entirely, nothing to see here at all.", code + "# twice\n"]
    tok = byte_bpe_tokenizer(texts)
    index = BruteIndex.from_texts(texts, tok)
    cfg = TraceConfig(mode="mixed")
    whole = trace_completion(index, tok, GenKey("g", "w"), code, cfg)
    L = whole.n_tokens
    full = [s for s in whole.spans if (s.start, s.end) == (0, L)]
    assert len(full) == 1 and full[0].count == 2 and whole.full_doc_frequency == 2
    assert {d.doc_ix for d in full[0].docs} == {0, 2} and whole.full_match
    # Not in the corpus as is, but equal after normalization (spaces, tabs, newline runs).
    variant = "def add(a, b):\n\treturn a  +  b\n\n\nprint(add(1, 2))"
    tr = trace_completion(index, tok, GenKey("g", "v"), variant, cfg)
    spans = [s for s in tr.spans if (s.start, s.end) == (0, tr.n_tokens)]
    assert len(spans) == 1 and spans[0].count == 0
    assert {d.tier for d in spans[0].docs} == {"exact_full_normalized"} and not tr.full_match
    assert tr.full_doc_frequency == 0
    text_mode = trace_completion(index, tok, GenKey("g", "v"), variant, TraceConfig(mode="text"))
    assert all(s.end - s.start < text_mode.n_tokens for s in text_mode.spans)


def test_tokenizer_mismatch_raises(setup):
    _texts, _comps, _tok, _docs, index = setup
    other = byte_bpe_tokenizer(["completely different"], vocab_size=280)
    with pytest.raises(IndexMismatch):
        trace_many(index, other, [(GenKey("g", "1"), "text")])


def test_progress_events(setup):
    _texts, comps, tok, _docs, index = setup
    events = []
    trace_many(index, tok, [(GenKey("g", str(i)), c) for i, c in enumerate(comps[:5])], progress=events.append)
    assert [e.done for e in events] == [1, 2, 3, 4, 5] and events[-1].stage == "trace"


# ---- published spans ------------------------------------------------------------------------------
def test_word_boundary_rule_accepts_every_published_span():
    """Each span the authors published passes our text-mode rule at some occurrence in its generation."""
    lines = [json.loads(x) for x in CONFORMANCE.read_text(encoding="utf-8").splitlines() if x.strip()]
    n = 0
    for line in lines:
        g = line["generation"]
        chars = list(range(len(g) + 1))  # one "token" per character
        is_b = word_boundaries(g, chars)
        for sp in line["spans"]:
            t = sp["text"]
            starts = [i for i in range(len(g)) if g.startswith(t, i)]
            assert starts, t
            assert any(is_b[i] and (i + len(t) == len(g) or g[i + len(t)].isspace()) and
                       (i == 0 or g[i - 1].isspace()) and not crosses_sentence_end(t) for i in starts), t
            n += 1
    assert n >= 15


# ---- properties ---------------------------------------------------------------------------------------
_ALPHABET = st.sampled_from(list("aeiou dkrstnl.,!?\n\t") + ["\u0301", "\u0308", "å", "ø", "日"])
_PROP = {}


def _prop_setup():
    if not _PROP:
        texts = random_corpus(random.Random(3), n_docs=6, words_per_doc=40)
        tok = byte_bpe_tokenizer(texts, vocab_size=300)
        _PROP.update(texts=texts, tok=tok, index=BruteIndex.from_texts(texts, tok),
                     docs=[tok(t, add_special_tokens=False)["input_ids"] for t in texts])
    return _PROP


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(_ALPHABET, max_size=60), st.just(""), st.text(" \n\t", max_size=8)),
       copy=st.integers(0, 200), mode=st.sampled_from(["text", "mixed"]))
def test_property_any_text_traces_like_the_oracle(text, copy, mode):
    p = _prop_setup()
    src = p["texts"][copy % len(p["texts"])]
    text = text + src[copy:copy + 40] if copy % 2 else text
    cfg = TraceConfig(mode=mode, merge="none", docs_per_span=3, window_factor=2)
    tr = trace_completion(p["index"], p["tok"], GenKey("g", "h"), text, cfg)
    ids, expected = oracle_spans(p["docs"], p["tok"], text, mode)
    assert tr.n_tokens == len(ids)
    got = [(s.start, s.end) for s in tr.spans if mode == "text" or (s.start, s.end) != (0, len(ids))]
    assert got == [se for se in expected if mode == "text" or se != (0, len(ids))]
    for s in tr.spans:
        assert 0 <= s.start < s.end <= len(ids)
        assert 0 <= s.char_start <= s.char_end <= len(text) and text[s.char_start:s.char_end] == s.text
    if len(ids) < 2:
        assert tr.spans == () and tr.full_doc_frequency == 0
