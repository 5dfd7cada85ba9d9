"""Tracing on a Ray cluster: the index's shards held by Ray actors on the nodes that hold them.

:func:`open_cluster_index` returns a :class:`ClusterIndex`: the same interface as
:class:`core.index.corpus_index.CorpusIndex` (tracing, prompts and the app use it unchanged), whose
shard work runs in :class:`ShardGroup` actors. Each actor memory-maps its group of shards as a local
tracing worker does (:mod:`core.tracing.parallel`) and answers for them; the driver sends every
batch of completions' lookups to every group at once (``longest_matches_many``, ``prefetch``) and
combines the per-shard answers exactly as ``CorpusIndex`` combines its shards': the longest match is
the maximum over shards, the rank ranges are listed shard after shard in index order, occurrences
are sampled over that list and located by the shard's group, and documents are numbered shard after
shard. So spans, counts, sampled documents, tiers and nv_recall equal those of a local trace.

Groups (:func:`plan_groups`): an index built on Ray (:mod:`core.cluster.build`) records which node
holds which shard (``sharded.json`` ``placement``); each node's shards are held on that node, in up to
one group per CPU of the node. Other indexes (shared storage) are cut into contiguous groups spread
over the live nodes, again up to one per CPU.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import ConfigError, IndexMismatch, IndexNotBuilt, QueryOutOfRange
from core.index import layout as fmt
from core.index.corpus_index import CorpusIndex, Occurrence

LOCATE_AHEAD = 32  # prefetch locates every occurrence of sequences that occur at most this often


class ShardGroup:
    """A Ray actor's shards: the shard folders ``dirs`` (paths on the actor's node), memory-mapped."""

    def __init__(self, dirs: Sequence[str]):
        from core.index.sa_search import ShardSearcher
        from core.index.shards import Shard, shard_paths

        self.dirs = [Path(d) for d in dirs]
        self.manifests, self.dir_shards, self.shards = [], [], []
        for d in self.dirs:
            if not d.is_dir():
                raise IndexNotBuilt(f"No index at {d} on this node: the folder does not exist")
            ours = (d / fmt.MANIFEST).exists() or (d / fmt.COUNTS).exists() or (d / fmt.BUILDING).exists()
            manifest = fmt.read_manifest(d) if ours else None
            dtype = manifest["token_dtype"] if manifest else fmt.infer_token_dtype(d)
            opened = [Shard(*paths, dtype) for paths in shard_paths(d)]
            self.manifests.append(manifest)
            self.dir_shards.append(len(opened))
            self.shards.extend(opened)
        from core.index.verify import check_on_open

        known = next((m["vocab_size"] for m in self.manifests if m is not None), None)
        check_on_open(self.dirs, self.manifests, self.shards, known)  # a damaged shard is refused, as locally
        self.searchers = [ShardSearcher(s) for s in self.shards]
        self.base: list[int] = [0] * len(self.shards)  # global index of each shard's first document

    def info(self) -> dict:
        import ray

        fps = [m["fingerprint"] if m else _prebuilt_fingerprint(d, self.shards[0].width) for d, m in
               zip(self.dirs, self.manifests)]
        return {"manifests": self.manifests, "fingerprints": fps, "dir_shards": self.dir_shards,
                "doc_cnt": [s.doc_cnt for s in self.shards], "tok_cnt": [s.tok_cnt for s in self.shards],
                "node": ray.get_runtime_context().get_node_id()}

    def set_base(self, base: list[int]) -> None:
        self.base = list(base)

    def longest(self, queries: list[list[int]]) -> list[np.ndarray]:
        from core.index.sa_search import longest_matches_many

        return longest_matches_many(self.searchers, queries)

    def find(self, queries: list[list[int]], locate_up_to: int = 0) -> tuple[list, dict]:
        """Each query's rank range in every shard of the group and, for queries with at most
        ``locate_up_to`` occurrences in the group, all of them located: {(query, shard j): (local doc,
        start, doc length, doc ids)} in corpus order (saves the driver a locate call per span)."""
        from core.index.sa_search import find_many

        found = find_many(self.searchers, queries)
        located = {}
        for q, segments in enumerate(found):
            if 0 < sum(e - s for s, e in segments) <= locate_up_to:
                for j, (s, e) in enumerate(segments):
                    if e > s:
                        (answer,) = self.locate([(j, s, e, np.arange(e - s), True)])
                        located[q, j] = answer
        return found, located

    def locate(self, requests: list[tuple]) -> list[tuple]:
        """(local doc, start, doc length, doc ids) of the picked occurrences of each request
        ``(shard j, rank range start, end, picks within it, corpus_order)`` (as ``CorpusIndex._locate``)."""
        out = []
        for j, seg_start, seg_end, mine, corpus_order in requests:
            shard = self.shards[j]
            if corpus_order and mine.size < seg_end - seg_start:
                ptrs = np.sort(shard.ptrs(np.arange(seg_start, seg_end, dtype=np.int64)))[mine]
            else:
                ptrs = shard.ptrs(mine + seg_start)
            if mine.size == seg_end - seg_start:  # all of them: in corpus order (the caller sorts anyway)
                ptrs = np.sort(ptrs)
            local, start, length = shard.locate(ptrs)
            out.append((local, start, length, [self.doc_id(j, i) for i in local.tolist()]))
        return out

    def distinct(self, requests: list[tuple[int, int, int]], cap: int) -> int:
        """Distinct documents of the rank ranges ``(shard j, start, end)``, counted up to ``cap``."""
        total = 0
        for j, s, e in requests:
            shard, seen = self.shards[j], set()
            for lo in range(s, e, 4096):
                local, _, _ = shard.locate(shard.ptrs(np.arange(lo, min(e, lo + 4096))))
                seen.update(local.tolist())
                if total + len(seen) >= cap:
                    return cap
            total += len(seen)
        return total

    def windows(self, requests: list[tuple]) -> list[list[np.ndarray]]:
        """Token windows [lo, hi) of documents ``local`` of shard j, per request ``(j, local, lo, hi)``."""
        out = []
        for j, local, lo, hi in requests:
            shard = self.shards[j]
            first = shard.doc_bytes(local)[0] // shard.width + 1
            flat = np.asarray(shard.tokens)
            out.append([flat[f + a:f + b].astype(np.int64) for f, a, b in zip(first.tolist(), lo.tolist(), hi.tolist())])
        return out

    def doc_tokens(self, j: int, i: int, lo: int, hi: int | None) -> list[int]:
        shard = self.shards[j]
        starts, ends = shard.doc_bytes(np.array([i]))
        first, last = int(starts[0]) // shard.width + 1, int(ends[0]) // shard.width
        hi = last - first if hi is None else hi
        return shard.tokens[first + lo:first + min(hi, last - first)].astype(np.int64).tolist()

    def meta(self, j: int, i: int) -> dict:
        shard = self.shards[j]
        if shard.meta is None:
            return {}
        end = int(shard.metaoff[i + 1]) if i + 1 < shard.doc_cnt else len(shard.meta)
        return json.loads(bytes(shard.meta[int(shard.metaoff[i]):end]).decode("utf-8"))

    def doc_id(self, j: int, i: int) -> str:
        m = self.meta(j, i)
        if "doc_id" in m:
            return str(m["doc_id"])
        inner = m.get("metadata") if isinstance(m.get("metadata"), dict) else {}
        return str(inner.get("id", self.base[j] + i))

    def doc_lengths(self) -> list[np.ndarray]:
        out = []
        for s in self.shards:
            b, e = s.doc_bytes(np.arange(s.doc_cnt))
            out.append((e - b) // s.width - 1)
        return out

    def counts(self, vocab_size: int, token_dtype: str) -> np.ndarray:
        if all(m is not None for m in self.manifests):
            return sum(np.load(d / fmt.COUNTS) for d in self.dirs)
        sep = fmt.separator_id(token_dtype)
        return sum(s.unigram_counts(vocab_size, sep) for s in self.shards)

    def token_max(self, token_dtype: str) -> int:
        return max(s.token_max(fmt.separator_id(token_dtype)) for s in self.shards)


def _prebuilt_fingerprint(folder: Path, width: int) -> str:
    """As ``CorpusIndex._prebuilt_fingerprint`` (names and sizes of the folder's files)."""
    dtype = {1: "u8", 2: "u16", 4: "u32"}[width]
    sig = [(p.name, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()]
    return hashlib.sha256(json.dumps([dtype, sig]).encode()).hexdigest()


def live_node(node_id: str, address: str | None, nodes: list[dict]) -> str | None:
    """The live node ``node_id`` or, when it is gone (a Ray node gets a new id when it restarts), a live
    node at the same ``address``; None when there is none."""
    ids = [n["NodeID"] for n in nodes]
    if node_id in ids:
        return node_id
    same = [n["NodeID"] for n in nodes if address and n.get("NodeManagerAddress") == address]
    return same[0] if same else None


def _split(folders: list[str], parts: int) -> list[list[str]]:
    """``folders`` cut into at most ``parts`` contiguous, nearly equal groups."""
    parts = max(1, min(parts, len(folders)))
    size, extra = divmod(len(folders), parts)
    out, at = [], 0
    for i in range(parts):
        n = size + (i < extra)
        out.append(folders[at:at + n])
        at += n
    return [g for g in out if g]


def plan_groups(index_dirs, nodes: list[dict], actors_per_node: int | None = None
                ) -> tuple[list[tuple[list[str], str | None, bool]], list[str]]:
    """The shard folders grouped, [(folders, node id or None, pinned)], and all folders in index
    order (the order ``CorpusIndex.open(index_dirs)`` gives their shards). ``nodes``: the live nodes
    (``ray.nodes()`` entries); each gets up to ``actors_per_node`` groups (default: its CPUs), so a
    node searches its shards on all its cores.

    An index built on Ray names its nodes (``sharded.json`` placement): node-local shards are held on
    their node (found again by address after a restart), shared ones on their builder's node when it is
    alive. Other folders (and shared shards of nodes that are gone) are cut into contiguous groups
    spread over the live nodes."""
    from core.index.sharded import SHARDS_FILE
    from core.index.shards import expand_dirs

    def per_node(nid: str) -> int:
        if actors_per_node:
            return actors_per_node
        cpus = next((n.get("Resources", {}).get("CPU", 1) for n in nodes if n["NodeID"] == nid), 1)
        return max(1, int(cpus))

    groups: list[tuple[list[str], str | None, bool]] = []
    loose: list[str] = []
    ordered: list[str] = []
    for d in [index_dirs] if isinstance(index_dirs, (str, Path)) else list(index_dirs):
        d = Path(d).expanduser()
        info = json.loads((d / SHARDS_FILE).read_text(encoding="utf-8")) if (d / SHARDS_FILE).exists() else {}
        placement = info.get("placement")
        if not placement:
            loose.extend(str(x) for x in expand_dirs(d))
            ordered.extend(str(x) for x in expand_dirs(d))
            continue
        if (d / fmt.BUILDING).exists():
            raise fmt.not_built(d, "a sharded build was started here and did not finish")
        pinned = placement["storage"] == "node-local"
        for nid, held in placement["nodes"].items():
            folders = [str(d.resolve() / s) for s in held["shards"]]
            node = live_node(nid, held.get("address"), nodes)
            if node is None and pinned:
                raise IndexNotBuilt(f"Shards {held['shards'][0]}.. of {d} are on node {nid[:12]} ({held.get('address')}), "
                                    "which is not in the Ray cluster: start that node again or rebuild the index")
            if node is None:
                loose.extend(folders)
            else:
                groups.extend((g, node, pinned) for g in _split(folders, per_node(node)))
        ordered.extend(str(d.resolve() / s["name"]) for s in info["shards"])
    if loose:
        slots = [n["NodeID"] for n in nodes for _ in range(per_node(n["NodeID"]))] or [None]
        for i, g in enumerate(_split(loose, len(slots))):
            groups.append((g, slots[i], False))
    return groups, ordered


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

