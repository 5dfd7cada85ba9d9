"""Experiments end to end: orchestration, cache, results folders and the shipped demo."""
