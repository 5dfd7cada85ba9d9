"""CorpusIndex: exact n-gram queries over a tokenized corpus (one or several infini-gram shards).

Counting runs in infini-gram's C++ engine; documents, offsets and the suffix array are also
memory-mapped with numpy, so maximal-span search (:mod:`core.index.sa_search`), locating occurrences and
reading windows are vectorised and never load a shard into RAM. Build indexes with
:func:`build_index` (in :mod:`core.index.build`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError, IndexMismatch, QueryOutOfRange
from core.index import layout as fmt
from core.index.sa_search import ShardSearcher, find_many, longest_matches_many
from core.index.shards import Shard, doc_id_of, engine_safe_path, expand_dirs, shard_paths

log = logging.getLogger(__name__)

CORPUS_ORDER_LIMIT = 1 << 20  # spans with more occurrences are sampled in suffix-array order (see occurrences)


@dataclass(frozen=True)
class Occurrence:
    doc_ix: int  # document index across all shards
    doc_id: str  # corpus id from the document's metadata (str(doc_ix) when it has none)
    start: int  # token offset of the match inside its document
    doc_len: int  # document length in tokens


class CorpusIndex:
    """An opened index. Use :meth:`open`; all token ids are index-tokenizer ids."""

    def __init__(self, dirs: list[Path], manifests: list[dict | None], token_dtype: str, vocab_size: int,
                 eos_token_id: int):
        from infini_gram.engine import InfiniGramEngine

        self.dirs = dirs
        self.token_dtype, self.vocab_size, self.eos_token_id = token_dtype, vocab_size, eos_token_id
        self._manifests = manifests
        self._shards = [Shard(*paths, token_dtype) for d in dirs for paths in shard_paths(d)]
        from core.index.verify import check_on_open

        check_on_open(dirs, manifests, self._shards, vocab_size)  # a damaged index never reaches the engine
        self._doc_base = np.cumsum([0] + [s.doc_cnt for s in self._shards])
        self.num_docs = int(self._doc_base[-1])
        self.num_tokens = sum(s.tok_cnt - s.doc_cnt for s in self._shards)  # separators excluded
        self._links = tempfile.TemporaryDirectory(prefix="propme_ix_")  # see engine_safe_path
        paths = [engine_safe_path(d, Path(self._links.name) / f"s{i}") for i, d in enumerate(dirs)]
        self._engine = InfiniGramEngine(index_dir=paths, eos_token_id=eos_token_id, vocab_size=vocab_size,
                                        version=4, token_dtype=token_dtype)
        self._counts: np.ndarray | None = None
        self._searchers: list[ShardSearcher] | None = None
        self._found: dict[tuple[int, ...], list[tuple[int, int]]] = {}  # see prefetch
        self._checked: tuple[object, int] | None = None  # see check_tokenizer

    @classmethod
    def open(cls, index_dirs: str | Path | Sequence[str | Path], *, tokenizer=None, eos_token_id: int | None = None,
             vocab_size: int | None = None, token_dtype: str | None = None) -> CorpusIndex:
        """Open one folder, several folders (one shard each) or a folder of shard folders.

        Our folders need a valid manifest (else :class:`IndexNotBuilt`). A prebuilt infini-gram index
        (no manifest, none of our files) opens with the given or inferred dtype/vocab/eos.
        """
        dirs = expand_dirs(index_dirs)
        manifests = [fmt.manifest_if_ours(d) for d in dirs]
        ours = [m for m in manifests if m is not None]
        if ours and len(ours) != len(manifests):
            raise IndexMismatch(f"Cannot mix our index folders with prebuilt infini-gram folders: {dirs}; "
                                "open them separately, or rebuild the prebuilt ones with `python -m core index build`")
        if ours:
            for key in ("tokenizer_fingerprint", "token_dtype", "vocab_size"):
                values = {m[key] for m in ours}
                if len(values) > 1:
                    raise IndexMismatch(f"Shards {[str(d) for d in dirs]} disagree on {key}: {sorted(map(str, values))}; "
                                        "every shard of one index must be built with the same tokenizer: rebuild "
                                        "the odd ones")
            token_dtype, vocab_size = ours[0]["token_dtype"], ours[0]["vocab_size"]
            eos_token_id = ours[0]["eos_token_id"]
        else:
            token_dtype = token_dtype or fmt.infer_token_dtype(dirs[0])
            vocab_size = vocab_size or (0xFFFF if token_dtype == "u16" else 0)
            if eos_token_id is None:
                eos = getattr(tokenizer, "eos_token_id", None)
                eos_token_id = int(eos) if eos is not None else 0
        index = cls(dirs, manifests, token_dtype, vocab_size or 1, eos_token_id)
        if not vocab_size:  # prebuilt u32 index: the largest id in use decides
            index.vocab_size = max(s.token_max(fmt.separator_id(token_dtype)) for s in index._shards) + 1
        if tokenizer is not None:
            index.check_tokenizer(tokenizer)
        return index

    # ---- identity -------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        if len(self._manifests) == 1:
            return dict(self._manifests[0] or {})
        return {"shards": [dict(m or {}) for m in self._manifests], "fingerprint": self.fingerprint}

    @property
    def fingerprint(self) -> str:
        fps = [m["fingerprint"] if m else fmt.prebuilt_fingerprint(d, self.token_dtype)
               for d, m in zip(self.dirs, self._manifests)]
        return fps[0] if len(fps) == 1 else hashlib.sha256(json.dumps(fps).encode()).hexdigest()

    @property
    def tokenizer_name(self) -> str | None:
        return (self._manifests[0] or {}).get("tokenizer_name")

    @property
    def tokenizer_fingerprint(self) -> str | None:
        return (self._manifests[0] or {}).get("tokenizer_fingerprint")

    def check_tokenizer(self, tokenizer) -> None:
        """Raise :class:`IndexMismatch` unless ``tokenizer`` is the one the index was built with.

        The last tokenizer object that passed is remembered with its length (``add_tokens`` changes
        it): a run checks the same tokenizer once per trace chunk, and a fingerprint hashes the vocab."""
        from core.index.tokenizer import tokenizer_fingerprint, tokenizer_identity, tokenizer_vocab_size

        if self._checked is not None and self._checked[0] is tokenizer and self._checked[1] == len(tokenizer):
            return
        if self.tokenizer_fingerprint is None:  # prebuilt index: only the id range can be checked
            if tokenizer_vocab_size(tokenizer) > self.vocab_size:
                raise IndexMismatch(f"Tokenizer {tokenizer_identity(tokenizer)} has {tokenizer_vocab_size(tokenizer)} "
                                    f"ids but the index at {self.dirs[0]} holds ids below {self.vocab_size}")
        else:
            fp = tokenizer_fingerprint(tokenizer)
            if fp != self.tokenizer_fingerprint:
                raise IndexMismatch(
                    f"The index at {self.dirs[0]} was built with tokenizer {self.tokenizer_name!r} "
                    f"(fingerprint {self.tokenizer_fingerprint[:12]}), but the tokenizer in use is "
                    f"{tokenizer_identity(tokenizer)!r} (fingerprint {fp[:12]}); rebuild the index with it "
                    "or choose the matching tokenizer")
        self._checked = (tokenizer, len(tokenizer))

    # ---- queries --------------------------------------------------------------------------------
    def _ids(self, ids) -> list[int]:
        out = [int(i) for i in ids]
        bad = [i for i in out if not 0 <= i < self.vocab_size]
        if bad:
            raise QueryOutOfRange(f"token id {bad[0]} outside [0, {self.vocab_size}) of the index at {self.dirs[0]}")
        return out

    def _find(self, ids) -> tuple[int, list[tuple[int, int]]]:
        q = tuple(self._ids(ids))
        segments = self._found.get(q)
        if segments is None:
            res = self._engine.find(input_ids=list(q))
            segments = [tuple(map(int, seg)) for seg in res["segment_by_shard"]]
        return sum(e - s for s, e in segments), segments

    def prefetch(self, queries: Sequence[Sequence[int]]) -> None:
        """Look up many non-empty token sequences in one vectorised suffix-array search, so that
        :meth:`count`, :meth:`occurrences` and :meth:`distinct_docs` of them need no engine call
        (the last few thousand are kept)."""
        qs = list(dict.fromkeys(tuple(self._ids(q)) for q in queries if len(q)))
        if len(self._found) + len(qs) > 16384:
            self._found.clear()
        self._found.update(zip(qs, find_many(self._shard_searchers(), [list(q) for q in qs])))

    def _shard_searchers(self) -> list[ShardSearcher]:
        if self._searchers is None:
            self._searchers = [ShardSearcher(s) for s in self._shards]
        return self._searchers

    def count(self, ids) -> int:
        """Occurrences of the token sequence ``ids`` in the corpus (never across documents)."""
        if len(ids) == 0:
            return self.num_tokens
        return self._find(ids)[0]

    def longest_matches(self, ids) -> list[int]:
        """For every start s, the length of the longest prefix of ``ids[s:]`` occurring in the index."""
        return self.longest_matches_many([ids])[0]

    def longest_matches_many(self, queries: Sequence[Sequence[int]]) -> list[list[int]]:
        """:meth:`longest_matches` of several queries in one vectorised suffix-array search
        (:mod:`core.index.sa_search`; no engine calls)."""
        qs = [self._ids(q) for q in queries]
        return [a.tolist() for a in longest_matches_many(self._shard_searchers(), qs)]

    def longest_matches_engine(self, ids) -> list[int]:
        """:meth:`longest_matches` through infini-gram's ``creativity`` (slow: a thread per start;
        kept as an independent oracle for tests and benchmarks)."""
        q = self._ids(ids)
        if not q:
            return []
        rs = self._engine.creativity(input_ids=q)["rs"]
        lengths = [int(r) - s for s, r in enumerate(rs)]
        # infini-gram compares the query with both suffix-array neighbours of its insertion point,
        # except when it sorts before a shard's first suffix: that shard then reports 0. Each shard's
        # answer is exact or 0, so one shard needs a second look at 0s only, several at every value.
        multi = len(self._shards) > 1
        for s, n in enumerate(lengths):
            if s + n < len(q) and (multi or n == 0) and self._occurs(q[s:s + n + 1]):
                lengths[s] = self._extend(q, s, n + 1)
        return lengths

    def _occurs(self, ids: list[int]) -> bool:
        return self._find(ids)[0] > 0

    def _extend(self, q: list[int], s: int, lo: int) -> int:
        """Largest k >= lo such that q[s:s+k] occurs, given that q[s:s+lo] does (binary search:
        every prefix of an occurring sequence occurs)."""
        hi = len(q) - s
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self._occurs(q[s:s + mid]) else (lo, mid - 1)
        return lo

    def _at(self, si: int, ptrs: np.ndarray) -> list[Occurrence]:
        """Occurrences at byte pointers ``ptrs`` of shard ``si``."""
        shard = self._shards[si]
        local, start, length = shard.locate(ptrs)
        out = []
        for li, st, ln in zip(local.tolist(), start.tolist(), length.tolist()):
            ix = int(self._doc_base[si] + li)
            out.append(Occurrence(ix, self.doc_id(ix), st, ln))
        return out

    def _locate(self, picks: np.ndarray, segments: list[tuple[int, int]], corpus_order: bool) -> list[Occurrence]:
        """Occurrences at positions ``picks`` of the span's occurrences listed shard after shard, each
        shard's in corpus order (``corpus_order``: all of them are read and sorted) or in suffix-array order."""
        out, first = [], 0
        for si, (seg_start, seg_end) in enumerate(segments):
            n = seg_end - seg_start
            mine = picks[(picks >= first) & (picks < first + n)] - first
            if mine.size:
                shard = self._shards[si]
                if corpus_order and mine.size < n:
                    ptrs = np.sort(shard.ptrs(np.arange(seg_start, seg_end, dtype=np.int64)))[mine]
                else:
                    ptrs = shard.ptrs(mine + seg_start)
                out.extend(self._at(si, ptrs))
            first += n
        return sorted(out, key=lambda o: (o.doc_ix, o.start))

    def occurrences(self, ids, k: int, seed: int, spread: str = "random") -> list[Occurrence]:
        """All occurrences if at most ``k``, else ``k`` of them: a seeded uniform sample ("random") or
        evenly spaced ("even") in corpus order (document, then offset), so one index and any split of it
        into shards sample the same occurrences. Spans with more than :data:`CORPUS_ORDER_LIMIT`
        occurrences (reading them all would cost too much) are sampled in suffix-array order, shard after
        shard, which depends on the layout. Sorted by (doc_ix, start)."""
        if spread not in ("random", "even"):
            raise ConfigError(f"spread must be 'random' or 'even', got {spread!r}")
        cnt, segments = self._find(ids)
        if cnt == 0 or k <= 0:
            return []
        if cnt <= k:
            picks = np.arange(cnt)
        elif spread == "random":
            picks = np.sort(np.random.default_rng(seed).choice(cnt, size=k, replace=False))
        else:
            picks = (np.arange(k, dtype=np.int64) * cnt) // k
        return self._locate(picks.astype(np.int64), segments, corpus_order=cnt <= CORPUS_ORDER_LIMIT)

    def distinct_docs(self, ids, cap: int) -> int:
        """Number of distinct documents containing ``ids``, counted up to ``cap``."""
        _cnt, segments = self._find(ids)
        seen: set[int] = set()
        for si, (s, e) in enumerate(segments):
            shard = self._shards[si]
            for lo in range(s, e, 4096):
                local, _, _ = shard.locate(shard.ptrs(np.arange(lo, min(e, lo + 4096))))
                seen.update((local + int(self._doc_base[si])).tolist())
                if len(seen) >= cap:
                    return cap
        return len(seen)

    def search(self, text_or_ids, tokenizer=None, max_docs: int = 20) -> tuple[int, list[Occurrence]]:
        """Phrase search: (count, up to ``max_docs`` evenly spread occurrences)."""
        if isinstance(text_or_ids, str):
            if tokenizer is None:
                raise ConfigError("search(text) needs the index tokenizer; pass tokenizer= or token ids")
            ids = tokenizer(text_or_ids, add_special_tokens=False)["input_ids"]
        else:
            ids = list(text_or_ids)
        if not ids:
            return 0, []
        return self.count(ids), self.occurrences(ids, max_docs, seed=0, spread="even")

    # ---- documents ------------------------------------------------------------------------------
    def _where(self, doc_ix: int) -> tuple[Shard, int]:
        if not 0 <= doc_ix < self.num_docs:
            raise QueryOutOfRange(f"doc_ix {doc_ix} outside [0, {self.num_docs}) of the index at {self.dirs[0]}")
        si = int(np.searchsorted(self._doc_base, doc_ix, side="right") - 1)
        return self._shards[si], doc_ix - int(self._doc_base[si])

    def doc_tokens(self, doc_ix: int, lo: int = 0, hi: int | None = None) -> list[int]:
        """Token ids of a document (or of its slice [lo, hi))."""
        shard, i = self._where(doc_ix)
        return shard.doc_tokens(i, lo, hi)

    def _meta(self, doc_ix: int) -> dict:
        shard, i = self._where(doc_ix)
        return shard.meta_of(i)

    def doc_metadata(self, doc_ix: int) -> dict:
        """The document's metadata (ours: the corpus row's metadata; prebuilt: the stored JSON line)."""
        m = self._meta(doc_ix)
        return dict(m.get("metadata", {})) if "doc_id" in m else m

    def doc_id(self, doc_ix: int) -> str:
        return doc_id_of(self._meta(doc_ix), doc_ix)

    def doc_lengths(self) -> np.ndarray:
        """Length in tokens of every document, in doc_ix order."""
        return np.concatenate([s.doc_lengths() for s in self._shards])

    def doc_window(self, occ: Occurrence, match_len: int, window_tokens: int) -> tuple[list[int], int]:
        """A window of ``window_tokens`` tokens centred on the match, clipped to the document.

        Returns (window ids, offset of the match inside the window).
        """
        pad = max(0, window_tokens - match_len)
        lo = max(0, occ.start - pad // 2)
        hi = min(occ.doc_len, occ.start + match_len + (pad - pad // 2))
        return self.doc_tokens(occ.doc_ix, lo, hi), occ.start - lo

    def _window_bounds(self, occs: Sequence[Occurrence], match_len: int, window_tokens: int):
        """Per occurrence: document index, window [lo, hi) centred on the match and clipped
        to its document, and the shard holding the document (one rule for local and cluster indexes)."""
        ix = np.array([o.doc_ix for o in occs], dtype=np.int64)
        start = np.array([o.start for o in occs], dtype=np.int64)
        length = np.array([o.doc_len for o in occs], dtype=np.int64)
        if ix.min() < 0 or ix.max() >= self.num_docs:
            raise QueryOutOfRange(f"doc_ix outside [0, {self.num_docs}) of the index at {self.dirs[0]}")
        pad = max(0, window_tokens - match_len)
        lo = np.maximum(0, start - pad // 2)
        hi = np.minimum(length, start + match_len + (pad - pad // 2))
        return ix, lo, hi, np.searchsorted(self._doc_base, ix, side="right") - 1

    def doc_windows(self, occs: Sequence[Occurrence], match_len: int,
                    window_tokens: int) -> list[tuple[np.ndarray, int]]:
        """:meth:`doc_window` of many occurrences at once, windows as int64 arrays."""
        if not occs:
            return []
        ix, lo, hi, si = self._window_bounds(occs, match_len, window_tokens)
        first = np.zeros(len(occs), dtype=np.int64)
        for s in np.unique(si):
            shard, mine = self._shards[s], si == s
            first[mine] = shard.doc_bytes(ix[mine] - self._doc_base[s])[0] // shard.width + 1
        flat = [np.asarray(sh.tokens) for sh in self._shards]  # plain views: cheap slicing
        return [(flat[s][f + a:f + b].astype(np.int64), int(o.start - a))
                for s, f, a, b, o in zip(si.tolist(), first.tolist(), lo.tolist(), hi.tolist(), occs)]

    # ---- unigram statistics ---------------------------------------------------------------------
    def unigram_counts(self) -> np.ndarray:
        """int64 [vocab_size]: occurrences of every token id (separators excluded)."""
        if self._counts is None:
            if all(m is not None for m in self._manifests):
                self._counts = sum(np.load(d / fmt.COUNTS) for d in self.dirs)
            else:
                sep = fmt.separator_id(self.token_dtype)
                self._counts = sum(s.unigram_counts(self.vocab_size, sep) for s in self._shards)
        return self._counts

    def unigram_log_probs(self) -> np.ndarray:
        """float64 [vocab_size]: log(count / num_tokens); unseen ids get log(0.5 / num_tokens)."""
        counts = np.maximum(self.unigram_counts().astype(np.float64), 0.5)
        return np.log(counts) - np.log(max(self.num_tokens, 1))

    def __repr__(self) -> str:
        return (f"CorpusIndex({[str(d) for d in self.dirs]}, docs={self.num_docs}, tokens={self.num_tokens}, "
                f"dtype={self.token_dtype})")
