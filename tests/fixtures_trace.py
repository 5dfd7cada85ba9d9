"""Test helpers for tracing: tiny trained tokenizers and a brute-force index (the oracle).

:class:`BruteIndex` implements the CorpusIndex methods that tracing uses by scanning token lists,
so every answer is obviously right; the trace tests run against it and against the real
infini-gram index built from the same documents.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from core.errors import IndexMismatch

EOS = "<eos>"

SAMPLE_TEXT = (
    "Det er ikke muligt at opsige kontrakten, når der er tale om en bod. "
    "The quick brown fox jumps over the lazy dog! Is it? Yes.\n"
    "def f(x):\n    return x + 1\n\n"
    "Jlden greb saa hastig om sig, at det ikke var mueligt at redde de der værende Archiver. "
    "naïve café — “quoted” text… e\u0301 a\u0308 日本語 ünïcödé"
)


def byte_bpe_tokenizer(corpus: Sequence[str] = (), vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """GPT-2 style byte-level BPE (leading spaces inside tokens), trained on the given text."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([SAMPLE_TEXT, *corpus], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)


def metaspace_tokenizer(corpus: Sequence[str] = (), vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Llama-2 style BPE: spaces become ``▁`` at word starts; byte fallback for unseen characters."""
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=[EOS, *bytes_],
                                  show_progress=False)
    tok.train_from_iterator([SAMPLE_TEXT, *corpus], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)


@dataclass(frozen=True)
class BruteOccurrence:
    doc_ix: int
    doc_id: str
    start: int
    doc_len: int


class BruteIndex:
    """Same methods as core.index.corpus_index.CorpusIndex, answered by scanning every document."""

    def __init__(self, docs: Sequence[Sequence[int]], doc_ids: Sequence[str], vocab_size: int, tokenizer=None):
        self.docs = [list(d) for d in docs]
        self.ids = list(doc_ids)
        self.vocab_size = vocab_size
        self.num_docs = len(self.docs)
        self.num_tokens = sum(len(d) for d in self.docs)
        self._tokenizer_vocab = len(tokenizer) if tokenizer is not None else None
        self._memo: dict[tuple[int, ...], list[tuple[int, int]]] = {}

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer, doc_ids: Sequence[str] | None = None) -> BruteIndex:
        docs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        return cls(docs, doc_ids or [f"d{i}" for i in range(len(texts))], len(tokenizer), tokenizer)

    def check_tokenizer(self, tokenizer) -> None:
        if self._tokenizer_vocab is not None and len(tokenizer) != self._tokenizer_vocab:
            raise IndexMismatch(f"brute index built with a {self._tokenizer_vocab}-token vocabulary, "
                                f"got a tokenizer with {len(tokenizer)}")

    def positions(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Every (doc, start) where ids occur, by scanning (memoized on the query)."""
        key = tuple(int(t) for t in ids)
        if key not in self._memo:
            n, q = len(key), list(key)
            self._memo[key] = [(d, i) for d, doc in enumerate(self.docs) for i in range(len(doc) - n + 1)
                               if doc[i:i + n] == q]
        return self._memo[key]

    def count(self, ids: Sequence[int]) -> int:
        return len(self.positions(ids))

    def longest_matches(self, ids: Sequence[int]) -> list[int]:
        out = []
        for s in range(len(ids)):
            n = 0
            while s + n < len(ids) and self.count(ids[s:s + n + 1]) > 0:
                n += 1
            out.append(n)
        return out

    def unigram_log_probs(self) -> np.ndarray:
        counts = np.zeros(self.vocab_size, dtype=np.float64)
        for doc in self.docs:
            for t in doc:
                counts[t] += 1
        return np.log(np.maximum(counts, 0.5) / max(self.num_tokens, 1))

    def occurrences(self, ids: Sequence[int], k: int, seed: int, spread: str = "random") -> list[BruteOccurrence]:
        pos = self.positions(ids)
        if len(pos) > k:
            if spread == "even":
                idx = [len(pos) // 2] if k == 1 else sorted({round(i * (len(pos) - 1) / (k - 1)) for i in range(k)})
                pos = [pos[i] for i in idx]
            else:
                pos = random.Random(seed).sample(pos, k)
        return [BruteOccurrence(d, self.ids[d], i, len(self.docs[d])) for d, i in pos]

    def distinct_docs(self, ids: Sequence[int], cap: int) -> int:
        return min(cap, len({d for d, _ in self.positions(ids)}))

    def doc_window(self, occ, match_len: int, window_tokens: int) -> tuple[list[int], int]:
        pad = max(0, window_tokens - match_len)
        lo = max(0, occ.start - pad // 2)
        hi = min(occ.doc_len, occ.start + match_len + (pad - pad // 2))
        return self.docs[occ.doc_ix][lo:hi], occ.start - lo

    def doc_tokens(self, doc_ix: int) -> list[int]:
        return list(self.docs[doc_ix])

    def doc_id(self, doc_ix: int) -> str:
        return self.ids[doc_ix]


def naive_longest(index, ids: Sequence[int]) -> list[int]:
    """Per start, grow the span one token at a time while index.count says it occurs (the baseline)."""
    out = []
    for s in range(len(ids)):
        n = 0
        while s + n < len(ids) and index.count(list(ids[s:s + n + 1])) > 0:
            n += 1
        out.append(n)
    return out


def random_corpus(rng: random.Random, n_docs: int = 12, words_per_doc: int = 60) -> list[str]:
    """Small documents of Danish/English-ish words, punctuation, newlines and a few unicode marks."""
    vocab = ["det", "er", "ikke", "muligt", "at", "opsige", "kontrakten", "når", "der", "tale", "om", "en", "bod", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hus", "sag", "aften", "morgen", "café", "naïve", "ét", "søster", "år"]
    docs = []
    for _ in range(n_docs):
        words = []
        for _ in range(words_per_doc):
            w = rng.choice(vocab)
            r = rng.random()
            words.append(w + (". " if r < 0.08 else ", " if r < 0.14 else "\n" if r < 0.17 else " "))
        docs.append("".join(words).strip())
    return docs


def log_sum(log_probs: np.ndarray, ids: Sequence[int]) -> float:
    return math.fsum(float(log_probs[t]) for t in ids)
