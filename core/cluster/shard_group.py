"""The Ray actor of cluster tracing: one group of an index's shards, memory-mapped on the node that
holds them, answering the driver's batched look-ups for them (:class:`core.cluster.index.ClusterIndex`
combines the groups' answers exactly as a local multi-shard index combines its shards')."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import IndexNotBuilt
from core.index import layout as fmt
from core.index.shards import doc_id_of


class ShardGroup:
    """A Ray actor's shards: the shard folders ``dirs`` (paths on the actor's node), memory-mapped."""

    def __init__(self, dirs: Sequence[str]):
        from core.index.sa_search import ShardSearcher
        from core.index.shards import Shard, shard_paths

        self.dirs = [Path(d) for d in dirs]
        self.manifests, self.dtypes, self.dir_shards, self.shards = [], [], [], []
        for d in self.dirs:
            if not d.is_dir():
                raise IndexNotBuilt(f"No index at {d} on this node: the folder does not exist")
            manifest = fmt.manifest_if_ours(d)
            dtype = manifest["token_dtype"] if manifest else fmt.infer_token_dtype(d)
            opened = [Shard(*paths, dtype) for paths in shard_paths(d)]
            self.manifests.append(manifest)
            self.dtypes.append(dtype)
            self.dir_shards.append(len(opened))
            self.shards.extend(opened)
        from core.index.verify import check_on_open

        known = next((m["vocab_size"] for m in self.manifests if m is not None), None)
        check_on_open(self.dirs, self.manifests, self.shards, known)  # a damaged shard is refused, as locally
        self.searchers = [ShardSearcher(s) for s in self.shards]
        self.base: list[int] = [0] * len(self.shards)  # global index of each shard's first document

    def info(self) -> dict:
        import ray

        fps = [m["fingerprint"] if m else fmt.prebuilt_fingerprint(d, dtype)
               for d, m, dtype in zip(self.dirs, self.manifests, self.dtypes)]
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
        return self.shards[j].doc_tokens(i, lo, hi)

    def meta(self, j: int, i: int) -> dict:
        return self.shards[j].meta_of(i)

    def doc_id(self, j: int, i: int) -> str:
        return doc_id_of(self.shards[j].meta_of(i), self.base[j] + i)

    def doc_lengths(self) -> list[np.ndarray]:
        return [s.doc_lengths() for s in self.shards]

    def counts(self, vocab_size: int, token_dtype: str) -> np.ndarray:
        if all(m is not None for m in self.manifests):
            return sum(np.load(d / fmt.COUNTS) for d in self.dirs)
        sep = fmt.separator_id(token_dtype)
        return sum(s.unigram_counts(vocab_size, sep) for s in self.shards)

    def token_max(self, token_dtype: str) -> int:
        return max(s.token_max(fmt.separator_id(token_dtype)) for s in self.shards)
