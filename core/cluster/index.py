"""Tracing on a Ray cluster: the index's shards held by Ray actors on the nodes that hold them.

:func:`open_cluster_index` returns a :class:`ClusterIndex`: the same interface as
:class:`core.index.corpus_index.CorpusIndex` (tracing, prompts and the app use it unchanged), whose
shard work runs in ``ShardGroup`` actors. Each actor memory-maps its group of shards as a local
tracing worker does (:mod:`core.tracing.parallel`) and answers for them; the driver sends every
batch of completions' lookups to every group at once (``longest_matches_many``, ``prefetch``) and
combines the per-shard answers exactly as ``CorpusIndex`` combines its shards': the longest match is
the maximum over shards, the rank ranges are listed shard after shard in index order, occurrences
are sampled over that list and located by the shard's group, and documents are numbered shard after
shard. So spans, counts, sampled documents, tiers and nv_recall equal those of a local trace.

The actor is :class:`core.cluster.shard_group.ShardGroup`; which shards each holds, and on which node, is
:func:`core.cluster.placement.plan_groups`.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from core.cluster.placement import plan_groups
from core.cluster.shard_group import ShardGroup
from core.errors import ConfigError, IndexMismatch, IndexNotBuilt, QueryOutOfRange
from core.index import layout as fmt
from core.index.corpus_index import CorpusIndex, Occurrence

LOCATE_AHEAD = 32  # prefetch locates every occurrence of sequences that occur at most this often


def open_cluster_index(index_dirs, address: str, *, tokenizer=None, actors_per_node: int | None = None) -> ClusterIndex:
    """The index at ``index_dirs`` served by shard-group actors on the Ray cluster at ``address``
    (``actors_per_node``: see :func:`plan_groups`)."""
    from core.cluster import alive_nodes, connect, on_node

    ray = connect(address)
    groups, ordered = plan_groups(index_dirs, alive_nodes(ray), actors_per_node)
    if not groups:
        raise IndexNotBuilt(f"No index folders in {index_dirs}; " + fmt.BUILD_HINT.format(path="<folder>"))
    actor_cls = ray.remote(ShardGroup)
    actors = []
    for dirs, node, _pinned in groups:
        opts = {"num_cpus": 0}
        if node is not None:
            opts["scheduling_strategy"] = on_node(node)  # a live node (plan_groups): held there
        actors.append(actor_cls.options(**opts).remote(dirs))
    infos = ray.get([a.info.remote() for a in actors])
    return ClusterIndex(ray, address, groups, ordered, actors, infos, tokenizer=tokenizer)


class ClusterIndex(CorpusIndex):
    """A :class:`CorpusIndex` whose shards live in :class:`ShardGroup` actors (see the module docstring).

    Inherited methods (count, occurrences, search, doc_window, doc_id, unigram_log_probs, ...) run
    unchanged on top of the overridden shard-level ones."""

    def __init__(self, ray, address: str, groups, ordered, actors, infos, tokenizer=None):
        self._ray, self.address, self._actors = ray, address, actors
        # every folder, in index order, with its group
        entries = []  # (folder, group, first local shard, shard count, manifest, fingerprint)
        for g, ((dirs, _node, _pinned), info) in enumerate(zip(groups, infos)):
            j = 0
            for d, m, fp, k in zip(dirs, info["manifests"], info["fingerprints"], info["dir_shards"]):
                entries.append((Path(d), g, j, k, m, fp))
                j += k
        position = {d: i for i, d in enumerate(ordered)}
        entries.sort(key=lambda e: position[str(e[0])])
        self.dirs = [e[0] for e in entries]
        self._manifests = [e[4] for e in entries]
        self._dir_fps = [e[5] for e in entries]
        self._where_shard: list[tuple[int, int]] = [(e[1], e[2] + i) for e in entries for i in range(e[3])]
        self._doc_cnt = [infos[g]["doc_cnt"][j] for g, j in self._where_shard]
        self._tok_cnt = [infos[g]["tok_cnt"][j] for g, j in self._where_shard]
        self._doc_base = np.cumsum([0] + self._doc_cnt)
        self.num_docs = int(self._doc_base[-1])
        self.num_tokens = sum(t - d for t, d in zip(self._tok_cnt, self._doc_cnt))
        self.nodes = [info["node"] for info in infos]
        ours = [m for m in self._manifests if m is not None]
        if ours and len(ours) != len(self._manifests):
            raise IndexMismatch(f"Cannot mix our index folders with prebuilt infini-gram folders: {self.dirs}")
        for key in ("tokenizer_fingerprint", "token_dtype", "vocab_size"):
            values = {m[key] for m in ours}
            if len(values) > 1:
                raise IndexMismatch(f"Shards {[str(d) for d in self.dirs]} disagree on {key}: {sorted(map(str, values))}; "
                                    "every shard of one index must be built with the same tokenizer: rebuild the odd ones")
        if ours:
            self.token_dtype, self.vocab_size, self.eos_token_id = (ours[0]["token_dtype"], ours[0]["vocab_size"],
                                                                    ours[0]["eos_token_id"])
        else:
            self.token_dtype = fmt.infer_token_dtype(self.dirs[0])
            self.vocab_size = 0xFFFF if self.token_dtype == "u16" else 1 + max(
                ray.get([a.token_max.remote(self.token_dtype) for a in actors]))
            eos = getattr(tokenizer, "eos_token_id", None)
            self.eos_token_id = int(eos) if eos is not None else 0
        # each group's global first document of its shards
        bases: dict[int, dict[int, int]] = defaultdict(dict)
        for si, (g, j) in enumerate(self._where_shard):
            bases[g][j] = int(self._doc_base[si])
        ray.get([a.set_base.remote([bases[g][j] for j in range(len(infos[g]["doc_cnt"]))])
                 for g, a in enumerate(actors)])
        self._counts = None
        self._found = {}
        self._located: dict[tuple[int, ...], dict[int, tuple]] = {}  # see prefetch
        self._current: tuple[int, ...] | None = None  # the query of the last _find (see _locate)
        self._checked = None
        if tokenizer is not None:
            self.check_tokenizer(tokenizer)

    # ---- identity -------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        fps = self._dir_fps
        return fps[0] if len(fps) == 1 else hashlib.sha256(json.dumps(fps).encode()).hexdigest()

    def close(self) -> None:
        """End the shard-group actors."""
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []

    # ---- shard-level work, sent to the groups ----------------------------------------------------
    def _per_group(self, method: str, *args) -> list:
        return self._ray.get([getattr(a, method).remote(*args) for a in self._actors])

    def _segments(self, answers: list[tuple[list, dict]], n: int) -> list[list[tuple[int, int]]]:
        """Per query, the rank ranges of every shard in index order, from the groups' answers."""
        return [[answers[g][0][q][j] for g, j in self._where_shard] for q in range(n)]

    def _find(self, ids):
        q = tuple(self._ids(ids))
        self._current = q
        segments = self._found.get(q)
        if segments is None:
            segments = self._segments(self._per_group("find", [list(q)]), 1)[0]
        return sum(e - s for s, e in segments), segments

    def prefetch(self, queries) -> None:
        """As ``CorpusIndex.prefetch``, and every occurrence of the sequences that occur at most
        :data:`LOCATE_AHEAD` times is located in the same call (most kept spans are rare)."""
        qs = list(dict.fromkeys(tuple(self._ids(q)) for q in queries if len(q)))
        if len(self._found) + len(qs) > 16384:
            self._found.clear()
            self._located.clear()
        if qs:
            answers = self._per_group("find", [list(q) for q in qs], LOCATE_AHEAD)
            found = self._segments(answers, len(qs))
            self._found.update(zip(qs, found))
            for i, q in enumerate(qs):
                if 0 < sum(e - s for s, e in found[i]) <= LOCATE_AHEAD:
                    self._located[q] = {si: answers[g][1][i, j] for si, (g, j) in enumerate(self._where_shard)
                                        if (i, j) in answers[g][1]}

    def longest_matches_many(self, queries) -> list[list[int]]:
        qs = [self._ids(q) for q in queries]
        answers = self._per_group("longest", qs)
        best = [np.zeros(len(q), dtype=np.int64) for q in qs]
        for ans in answers:
            for b, a in zip(best, ans):
                np.maximum(b, a, out=b)
        return [b.tolist() for b in best]

    def longest_matches_engine(self, ids) -> list[int]:
        raise ConfigError("longest_matches_engine needs infini-gram's engine in this process; a cluster index "
                          "answers longest_matches only")

    def _locate(self, picks: np.ndarray, segments, corpus_order: bool) -> list[Occurrence]:
        # CorpusIndex.occurrences calls _find(ids) then _locate: the query is self._current
        located = self._located.get(self._current) if self._current is not None else None
        if located is not None and corpus_order:
            return self._take(picks, segments, located)
        requests: dict[int, list] = defaultdict(list)
        shard_of: dict[int, list[int]] = defaultdict(list)
        first = 0
        for si, (seg_start, seg_end) in enumerate(segments):
            n = seg_end - seg_start
            mine = picks[(picks >= first) & (picks < first + n)] - first
            if mine.size:
                g, j = self._where_shard[si]
                requests[g].append((j, seg_start, seg_end, mine, corpus_order))
                shard_of[g].append(si)
            first += n
        groups = list(requests)
        answers = self._ray.get([self._actors[g].locate.remote(requests[g]) for g in groups])
        out = []
        for g, ans in zip(groups, answers):
            for si, (local, start, length, ids) in zip(shard_of[g], ans):
                base = int(self._doc_base[si])
                out.extend(Occurrence(base + li, d, st, ln)
                           for li, d, st, ln in zip(local.tolist(), ids, start.tolist(), length.tolist()))
        return sorted(out, key=lambda o: (o.doc_ix, o.start))

    def _take(self, picks: np.ndarray, segments, located: dict[int, tuple]) -> list[Occurrence]:
        """``_locate`` from occurrences located ahead (each shard's in corpus order: the order
        ``CorpusIndex._locate`` picks from when it samples, and sorts into when it takes them all)."""
        out, first = [], 0
        for si, (seg_start, seg_end) in enumerate(segments):
            n = seg_end - seg_start
            mine = picks[(picks >= first) & (picks < first + n)] - first
            if mine.size:
                local, start, length, ids = located[si]
                base = int(self._doc_base[si])
                out.extend(Occurrence(base + int(local[m]), ids[m], int(start[m]), int(length[m])) for m in mine.tolist())
            first += n
        return sorted(out, key=lambda o: (o.doc_ix, o.start))

    def distinct_docs(self, ids, cap: int) -> int:
        _cnt, segments = self._find(ids)
        requests: dict[int, list] = defaultdict(list)
        for si, (s, e) in enumerate(segments):
            if e > s:
                g, j = self._where_shard[si]
                requests[g].append((j, s, e))
        if not requests:
            return 0
        counts = self._ray.get([self._actors[g].distinct.remote(r, cap) for g, r in requests.items()])
        return min(cap, sum(counts))

    def _shard_of(self, doc_ix: int) -> tuple[int, int]:
        if not 0 <= doc_ix < self.num_docs:
            raise QueryOutOfRange(f"doc_ix {doc_ix} outside [0, {self.num_docs}) of the index at {self.dirs[0]}")
        si = int(np.searchsorted(self._doc_base, doc_ix, side="right") - 1)
        return si, doc_ix - int(self._doc_base[si])

    def doc_tokens(self, doc_ix: int, lo: int = 0, hi: int | None = None) -> list[int]:
        si, i = self._shard_of(doc_ix)
        g, j = self._where_shard[si]
        return self._ray.get(self._actors[g].doc_tokens.remote(j, i, lo, hi))

    def _meta(self, doc_ix: int) -> dict:
        si, i = self._shard_of(doc_ix)
        g, j = self._where_shard[si]
        return self._ray.get(self._actors[g].meta.remote(j, i))

    def doc_lengths(self) -> np.ndarray:
        answers = self._per_group("doc_lengths")
        return np.concatenate([answers[g][j] for g, j in self._where_shard])

    def doc_windows(self, occs, match_len: int, window_tokens: int) -> list[tuple[np.ndarray, int]]:
        if not occs:
            return []
        ix, lo, hi, si = self._window_bounds(occs, match_len, window_tokens)
        requests: dict[int, list] = defaultdict(list)
        rows: dict[int, list[np.ndarray]] = defaultdict(list)
        for s in np.unique(si).tolist():
            mine = np.flatnonzero(si == s)
            g, j = self._where_shard[s]
            requests[g].append((j, ix[mine] - self._doc_base[s], lo[mine], hi[mine]))
            rows[g].append(mine)
        windows: list = [None] * len(occs)
        groups = list(requests)
        for g, ans in zip(groups, self._ray.get([self._actors[g].windows.remote(requests[g]) for g in groups])):
            for mine, arrays in zip(rows[g], ans):
                for r, w in zip(mine.tolist(), arrays):
                    windows[r] = w
        return [(w, int(o.start - a)) for w, o, a in zip(windows, occs, lo.tolist())]

    def unigram_counts(self) -> np.ndarray:
        if self._counts is None:
            self._counts = sum(self._per_group("counts", self.vocab_size, self.token_dtype))
        return self._counts

    def __repr__(self) -> str:
        return (f"ClusterIndex({[str(d) for d in self.dirs]}, groups={len(self._actors)}, docs={self.num_docs}, "
                f"tokens={self.num_tokens}, address={self.address!r})")

