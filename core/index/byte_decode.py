"""Decoding byte-level BPE ids without the tokenizer: a table of each id's bytes.

A Hugging Face ``tokenizers`` tokenizer with a ``ByteLevel`` decoder decodes ids by mapping every
character of every token back to its byte (a token with a character outside that map contributes
its own UTF-8 bytes) and reading the concatenation as UTF-8 with U+FFFD for invalid sequences.
:class:`ByteDecoder` does the same from a per-id table, so decoding a document window and two of
its prefixes costs one join and three ``bytes.decode`` calls. Sequences holding an added (special)
token, which the library decodes piecewise, go to the tokenizer itself. :func:`byte_decoder`
returns None (use the tokenizer) unless the tokenizer is byte-level and a seeded sample of ids and
id sequences decodes identically both ways; ``tests/test_byte_decode.py`` checks the equality on
arbitrary sequences, partial UTF-8 characters included.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from core.index.tokenizer import fast_backend

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _char_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` (the ByteLevel alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _token_bytes(token: str | None) -> bytes:
    if token is None:
        return b""
    table = _char_to_byte()
    if all(c in table for c in token):
        return bytes(table[c] for c in token)
    return token.encode("utf-8")


class ByteDecoder:
    """``decode`` equal to the byte-level tokenizer's ``decode(ids, skip_special_tokens=False)``."""

    def __init__(self, backend):
        self._backend = backend
        added = backend.get_added_tokens_decoder()
        size = max([backend.get_vocab_size(with_added_tokens=True)] + [i + 1 for i in added])
        table = [b"" if i in added else _token_bytes(backend.id_to_token(i)) for i in range(size)]
        self._blob = np.frombuffer(b"".join(table), dtype=np.uint8)
        self._len = np.array([len(t) for t in table], dtype=np.int64)
        self._start = np.cumsum(self._len) - self._len
        self._special = np.zeros(size, dtype=bool)  # added tokens: decoded by the tokenizer
        self._special[list(added)] = True
        self.plain_ids = [i for i in range(size) if not self._special[i]]

    def decode_prefixes(self, ids: Sequence[int], cuts: Sequence[int]) -> list[str]:
        """``[decode(ids)] + [decode(ids[:c]) for c in cuts]`` from one byte string."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self._len) or self._special[arr].any()):
            seqs = [arr.tolist()] + [arr[:c].tolist() for c in cuts]
            return self._backend.decode_batch(seqs, skip_special_tokens=False)
        lens = self._len[arr]
        ends = np.cumsum(lens)
        total = int(ends[-1]) if arr.size else 0
        gather = np.repeat(self._start[arr] - (ends - lens), lens) + np.arange(total)
        data = self._blob[gather].tobytes()
        bounds = [int(ends[c - 1]) if c > 0 else 0 for c in cuts]
        return [data.decode("utf-8", "replace")] + [data[:e].decode("utf-8", "replace") for e in bounds]

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_prefixes(ids, ())[0]


_MADE: dict[int, tuple] = {}  # id(backend) -> (backend, its size, checks, decoder): the last few made


def byte_decoder(tokenizer, n_checks: int = 400, seed: int = 0) -> ByteDecoder | None:
    """A :class:`ByteDecoder` for a fast tokenizer with a ByteLevel decoder, or None.

    The last few are kept per tokenizer backend (and its size: ``add_tokens`` changes it), as the
    table takes a few tenths of a second to make and every trace call asks for it."""
    from tokenizers import decoders

    backend = fast_backend(tokenizer)
    if backend is None or not isinstance(backend.decoder, decoders.ByteLevel):
        return None
    size = backend.get_vocab_size(with_added_tokens=True)
    made = _MADE.get(id(backend))
    if made is not None and made[0] is backend and made[1:3] == (size, (n_checks, seed)):
        return made[3]
    dec = _make(backend, n_checks, seed)
    if len(_MADE) >= 4:
        _MADE.pop(next(iter(_MADE)))
    _MADE[id(backend)] = (backend, size, (n_checks, seed), dec)  # holds the backend: its id stays its own
    return dec


def _make(backend, n_checks: int, seed: int) -> ByteDecoder | None:
    dec = ByteDecoder(backend)
    rng = random.Random(seed)
    plain = dec.plain_ids
    if not plain:
        return None
    checks = [[i] for i in rng.sample(plain, min(n_checks, len(plain)))]
    checks += [[rng.choice(plain) for _ in range(rng.randrange(2, 40))] for _ in range(n_checks // 4)]
    want = backend.decode_batch(checks, skip_special_tokens=False)
    bad = [c for c, w in zip(checks, want) if dec.decode(c) != w]
    if bad:
        log.warning("byte-level table decode differs from the tokenizer on %s; decoding with the tokenizer",
                    bad[0])
        return None
    return dec
