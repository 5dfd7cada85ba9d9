"""Checks of a run's choices that can be made as they are typed, before anything runs (the Run page shows
each under its field): does a path exist, can the corpus give the prefix setting as many prompts as asked.

Each check returns None when the choice is fine, else one sentence naming the cause and what to do.
The run itself checks again (core.prompts.build, core.config.file): these only say it sooner.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core import paths
from core.errors import ConfigError


def missing_path(path: str | None, what: str) -> str | None:
    """``what`` at ``path`` does not exist (None when it does, or when nothing was typed).

    >>> missing_path("/no/such/file.jsonl", "prompt file for generic")
    "prompt file for generic: '/no/such/file.jsonl' does not exist"
    >>> missing_path("", "x") is None and missing_path("/", "x") is None
    True
    """
    if not path or not path.strip():
        return None
    return None if Path(path.strip()).expanduser().exists() else f"{what}: {path.strip()!r} does not exist"


def run_name_problem(name: str | None) -> str | None:
    """Why ``name`` cannot be a run name (:func:`core.paths.safe_name`'s rule), None when it can or is not typed yet.

    >>> run_name_problem("pythia-70m greedy") is None and run_name_problem("") is None
    True
    >>> run_name_problem("../x").split(":")[0]
    "run name '../x' is refused"
    """
    if not name:
        return None
    try:
        paths.safe_name(name)
    except ConfigError as e:
        return str(e)
    return None


def prefix_capacity(doc_lengths: Sequence[int] | np.ndarray, min_doc_tokens: int) -> int:
    """How many documents have at least ``min_doc_tokens`` tokens: the most prefix prompts the corpus gives."""
    return int(np.count_nonzero(np.asarray(doc_lengths) >= min_doc_tokens))


def prefix_count_problem(n_prompts: int, min_doc_tokens: int, capacity: int) -> str | None:
    """The prefix setting asks for more prompts than the corpus has long enough documents.

    >>> prefix_count_problem(20, 100, 17)
    'the corpus has 17 documents of at least 100 tokens: at most 17 prefix prompts (lower the count or the minimum document length)'
    >>> prefix_count_problem(17, 100, 17) is None
    True
    """
    if n_prompts <= capacity:
        return None
    docs = "document" if capacity == 1 else "documents"
    return (f"the corpus has {capacity} {docs} of at least {min_doc_tokens} tokens: at most {capacity} prefix "
            "prompts (lower the count or the minimum document length)")


def index_doc_lengths(index_dirs: Sequence[str]) -> np.ndarray:
    """Token count of every document of the index in ``index_dirs`` (raises the index's own errors)."""
    from core.index.corpus_index import CorpusIndex

    return CorpusIndex.open(list(index_dirs)).doc_lengths()
