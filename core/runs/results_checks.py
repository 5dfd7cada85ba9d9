"""Checks a results folder's files pass before :func:`core.runs.results.load_results` trusts them: each
parquet file has every column with its type, the flat span and document tables match the generations
row for row, and the score files are the bytes the run wrote (their sha256 in the manifest)."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ResultsError
from core.runs.schema import DOCS_SCHEMA, SPANS_SCHEMA

SCORES_KEY = "scores_sha256"  # manifest: sha256 of summary.json and pm.json as written


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_table(path: Path, schema: pa.Schema, columns: list[str] | None = None) -> list[dict]:
    """Rows of a parquet file after checking it has every column of ``schema`` with its type
    (``columns``: read only these); ResultsError naming the file otherwise."""
    try:
        found = pq.read_schema(path)
        missing = [n for n in schema.names if n not in found.names]
        if missing:
            raise ResultsError(f"{path} lacks columns {missing}; it was not written by this version of PropMe: "
                               "run the experiment again to rewrite it")
        wrong = [f"{f.name} is {found.field(f.name).type}, expected {f.type}" for f in schema
                 if not found.field(f.name).type.equals(f.type)]
        if wrong:
            raise ResultsError(f"{path} has columns of the wrong type ({'; '.join(wrong[:3])}); the file is damaged "
                               "or was not written by PropMe: run the experiment again to rewrite it")
        return pq.read_table(path, columns=columns or schema.names).to_pylist()
    except (OSError, pa.ArrowException, KeyError) as e:
        raise ResultsError(f"{path} is unreadable ({e}); run the experiment again to rewrite it") from None


def check_scores(folder: Path, digests: Any) -> None:
    """summary.json and pm.json must be the bytes the run wrote (their sha256 in the manifest), so the
    report (which prints them) and the app (which recomputes from the traces) show the same scores.
    Folders written before the digests existed are not checked."""
    if digests is None:
        return
    if not isinstance(digests, dict) or set(digests) != {"summary.json", "pm.json"}:
        raise ResultsError(f"{folder}/manifest.json: {SCORES_KEY} is damaged; run the experiment again")
    for name, digest in digests.items():
        try:
            actual = sha256_hex((folder / name).read_bytes())
        except OSError as e:
            raise ResultsError(f"{folder / name} is unreadable ({e}); run the experiment again") from None
        if actual != digest:
            raise ResultsError(f"{folder / name} was changed after the run wrote it (its sha256 differs from the "
                               "manifest's): its scores may not match the traces; run the experiment again (cached "
                               "work is reused) to rewrite it")


def check_flat_tables(folder: Path, gen_rows: list[dict]) -> tuple[int, int]:
    """Check spans.parquet and docs.parquet against the generations: each traced generation has exactly
    ``n_spans`` span rows (``span_ix`` 0..n-1), each span exactly its ``n_docs`` document rows
    (``doc_rank`` 0..n-1). Returns (span rows, doc rows)."""
    keys = ["setting", "prompt_id", "sample_index"]
    spans_path, docs_path = folder / "spans.parquet", folder / "docs.parquet"
    span_rows = read_table(spans_path, SPANS_SCHEMA, keys + ["span_ix", "n_docs"])
    doc_rows = read_table(docs_path, DOCS_SCHEMA, keys + ["span_ix", "doc_rank"])
    want_spans = {(r["setting"], r["prompt_id"], r["sample_index"], i): None
                  for r in gen_rows if r["traced"] for i in range(r["n_spans"] or 0)}
    got_spans = Counter((r["setting"], r["prompt_id"], r["sample_index"], r["span_ix"]) for r in span_rows)
    if got_spans.keys() != want_spans.keys() or any(n != 1 for n in got_spans.values()):
        extra = next((k for k in got_spans if k not in want_spans or got_spans[k] != 1), None)
        absent = next((k for k in want_spans if k not in got_spans), None)
        raise ResultsError(f"{spans_path} does not match generations.parquet (first difference: span "
                           f"{extra or absent}); the file is damaged or was edited: run the experiment again")
    want_docs = {(r["setting"], r["prompt_id"], r["sample_index"], r["span_ix"], j): None
                 for r in span_rows for j in range(r["n_docs"] or 0)}
    got_docs = Counter((r["setting"], r["prompt_id"], r["sample_index"], r["span_ix"], r["doc_rank"])
                       for r in doc_rows)
    if got_docs.keys() != want_docs.keys() or any(n != 1 for n in got_docs.values()):
        extra = next((k for k in got_docs if k not in want_docs or got_docs[k] != 1), None)
        absent = next((k for k in want_docs if k not in got_docs), None)
        raise ResultsError(f"{docs_path} does not match spans.parquet (first difference: document "
                           f"{extra or absent}); the file is damaged or was edited: run the experiment again")
    return len(span_rows), len(doc_rows)
