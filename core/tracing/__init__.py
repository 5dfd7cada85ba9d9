"""Tracing completions back to the corpus: maximal spans, documents, tiers, near-verbatim recall."""
