"""Phrase search that finds a phrase wherever it sits in the text, not only where it starts a document.

A byte-level BPE tokenizer spells a phrase differently at the start of a text ("GNU" -> ``GN``,
``U``) and after a space (" GNU" -> ``ĠGNU``), so searching one tokenization misses the other.
:func:`phrase_variants` lists the spellings a phrase can have inside a text; :func:`search_phrase`
counts each in the index and returns what was searched beside what was found. Occurrences of two
variants never coincide: their first tokens differ, so they are distinct places in the corpus.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.index.corpus_index import CorpusIndex, Occurrence


def phrase_variants(phrase: str) -> list[str]:
    """The phrase as typed, and with one leading space added or removed (order kept, no repeats).

    >>> phrase_variants("GNU License"), phrase_variants(" GNU"), phrase_variants("  ")
    (['GNU License', ' GNU License'], [' GNU', 'GNU'], [])
    """
    if not phrase.strip():
        return []
    out = [phrase, phrase[1:] if phrase.startswith(" ") else " " + phrase]
    return [v for v in dict.fromkeys(out) if v.strip()]


@dataclass(frozen=True)
class VariantHits:
    """One spelling searched: its text, its token ids, its count and some of its occurrences."""

    text: str
    ids: tuple[int, ...]
    count: int
    occurrences: tuple[Occurrence, ...]


@dataclass(frozen=True)
class PhraseResult:
    phrase: str
    variants: tuple[VariantHits, ...]

    @property
    def count(self) -> int:
        return sum(v.count for v in self.variants)

    def hits(self) -> list[tuple[Occurrence, int]]:
        """(occurrence, match length in tokens) of every variant, by (doc_ix, start)."""
        return sorted(((o, len(v.ids)) for v in self.variants for o in v.occurrences),
                      key=lambda p: (p[0].doc_ix, p[0].start))


def search_phrase(index: CorpusIndex, tokenizer, phrase: str, max_docs: int = 20) -> PhraseResult:
    """Count every spelling of ``phrase`` (:func:`phrase_variants`) in ``index``; up to ``max_docs``
    occurrences per spelling, evenly spread. Spellings that tokenize alike are searched once."""
    seen: set[tuple[int, ...]] = set()
    found = []
    for text in phrase_variants(phrase):
        ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        if not ids or ids in seen:
            continue
        seen.add(ids)
        count, occs = index.search(list(ids), max_docs=max_docs)
        found.append(VariantHits(text, ids, count, tuple(occs)))
    return PhraseResult(phrase, tuple(found))
