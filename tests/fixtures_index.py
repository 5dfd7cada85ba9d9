"""Tiny tokenizers and indexes built in a temp folder, for tests of any area (no downloads).

    tok = train_tiny_tokenizer(["some text", ...], vocab_size=300, folder=tmp_path / "tok")
    index = build_tiny_index(["doc one text", "doc two text"], tmp_path / "index", tokenizer=tok)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.index.build import build_index, build_index_from_ids
from core.index.corpus_index import CorpusIndex


@dataclass(frozen=True)
class TinyDoc:
    """Stands in for core.corpus.load.Document (same fields)."""

    doc_id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 300, folder: str | Path | None = None):
    """A byte-level BPE tokenizer trained on ``texts``, wrapped as PreTrainedTokenizerFast.

    It has an ``<|endoftext|>`` token (id 0, also eos). Saved with save_pretrained when ``folder``
    is given, so ``core.index.tokenizer.load_tokenizer(folder)`` reloads it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>")
    if folder is not None:
        tok.save_pretrained(str(folder))
        tok.name_or_path = str(folder)
    return tok


def wordlevel_tokenizer(vocab_size: int, folder: str | Path | None = None):
    """A whitespace WordLevel tokenizer with ids 0..vocab_size-1 for words "w0".."w{n-1}" ("w0" is eos).

    Handy for the u32 path (vocab_size > 65535) and for exact control of token ids.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(vocab_size)}
    wl = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    wl.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, eos_token="w0", unk_token="w0")
    if folder is not None:
        tok.save_pretrained(str(folder))
        tok.name_or_path = str(folder)
    return tok


def as_docs(docs: Sequence) -> list[TinyDoc]:
    """Strings, (doc_id, text) pairs or Document-like objects -> TinyDoc list (ids "d0", "d1", ...)."""
    out = []
    for i, d in enumerate(docs):
        if isinstance(d, str):
            out.append(TinyDoc(f"d{i}", d))
        elif isinstance(d, tuple):
            out.append(TinyDoc(str(d[0]), d[1], d[2] if len(d) > 2 else {}))
        else:
            out.append(d)
    return out


def build_tiny_index(docs: Sequence, out_dir: str | Path, tokenizer=None, vocab_size: int = 300) -> CorpusIndex:
    """Index ``docs`` (see :func:`as_docs`) in ``out_dir``; trains a tokenizer on them if none given."""
    docs = as_docs(docs)
    if tokenizer is None:
        tokenizer = train_tiny_tokenizer([d.text for d in docs], vocab_size, Path(out_dir).parent / "tiny_tokenizer")
    return build_index(docs, tokenizer, out_dir, cpus=1)


def build_ids_index(token_lists: Sequence[Sequence[int]], out_dir: str | Path, vocab_size: int,
                    eos_token_id: int = 0, cpus: int = 1) -> CorpusIndex:
    """Index pre-tokenized documents (ids "d0", "d1", ...): exact control for oracle tests."""
    docs = ((f"d{i}", np.asarray(t, dtype=np.int64), {}) for i, t in enumerate(token_lists))
    return build_index_from_ids(docs, out_dir, vocab_size=vocab_size, eos_token_id=eos_token_id, cpus=cpus)


def brute_count(token_lists: Sequence[Sequence[int]], query: Sequence[int]) -> int:
    """Occurrences of ``query`` inside the documents (never across them)."""
    q, n = list(query), len(query)
    return sum(1 for t in token_lists for i in range(len(t) - n + 1) if list(t[i:i + n]) == q)


def brute_longest(token_lists: Sequence[Sequence[int]], ids: Sequence[int]) -> list[int]:
    """For every start s, the longest prefix of ids[s:] occurring inside some document."""
    grams = set()
    for t in token_lists:
        t = list(t)
        for i in range(len(t)):
            for j in range(i + 1, min(len(t), i + len(ids)) + 1):
                grams.add(tuple(t[i:j]))
    out = []
    for s in range(len(ids)):
        n = 0
        while s + n < len(ids) and tuple(ids[s:s + n + 1]) in grams:
            n += 1
        out.append(n)
    return out
