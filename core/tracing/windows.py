"""Document windows of traced spans: sampled occurrences, their windows and decoded texts.

Used by :mod:`core.tracing.trace` (SPEC section 4, step 5). Windows of byte-level tokenizers are decoded
from a byte table (:mod:`core.index.byte_decode`), others by the tokenizer; the windows of the last
:data:`WINDOW_CACHE` spans are kept, as they depend only on the span and the sampling arguments.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

from core.index.byte_decode import byte_decoder
from core.index.tokenizer import decode_many

WINDOW_CACHE = 512  # spans whose decoded document windows are kept for repeats within a run


def occurrence_seed(seed: int, span_ids: Sequence[int]) -> int:
    """Seed of the occurrence sample of one span: sha256 of the run seed and the span's token ids.

    It depends on the span's tokens, not on the generation key, so identical spans sample identical
    documents across generations and runs (the run seed is recorded in the TraceConfig).

    >>> occurrence_seed(42, [5, 6]) == occurrence_seed(42, (5, 6)) != occurrence_seed(43, [5, 6])
    True
    """
    payload = f"{int(seed)}:" + ",".join(str(int(t)) for t in span_ids)
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:8], "big") >> 1


def _common_prefix(a: str, b: str) -> int:
    if b.startswith(a):
        return len(a)
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _match_chars(text: str, before: str, through: str) -> tuple[int, int]:
    """Char (start, end) of the match in a decoded window, from the decoded text before and through it
    (a prefix may decode differently at its cut, e.g. a partial UTF-8 character: common prefixes)."""
    cs = _common_prefix(before, text)
    return cs, max(cs, _common_prefix(through, text))


def decode_window(tokenizer, ids: Sequence[int], offset: int, match_len: int) -> tuple[str, int, int]:
    """A document window decoded as tracing decodes it: (text, char start, char end of the match).

    >>> class Chars:  # a toy tokenizer: id i is the character chr(i)
    ...     def decode(self, ids, **kw): return "".join(map(chr, ids))
    >>> decode_window(Chars(), [ord(c) for c in "abcde"], 1, 2)
    ('abcde', 1, 3)
    """
    text, before, through = decode_many(tokenizer, [list(ids), list(ids[:offset]), list(ids[:offset + match_len])])
    return (text, *_match_chars(text, before, through))


class DocWindows:
    """Windows of the sampled documents of spans, for one index, tokenizer and run seed."""

    def __init__(self, index, tokenizer, seed: int):
        self.index, self.tok, self.seed = index, tokenizer, seed
        self._bytes = byte_decoder(tokenizer)  # None: decode windows with the tokenizer
        self._cache: dict[tuple, list[tuple]] = {}

    def get(self, span_ids: tuple[int, ...], width: int, k: int, spread: str) -> list[tuple]:
        """(occurrence, window text, match char start, match char end) per sampled document; they
        depend only on the arguments (the sample is seeded by the span), so recent ones are kept."""
        key = (span_ids, width, k, spread)
        if key in self._cache:
            return self._cache[key]
        occs = self.index.occurrences(list(span_ids), k=k, seed=occurrence_seed(self.seed, span_ids),
                                      spread=spread)
        firsts, seen = [], set()
        for occ in occs:
            if occ.doc_ix not in seen:
                seen.add(occ.doc_ix)
                firsts.append(occ)
        n = len(span_ids)
        many = getattr(self.index, "doc_windows", None)
        windows = many(firsts, n, width) if many else [self.index.doc_window(occ, n, width) for occ in firsts]
        # each window, its text before the match, and through the match
        if self._bytes is not None:  # byte-level tokenizer: one gather + three UTF-8 decodes per window
            texts = [t for w, off in windows for t in self._bytes.decode_prefixes(w, (off, off + n))]
        else:
            windows = [(list(map(int, w)), off) for w, off in windows]
            texts = decode_many(self.tok, [piece for w, off in windows for piece in (w, w[:off], w[:off + n])])
        out = []
        for i, occ in enumerate(firsts):
            text, before, through = texts[3 * i: 3 * i + 3]
            out.append((occ, text, *_match_chars(text, before, through)))
        if len(self._cache) >= WINDOW_CACHE:
            self._cache.pop(next(iter(self._cache)))  # the oldest
        self._cache[key] = out
        return out
