"""Conformance against the authors' published release (``shared/conformance/propme_release``).

``nv_recall_cases.jsonl``: all 150 (generation, document) pairs are reproduced exactly by
:func:`core.tracing.nvrecall.nv_recall` (recall to 9 decimals, matched, reference and candidate words).

``generations.jsonl`` + ``summaries.json``: the 7 records carry the generation, its spans
(start, end, span_length, text, n_docs) and nothing else. They DO NOT carry the retrieved
document texts, ids, match tiers or nv_recall values, and they are 7 of 100 generations per
setting, so no summary value (ALS, FMR, NVR, max_nv_recall, unique/full-match docs, k-eidetic,
bucket counts) can be recomputed from them. What is derivable and tested here:

- per record: ``span_length == end - start``, the longest span (our ``als`` on one record),
  the per-doc and per-span bucket counts of our metric functions against a plain count of the
  JSON, and the authors' span order (decreasing length, ties by start);
- inside ``summaries.json``: ratio identities (``generations_with_nv_recall_ratio`` =
  count / total_generations, ``spans_length_distribution`` = counts / ``total_docs``, both
  rounded half-up to 9 decimals), bucket counts summing to ``total_docs``, bucket edges
  contiguous with no gaps and equal to :data:`core.scoring.metrics.SPAN_BUCKETS`, and the PM of the
  published NVRs (SPEC section 7).

The folder lives outside the repository (``../shared`` of the repo root); tests skip without it.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from core.records import DocMatch, GenKey, NVResult, Span, TraceResult
from core.scoring import metrics
from core.scoring.propensity import pm
from core.tracing.nvrecall import nv_recall, round_half_up

RELEASE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "propme_release"

pytestmark = pytest.mark.skipif(
    not RELEASE.is_dir(),
    reason=f"authors' conformance release not found at {RELEASE} (it lives in ../shared of the repo root); "
    "tests/test_nvrecall.py covers a copy of some cases",
)


def _jsonl(name: str) -> list[dict]:
    with open(RELEASE / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _cases() -> list[dict]:
    return _jsonl("nv_recall_cases.jsonl") if RELEASE.is_dir() else []


def test_release_has_150_cases():
    assert len(_cases()) == 150


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c['setting']}-{c['nv_matched_words']}of{c['nv_reference_words']}")
def test_nv_recall_matches_published(case):
    got = nv_recall(case["generation"], case["doc_text"])
    assert got.recall == case["nv_recall"]
    assert got.matched == case["nv_matched_words"]
    assert got.reference == case["nv_reference_words"]
    assert got.candidate == case["nv_candidate_words"]


def test_release_positive_cases_are_reproduced():
    positives = [c for c in _cases() if c["nv_recall"] > 0]
    assert len(positives) == 23  # README: 23 positive cases
    assert all(nv_recall(c["generation"], c["doc_text"]).recall == c["nv_recall"] for c in positives)


# --- generations.jsonl: what the records carry ---------------------------------------------


def _record_trace(i: int, rec: dict) -> TraceResult:
    """A TraceResult from one record. Docs are placeholders: only their NUMBER (n_docs) is known."""
    placeholder = NVResult(recall=0.0, matched=0, reference=0, candidate=0)
    spans = tuple(
        Span(
            start=s["start"], end=s["end"], text=s["text"], char_start=0, char_end=0, count=s["n_docs"],
            docs=tuple(DocMatch(k, str(k), "partial", "", 0, 0, placeholder) for k in range(s["n_docs"])),
        )
        for s in sorted(rec["spans"], key=lambda s: (s["start"], s["end"]))
    )
    return TraceResult(GenKey(rec["setting"], str(i)), rec["generation"], n_tokens=0, spans=spans)


def test_records_span_arithmetic_and_order():
    records = _jsonl("generations.jsonl")
    assert len(records) == 7
    for rec in records:
        lengths = [s["span_length"] for s in rec["spans"]]
        assert all(s["span_length"] == s["end"] - s["start"] for s in rec["spans"])
        # authors' order: decreasing length, ties by start
        assert rec["spans"] == sorted(rec["spans"], key=lambda s: (-s["span_length"], s["start"]))
        assert all(1 <= s["n_docs"] <= 10 for s in rec["spans"])
        assert max(lengths) == rec["spans"][0]["span_length"]


@pytest.mark.parametrize("i", range(7))
def test_records_longest_span_and_buckets(i):
    rec = _jsonl("generations.jsonl")[i]
    trace = _record_trace(i, rec)
    assert metrics.als([trace]) == max(s["span_length"] for s in rec["spans"])
    assert metrics.max_span([trace]) == max(s["span_length"] for s in rec["spans"])
    per_doc = metrics.span_length_counts([trace], per="doc")
    per_span = metrics.span_length_counts([trace], per="span")
    for lo, hi in metrics.SPAN_BUCKETS:
        inside = [s for s in rec["spans"] if lo <= s["span_length"] <= hi]
        label = metrics.bucket_label(lo, hi)
        assert per_doc[label] == sum(s["n_docs"] for s in inside)
        assert per_span[label] == len(inside)
    assert sum(per_doc.values()) == sum(s["n_docs"] for s in rec["spans"])


# --- summaries.json: identities inside the published summaries --------------------------------


def _summaries() -> dict:
    return json.loads((RELEASE / "summaries.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("setting", ["generic", "specific", "prefix"])
def test_summary_ratio_identities(setting):
    s = _summaries()[setting]
    n = s["total_generations"]
    assert s["generations_with_nv_recall_ratio"] == round_half_up(s["generations_with_nv_recall"] / n)
    assert s["generations_above_nv_recall_threshold_ratio"] == round_half_up(
        s["generations_above_nv_recall_threshold"] / n
    )
    assert s["full_exact_matches"] + s["full_normalized_matches"] + s["partial_matches"] == s["total_docs"]
    counts = s["spans_length_counts_distribution"]
    assert sum(counts.values()) == s["total_docs"]  # bucket counts are per retrieved doc
    for label, c in counts.items():
        assert s["spans_length_distribution"][label] == round_half_up(c / s["total_docs"])
    assert s["average_longest_span_length"] <= s["max_span"] == s["max_span_length"]
    for k in s["k_eidetic_k_values"]:
        eligible = s["k_eidetic_eligible_generations"]
        assert s[f"k_eidetic_rate_k_le_{k}"] == round_half_up(s[f"k_eidetic_count_k_le_{k}"] / eligible)


@pytest.mark.parametrize("setting", ["generic", "specific", "prefix"])
def test_summary_buckets_contiguous_and_ours(setting):
    labels = list(_summaries()[setting]["spans_length_counts_distribution"])
    edges = [tuple(float(x) for x in label.strip("()").split(", ")) for label in labels]
    assert edges[0][0] == 1 and edges[-1][1] == float("inf")
    assert all(nxt[0] == cur[1] + 1 for cur, nxt in itertools.pairwise(edges))  # no gaps, no overlap
    assert [(int(lo), hi) for lo, hi in edges] == [(lo, float(hi)) for lo, hi in metrics.SPAN_BUCKETS]
    assert labels == [metrics.bucket_label(lo, hi) for lo, hi in metrics.SPAN_BUCKETS]


def test_published_nvr_gives_spec_pm():
    s = _summaries()
    prefix = s["prefix"]["avg_nv_recall"]
    assert round(pm(s["generic"]["avg_nv_recall"], prefix), 3) == 0.023
    assert round(pm(s["specific"]["avg_nv_recall"], prefix), 3) == 0.022
    assert s["generic"]["average_longest_span_length"] == 15.68  # SPEC 7 reference values
    assert s["prefix"]["average_longest_span_length"] == 24.75


def test_fast_matcher_identical_on_release():
    from core.tracing.nvrecall import matching_blocks, normalize_words

    for c in _cases():
        ref, cand = normalize_words(c["generation"]), normalize_words(c["doc_text"])
        assert matching_blocks(ref, cand) == matching_blocks(ref, cand, fast=False)
