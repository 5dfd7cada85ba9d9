"""Sharded index builds on a Ray cluster (``python -m core index build --sharded --ray ADDRESS``).

The same layout as the local sharded build (:mod:`core.index.sharded`), byte for byte: documents are
tokenized by Ray tasks (chunks of documents, :func:`core.index.encode.encode_batch`, the local build's
tokenize step), the driver cuts the token stream into shards with the local rule
(:class:`core.index.sharded._ShardFeed`: at most ``shard_tokens`` tokens plus one separator per
document, a longer document alone), and each shard is written and sorted by one Ray task with
:func:`core.index.build.build_index_from_ids` (the local build's per-shard function) within a memory
budget (Ray's ``memory`` resource), on whichever node has room.

Restarts: ``ray-build.json`` records every shard's document range when it is planned and, when it is
complete, the sha256 of its manifest (which holds the content checksum of every other file of the
shard, :mod:`core.index.verify`). A build started again with the same corpus, tokenizer and shard
size checks every complete shard in full (on the node holding it) and rebuilds only the shards that
are missing, unfinished or damaged; the documents of complete shards are not tokenized again.

Placement: ``storage="shared"`` (every node sees ``out``, e.g. NFS/Lustre/a cloud bucket mount) or
``"node-local"`` (each node writes its shards under the same path on its own disk). ``sharded.json``
records the storage and which node holds which shard (``placement``); tracing on the cluster
(:mod:`core.cluster.index`) places its shard actors accordingly.
"""
from __future__ import annotations

import collections
import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.errors import ConfigError, CorpusError, DamagedFile, IndexNotBuilt
from core.index import layout as fmt
from core.progress import ProgressEvent, ProgressFn

log = logging.getLogger(__name__)

STATE_FILE = "ray-build.json"
STORAGES = ("shared", "node-local")
CHUNK_DOCS = 512  # documents per tokenize task (the local build's batch)
TASK_OVERHEAD = 256 << 20  # RAM of a shard task beyond its sort: interpreter, write buffers, one shard's ids
STATE_VERSION = 1


# ---- tasks (run on the cluster's workers) --------------------------------------------------------
def tokenize_chunk(tokenizer, docs: list[tuple[str, str, dict]]) -> tuple[np.ndarray, tuple]:
    """Token ids of a chunk of ``(doc_id, text, metadata)``: (lengths, (doc ids, flat int32 ids, metadata))."""
    from core.index.encode import encode_batch

    ids = encode_batch(tokenizer, [t for _, t, _ in docs])
    lengths = np.array([len(a) for a in ids], dtype=np.int64)
    flat = np.concatenate(ids).astype(np.int32) if ids else np.zeros(0, dtype=np.int32)
    return lengths, ([d for d, _, _ in docs], flat, [m for _, _, m in docs])


def build_shard(spec: dict, *chunks) -> dict:
    """Write and sort one shard from slices of tokenized chunks (``spec["pieces"]``: the (lo, hi)
    documents of each chunk in ``chunks``, ``spec["chunk_lengths"]`` their token counts); returns its
    node and what vouches for it (:func:`shard_checksums`)."""
    import ray

    from core.index.build import build_index_from_ids

    t0 = time.perf_counter()
    out = Path(spec["folder"])
    if out.exists():  # a shard that did not finish or failed its check: start it afresh
        shutil.rmtree(out)
    stream = _shard_docs(spec["pieces"], spec["chunk_lengths"], chunks)
    build_index_from_ids(stream, out, corpus_fingerprint=spec["corpus_fingerprint"], progress=None, cpus=1,
                         max_memory_bytes=spec["sort_budget"], **spec["identity"])
    return {"name": out.name, "node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address(),
            "files": shard_checksums(out), "seconds": round(time.perf_counter() - t0, 3)}


def _shard_docs(pieces, chunk_lengths, chunks):
    """``(doc_id, ids, metadata)`` of documents lo..hi of each chunk, in order."""
    for (lo, hi), lengths, (doc_ids, flat, metas) in zip(pieces, chunk_lengths, chunks):
        lengths = np.asarray(lengths, dtype=np.int64)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        for j in range(lo, hi):
            yield doc_ids[j], flat[starts[j]:ends[j]], metas[j]


def shard_checksums(folder: Path) -> dict[str, str]:
    """What vouches for a finished shard: the sha256 of its manifest, which holds the content checksum
    of every other file (``checksums``, written by the build: :mod:`core.index.verify`)."""
    return {fmt.MANIFEST: fmt.sha256_file(Path(folder) / fmt.MANIFEST)}


def verify_shard(folder: str, files: dict[str, str]) -> bool:
    """Whether the shard folder is the finished shard recorded: the same manifest, and every file
    matching the checksum in it (hashed in full)."""
    from core.errors import IndexDamaged
    from core.index.verify import check_checksums

    folder = Path(folder)
    if not folder.is_dir() or (folder / fmt.BUILDING).exists():
        return False
    try:
        if shard_checksums(folder) != files:
            return False
        manifest = fmt.read_manifest(folder)
        if not manifest.get("checksums"):
            return False
        check_checksums(folder, manifest, use_record=False)
    except (OSError, IndexDamaged, IndexNotBuilt):
        return False
    return True


# ---- driver --------------------------------------------------------------------------------------
class _Shard:
    """A planned shard: its documents [first, first + docs), tokens, and the chunks holding them."""

    def __init__(self, index: int, first: int):
        self.index, self.first, self.docs, self.tokens = index, first, 0, 0
        self.pieces: list[tuple[int, int, int]] = []  # (chunk number, lo, hi)

    def record(self) -> dict:
        return {"name": _name(self.index), "first_doc": self.first, "num_docs": self.docs, "num_tokens": self.tokens}


def _name(i: int) -> str:
    from core.index.sharded import shard_name

    return shard_name(i)


def _identity_of(state: dict, identity: dict) -> bool:
    return state.get("version") == STATE_VERSION and state.get("identity") == identity


def build_sharded_on_ray(documents: Iterable, tokenizer, out_dir: str | Path, *, address: str = "local",
                         shard_tokens: int | None = None, max_memory_bytes: int | None = None,
                         storage: str = "shared", chunk_docs: int = CHUNK_DOCS, progress: ProgressFn | None = None,
                         load=None, open_index: bool = True):
    """Build the sharded index of ``documents`` on the Ray cluster at ``address`` (see the module
    docstring). ``max_memory_bytes``: RAM budget of one shard task's sort (default: the local sharded
    build's budget per sort); ``shard_tokens`` defaults to what fits in it. With the same
    ``shard_tokens`` the shard files equal those of :func:`core.index.sharded.build_sharded_index`.
    Returns the opened index when ``open_index`` and the storage is shared, else the path of ``sharded.json``."""
    from core.cluster import connect
    from core.index.build import tokenized_corpus
    from core.index.sharded import (
        MEMORY_BUDGET,
        SHARD_PREFIX,
        SHARDS_FILE,
        plan_shard_tokens,
        sort_ram_per_token,
    )

    if storage not in STORAGES:
        raise ConfigError(f"storage must be one of {STORAGES}, got {storage!r}")
    ray = connect(address)
    t0 = time.perf_counter()
    docs = documents if isinstance(documents, (list, tuple)) else list(documents)
    out = Path(out_dir).resolve()
    _stream, ids_kw = tokenized_corpus(docs, tokenizer, out, load=load)  # identity only: tokenized by tasks
    corpus_report = ids_kw.pop("corpus_report")
    corpus_fp = ids_kw.pop("corpus_fingerprint")
    width = fmt.WIDTHS[fmt.choose_dtype(ids_kw["vocab_size"])]
    per_token = sort_ram_per_token(width)
    budget = max_memory_bytes or MEMORY_BUDGET // 2
    shard_tokens = shard_tokens or plan_shard_tokens(budget, 1, width, per_token)
    if shard_tokens < 1:
        raise IndexNotBuilt(f"shard_tokens must be at least 1, got {shard_tokens}")
    sort_budget = max(per_token * (shard_tokens + 1), budget)
    task_memory = sort_budget + TASK_OVERHEAD + 12 * (shard_tokens + 1)
    identity = {"corpus_fingerprint": corpus_fp, "num_docs": len(docs), "shard_tokens": shard_tokens, **ids_kw}
    state_path = out / STATE_FILE
    state = _read_state(state_path)
    if not _identity_of(state, identity):  # another corpus, tokenizer or shard size: start afresh
        state = {"version": STATE_VERSION, "identity": identity, "storage": storage, "planned": [], "complete": {}}
        for old in [p for p in out.iterdir() if p.name.startswith(SHARD_PREFIX)]:
            shutil.rmtree(old, ignore_errors=True)
    state["storage"] = storage
    (out / fmt.BUILDING).write_text("sharded build on Ray in progress\n")
    (out / SHARDS_FILE).unlink(missing_ok=True)
    _write_state(state_path, state)

    # shards complete from an earlier attempt: their checksums are checked where they are
    from core.cluster import alive_nodes
    from core.cluster.placement import live_node

    checks, alive = {}, alive_nodes(ray)
    for rec in state["planned"]:
        done = state["complete"].get(rec["name"])
        node = live_node(done["node"], done.get("address"), alive) if done else None
        if done and (node is not None or storage == "shared"):  # a node-local shard whose node is gone: rebuilt
            opts = {"scheduling_strategy": _on(node)} if storage == "node-local" else {}
            checks[rec["name"]] = _remote(ray, verify_shard, num_cpus=1, **opts).remote(str(out / rec["name"]), done["files"])
            if node is not None:
                done["node"] = node
    verified = {n for n, ok in zip(checks, _get_all(ray, list(checks.values()))) if ok}
    state["complete"] = {n: v for n, v in state["complete"].items() if n in verified}
    skipped = sorted(verified)

    tok_ref = ray.put(tokenizer)
    tokenize = _remote(ray, tokenize_chunk, num_cpus=1, num_returns=2)
    # SPREAD: shards go to every node (by default Ray would keep them where their tokens are, often one node)
    shard_task = _remote(ray, build_shard, num_cpus=1, memory=task_memory, max_retries=2, scheduling_strategy="SPREAD")
    common = {"identity": {k: ids_kw[k] for k in ("vocab_size", "eos_token_id", "tokenizer_name", "tokenizer_fingerprint")},
              "sort_budget": sort_budget}
    chunks: dict[int, tuple] = {}  # chunk number -> (lengths, ref)
    running: dict = {}  # shard task -> planned shard record

    def submit(sh: _Shard) -> None:
        spec = {"folder": str(out / _name(sh.index)), "corpus_fingerprint": f"{corpus_fp}:{_name(sh.index)}",
                "pieces": [(lo, hi) for _, lo, hi in sh.pieces],
                "chunk_lengths": [chunks[c][0] for c, _, _ in sh.pieces], **common}
        refs = [chunks[c][1] for c, _, _ in sh.pieces]
        running[shard_task.remote(spec, *refs)] = sh.record()
        for c in [c for c in chunks if c < sh.pieces[-1][0]]:  # the task holds them now: free the driver's refs
            del chunks[c]

    def collect(block: bool) -> None:
        if not running:
            return
        ready, _ = ray.wait(list(running), num_returns=1 if block else len(running), timeout=None if block else 0)
        for ref in ready:
            rec = running.pop(ref)
            res = ray.get(ref)
            state["complete"][rec["name"]] = {k: res[k] for k in ("node", "address", "files", "seconds")}
            _write_state(state_path, state)
            if progress is not None:
                progress(ProgressEvent("shards", len(state["complete"]), 0, unit="shards", message=rec["name"]))

    def tokenized(first: int, last: int):
        """Lengths of documents first..last-1, chunk by chunk, with tokenize tasks kept ahead."""
        window = max(2, int(ray.cluster_resources().get("CPU", 1)) * 2)
        starts = list(range(first, last, chunk_docs))
        queue: collections.deque = collections.deque()
        nxt = 0
        while nxt < len(starts) or queue:
            while nxt < len(starts) and len(queue) < window:
                a = starts[nxt]
                part = [(str(d.doc_id), d.text, dict(d.metadata or {})) for d in docs[a:min(a + chunk_docs, last)]]
                queue.append((a, tokenize.remote(tok_ref, part)))
                nxt += 1
            a, (lengths_ref, payload) = queue.popleft()
            collect(block=False)
            lengths = ray.get(lengths_ref)
            if progress is not None:
                progress(ProgressEvent("tokenize", a + len(lengths), len(docs), unit="documents",
                                       message=f"{len(state['complete'])} shards done"))
            yield a, lengths, payload

    n_chunk = 0
    # 1) shards planned before a restart: rebuilt from their recorded documents unless complete
    for rec in state["planned"]:
        if rec["name"] in state["complete"]:
            continue
        sh = _Shard(int(rec["name"][len(SHARD_PREFIX):]), rec["first_doc"])
        for a, lengths, payload in tokenized(rec["first_doc"], rec["first_doc"] + rec["num_docs"]):
            chunks[n_chunk] = (lengths, payload)
            sh.pieces.append((n_chunk, 0, len(lengths)))
            sh.docs += len(lengths)
            sh.tokens += int(lengths.sum())
            n_chunk += 1
        submit(sh)
        chunks.clear()
    # 2) the documents after the planned ones, cut into shards as the local build cuts them
    first = state["planned"][-1]["first_doc"] + state["planned"][-1]["num_docs"] if state["planned"] else 0
    cur = _Shard(len(state["planned"]), first)

    def close(sh: _Shard) -> None:
        state["planned"].append(sh.record())
        _write_state(state_path, state)  # planned before it is built: a restart finds its documents
        submit(sh)

    for a, lengths, payload in tokenized(first, len(docs)):
        chunks[n_chunk] = (lengths, payload)
        lo = 0
        for j, n in enumerate(lengths.tolist()):
            if cur.docs and cur.tokens + cur.docs + n + 1 > shard_tokens:  # separators count too
                if j > lo:
                    cur.pieces.append((n_chunk, lo, j))
                close(cur)
                cur, lo = _Shard(cur.index + 1, a + j), j
            cur.tokens += n
            cur.docs += 1
        if len(lengths) > lo:
            cur.pieces.append((n_chunk, lo, len(lengths)))
        n_chunk += 1
    if cur.docs:
        close(cur)
    chunks.clear()
    while running:
        collect(block=True)

    planned = state["planned"]
    if not planned:
        raise CorpusError(f"No documents to index into {out}: the corpus is empty")
    nodes: dict[str, list[str]] = {}
    for rec in planned:
        nodes.setdefault(state["complete"][rec["name"]]["node"], []).append(rec["name"])
    addresses = {n["NodeID"]: n.get("NodeManagerAddress") for n in ray.nodes()}
    shards = [{"name": r["name"], "num_docs": r["num_docs"], "num_tokens": r["num_tokens"],
               "manifest_sha256": state["complete"][r["name"]]["files"][fmt.MANIFEST]} for r in planned]
    fmt.write_json_atomic(out / SHARDS_FILE, {
        "format_version": fmt.FORMAT_VERSION, "shards": shards, "corpus_fingerprint": corpus_fp,
        "tokenizer_name": ids_kw["tokenizer_name"], "shard_tokens": shard_tokens,
        "parallel": int(ray.cluster_resources().get("CPU", 1)), "corpus_report": dict(corpus_report or {}),
        "num_docs": sum(s["num_docs"] for s in shards), "num_tokens": sum(s["num_tokens"] for s in shards),
        "build_seconds": round(time.perf_counter() - t0, 3), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "placement": {"storage": storage, "path": str(out),
                      "nodes": {nid: {"address": addresses.get(nid) or _address_of(state, names[0]), "shards": names}
                                for nid, names in sorted(nodes.items())}},
        "ray": {"address": address, "task_memory_bytes": task_memory, "sort_budget_bytes": sort_budget,
                "shards_skipped_on_restart": skipped,
                "task_seconds": {r["name"]: state["complete"][r["name"]]["seconds"] for r in planned}},
    })
    (out / fmt.BUILDING).unlink(missing_ok=True)
    log.info("indexed %d shards on Ray (%s), %d skipped as complete", len(shards), address, len(skipped))
    if open_index and storage == "shared":
        from core.index.corpus_index import CorpusIndex

        return CorpusIndex.open(out)
    return out / SHARDS_FILE


def _address_of(state: dict, name: str) -> str | None:
    return state["complete"][name].get("address")


def _remote(ray, fn, **options):
    return ray.remote(fn).options(**options)


def _on(node_id: str):
    from core.cluster import on_node

    return on_node(node_id)


def _get_all(ray, refs: list) -> list:
    out = []
    for ref in refs:
        try:
            out.append(ray.get(ref))
        except Exception:  # noqa: BLE001 - a node that is gone cannot vouch for its shard: rebuild it
            out.append(False)
    return out


def _read_state(path: Path) -> dict:
    """The restart state of a build; a missing or damaged one is no state (every shard is built again)."""
    from core.jsonio import read_json

    try:
        state = read_json(path)
    except (FileNotFoundError, DamagedFile):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict) -> None:
    fmt.write_json_atomic(path, state)
