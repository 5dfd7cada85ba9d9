"""Shared fixtures. Helpers that build things (tiny corpora, indexes, models) live in tests/fixtures.py."""
