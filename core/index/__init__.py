"""Suffix-array indexes of a tokenized corpus: tokenizer, build, shards, exact n-gram search."""
