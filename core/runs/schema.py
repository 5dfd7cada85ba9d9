"""The three parquet tables of a results folder: their columns and types.

``generations.parquet`` holds one row per generation (its trace as JSON in ``spans_json``);
``spans.parquet`` and ``docs.parquet`` flatten the traces for notebooks (one row per final span,
one per retrieved document). :func:`core.runs.results.load_results` checks every file against
these schemas before reading it.
"""
from __future__ import annotations

import pyarrow as pa

_IDS = pa.list_(pa.int64())
GENERATIONS_SCHEMA = pa.schema([
    ("setting", pa.string()), ("prompt_id", pa.string()), ("sample_index", pa.int64()),
    ("prompt_text", pa.string()), ("prompt_token_ids", _IDS), ("domain", pa.string()),
    ("source_doc_id", pa.string()), ("source_doc_ix", pa.int64()),
    ("true_continuation", pa.string()), ("true_continuation_ids", _IDS),
    ("completion", pa.string()), ("completion_ids", _IDS), ("finish_reason", pa.string()),
    ("traced", pa.bool_()), ("trace_pos", pa.int64()), ("n_tokens", pa.int64()),
    ("longest_span", pa.int64()), ("full_match", pa.bool_()), ("full_doc_frequency", pa.int64()),
    ("n_spans", pa.int64()), ("n_docs", pa.int64()), ("max_nv_recall", pa.float64()),
    ("spans_json", pa.string()), ("trace_completion", pa.string()), ("extra_json", pa.string()),
])
_KEY_COLS = [("setting", pa.string()), ("prompt_id", pa.string()), ("sample_index", pa.int64())]
SPANS_SCHEMA = pa.schema(_KEY_COLS + [
    ("span_ix", pa.int64()), ("start", pa.int64()), ("end", pa.int64()), ("length", pa.int64()),
    ("text", pa.string()), ("char_start", pa.int64()), ("char_end", pa.int64()), ("count", pa.int64()),
    ("n_docs", pa.int64()), ("max_nv_recall", pa.float64()),
])
DOCS_SCHEMA = pa.schema(_KEY_COLS + [
    ("span_ix", pa.int64()), ("doc_rank", pa.int64()), ("doc_ix", pa.int64()), ("doc_id", pa.string()),
    ("tier", pa.string()), ("nv_recall", pa.float64()), ("matched", pa.int64()), ("reference", pa.int64()),
    ("candidate", pa.int64()), ("missing", pa.int64()), ("additional", pa.int64()),
    ("match_char_start", pa.int64()), ("match_char_end", pa.int64()), ("window_text", pa.string()),
])
