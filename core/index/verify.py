"""Is an index folder still what its build wrote? A damaged index is refused, never traced.

A damaged ``table.0`` (random bytes of the same size, all 0xFF) or ``offset.0`` opens without complaint
in infini-gram's engine and traces to "nothing memorized". So:

- the build writes a content checksum of every index file into its manifest (:func:`checksum_files`,
  ``manifest["checksums"] = {"algo": "xxh3_128", "files": {name: hex}}``; xxHash's XXH3 streams at
  several GB/s, about as fast as the files can be read);
- the first open of a folder checks every file against its checksum in full; files that passed are
  remembered by path, size, mtime_ns, inode and device in a small record under the cache root
  (:func:`core.paths.cache_root`, ``verified-indexes.json``), so a later open of unchanged files hashes
  nothing (a file changed less than :data:`RACY_NS` before it was checked is checked again, as git does
  with "racy" index entries: a write within the same clock tick would not change its mtime);
- every open also runs cheap structural checks (:func:`check_structure`, also for prebuilt
  infini-gram indexes, which have no checksums): document offsets start at 0, rise and point at
  separators ("documents end where the offsets say"), token ids lie in the vocabulary, and a seeded
  sample of adjacent suffix-array entries really is in order;
- ``python -m core index verify PATH`` (:func:`verify_full`) checks every file in full on demand.

A problem is an :class:`core.errors.IndexDamaged` whose one line names the file and what is wrong:
"…/table.0 does not match its checksum: the index is damaged; rebuild it".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import IndexDamaged
from core.index import layout as fmt

log = logging.getLogger(__name__)

CHECKSUMS = "checksums"  # manifest key
RECORD = "verified-indexes.json"  # under core.paths.cache_root()
RECORD_MAX = 4096  # files remembered (the oldest are forgotten first)
RACY_NS = 1_000_000_000  # a file modified this close before its check is checked again next time (1 s: the
# coarsest mtime granularity of common file systems, as git assumes)
BUFFER = 1 << 24  # bytes read per hash update
FULL_OFFSETS = 1 << 20  # offset tables up to this many entries are checked whole on every open
SA_PAIRS = 1024  # adjacent suffix-array pairs compared on every open (plus the first and last)
SA_PAIRS_FULL = 1 << 16  # ... and by verify_full on an index without checksums
COMPARE_TOKENS = 16  # tokens of two suffixes compared per pair
TOKEN_SAMPLE = 4096  # token ids checked against the vocabulary on every open
SEP_SAMPLE = 4096  # document starts checked for their separator on every open (random reads) ...
SEP_ENDS = 1024  # ... plus the first and last this many


def _algo() -> str:
    try:
        import xxhash  # noqa: F401
        return "xxh3_128"
    except ImportError:  # pragma: no cover - xxhash is a runtime requirement
        return "blake2b-128"


def _hasher(algo: str):
    if algo == "xxh3_128":
        import xxhash
        return xxhash.xxh3_128()
    if algo == "blake2b-128":
        return hashlib.blake2b(digest_size=16)
    raise IndexDamaged(f"unknown checksum algorithm {algo!r} in the index manifest: rebuild the index with this version")


def hash_file(path: Path, algo: str | None = None) -> str:
    """Streaming content hash of a file (large buffers, no copies; a small file gets a buffer its size)."""
    h = _hasher(algo or _algo())
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(max(1, min(BUFFER, os.fstat(f.fileno()).st_size)))
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def index_files(folder: Path) -> list[str]:
    """The files of a finished (or finishing) build whose content the manifest vouches for."""
    names = [*fmt.SHARD_FILES, fmt.COUNTS]
    names += sorted(p.name for p in folder.glob("sa-sample*") if p.is_file())
    return [n for n in names if (folder / n).is_file()]


class Checksums:
    """Checksums of a build's files, computed in a background thread while the build goes on.

    ``start(names)`` queues files that are final (the token, offset and metadata files while the suffix
    array is sorted); :meth:`result` hashes the rest and returns the manifest entry (and records the
    files as verified: their content was hashed from disk just now)."""

    def __init__(self, folder: Path):
        self.folder, self.algo = Path(folder), _algo()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-hash")
        self._futures: dict[str, Future] = {}

    def start(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self._futures and (self.folder / name).is_file():
                self._futures[name] = self._pool.submit(self._hash, name)

    def _hash(self, name: str) -> tuple[str, os.stat_result]:
        path = self.folder / name
        before = path.stat()
        digest = hash_file(path, self.algo)
        return digest, before

    def result(self) -> dict:
        self.start(index_files(self.folder))
        try:
            done = {name: f.result() for name, f in self._futures.items()}
        finally:
            self._pool.shutdown(wait=True)
        _remember({self.folder / n: (d, st) for n, (d, st) in done.items()})
        return {"algo": self.algo, "files": {n: d for n, (d, _) in sorted(done.items())}}

    def cancel(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def checksum_files(folder: Path, names: Sequence[str] | None = None) -> dict:
    """The manifest's ``checksums`` entry for ``names`` (default: :func:`index_files`) of ``folder``."""
    c = Checksums(folder)
    c.start(names if names is not None else index_files(Path(folder)))
    return c.result()


# -- the record of verified files ---------------------------------------------------------------------
def _record_path() -> Path:
    from core.paths import cache_root

    return cache_root() / RECORD


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def _load_record() -> dict:
    """The record (empty when missing, unreadable or damaged: then files are simply hashed again)."""
    from core.jsonio import json_problem

    try:
        path = _record_path()
        if path.stat().st_size > 64 << 20:
            return {}
        data, problem = json_problem(path.read_bytes())
    except OSError:
        return {}
    return data if problem is None and isinstance(data, dict) else {}


def _remember(files: dict[Path, tuple[str, os.stat_result]]) -> None:
    """Record files whose content hashed to the digest while they had the stat ``st`` (unchanged since)."""
    now = time.time_ns()
    good = {}
    for path, (digest, st) in files.items():
        try:
            if _stat_key(path.stat()) == _stat_key(st):
                good[str(path.resolve())] = {"stat": _stat_key(st), "checksum": digest, "checked_ns": now}
        except OSError:
            continue
    if not good:
        return
    record = _load_record()
    record.update(good)
    if len(record) > RECORD_MAX:  # files of folders removed or renamed go first, then the oldest checked
        record = {k: v for k, v in record.items() if os.path.exists(k)}
        keep = sorted(record.items(), key=lambda kv: kv[1].get("checked_ns", 0) if isinstance(kv[1], dict) else 0)
        record = dict(keep[-RECORD_MAX:])
    target = _record_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:  # a read-only cache: the next open checks again, nothing worse
        log.info("cannot record verified index files in %s: %s", target, e)


def _trusted(entry, path: Path, st: os.stat_result, digest: str) -> bool:
    if not isinstance(entry, dict) or entry.get("checksum") != digest or entry.get("stat") != _stat_key(st):
        return False
    checked = entry.get("checked_ns")
    return isinstance(checked, int) and st.st_mtime_ns < checked - RACY_NS


# -- checks --------------------------------------------------------------------------------------------
def damaged(path: Path, what: str) -> IndexDamaged:
    folder = path.parent
    return IndexDamaged(f"{path} {what}: the index is damaged; rebuild it "
                        f"(python -m core index build ... --out {folder})", path=path)


def check_checksums(folder: Path, manifest: dict | None, *, use_record: bool = True) -> list[str]:
    """Hash every file the manifest has a checksum for (skipping files the record vouches for when
    ``use_record``); raise IndexDamaged at the first mismatch. Returns the names hashed now."""
    entry = (manifest or {}).get(CHECKSUMS)
    if not entry:
        return []
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
        raise damaged(folder / fmt.MANIFEST, "has a malformed checksums entry")
    algo = entry.get("algo")
    record = _load_record() if use_record else {}
    hashed: dict[Path, tuple[str, os.stat_result]] = {}
    for name, digest in sorted(entry["files"].items()):
        path = folder / name
        if "/" in name or name in ("", ".", ".."):
            raise damaged(folder / fmt.MANIFEST, f"names a file {name!r} outside its folder")
        try:
            st = path.stat()
        except FileNotFoundError:
            raise damaged(path, "is missing") from None
        if use_record and _trusted(record.get(str(path.resolve())), path, st, digest):
            continue
        got = hash_file(path, algo)
        if got != digest:
            raise damaged(path, "does not match its checksum")
        hashed[path] = (got, st)
    if hashed:
        _remember(hashed)
    return [p.name for p in hashed]


def check_structure(shard, vocab_size: int | None = None, *, pairs: int = SA_PAIRS, seed: int = 0) -> None:
    """Cheap checks of one shard (:class:`core.index.shards.Shard`); raises IndexDamaged naming the file.

    Offsets (``offset.N``): the first is 0, they rise, stay inside the token file, are multiples of the
    token width and point at separators (a sample: the first and last :data:`SEP_ENDS` and
    :data:`SEP_SAMPLE` more); the metadata offsets rise inside ``metadata.N``; a
    sample of token ids lies below ``vocab_size`` (when known); a seeded sample of ``pairs`` adjacent
    suffix-array entries (and the first and last) points at tokens and is in byte order over the first
    :data:`COMPARE_TOKENS` tokens. Offset tables up to :data:`FULL_OFFSETS` entries are checked whole,
    longer ones at both ends and in sampled windows."""
    rng = np.random.default_rng(seed + shard.ds_size)
    width, ds_size, sep = shard.width, shard.ds_size, int(np.iinfo(shard.tokens.dtype).max)
    off_path, tok_path = shard.offset_path, shard.token_path
    offsets = shard.offsets
    n = len(offsets)
    if n == 0:
        raise damaged(off_path, "lists no documents")
    ix = _positions(n, rng)
    vals = np.asarray(offsets[ix], dtype=np.uint64)
    if int(offsets[0]) != 0:
        raise damaged(off_path, f"does not start at 0 (its first document offset is {int(offsets[0])})")
    bad = np.flatnonzero((vals >= ds_size) | (vals % width != 0))
    if bad.size:
        i = int(ix[bad[0]])
        raise damaged(off_path, f"holds offset {int(vals[bad[0]])} at entry {i}, outside the "
                                f"{ds_size}-byte token file or not on a token")
    rising = np.flatnonzero((np.diff(ix) == 1) & (np.diff(vals.astype(np.int64)) <= 0))
    if rising.size:
        i = int(ix[rising[0]])
        raise damaged(off_path, f"does not rise at entry {i + 1} ({int(vals[rising[0]])} then "
                                f"{int(vals[rising[0] + 1])})")
    # a separator where each document starts: sampled (each is a random read of the token file), ends included
    pick = np.flatnonzero((ix < SEP_ENDS) | (ix >= n - SEP_ENDS))
    if len(ix) > len(pick) + SEP_SAMPLE:
        pick = np.union1d(pick, rng.choice(len(ix), size=SEP_SAMPLE, replace=False))
    else:
        pick = np.arange(len(ix))
    at = shard.tokens[(vals[pick] // width).astype(np.int64)]
    nosep = pick[np.flatnonzero(at != sep)]
    if nosep.size:
        i = int(ix[nosep[0]])
        raise damaged(tok_path, f"holds no document separator at byte {int(vals[nosep[0]])}, where {off_path.name} "
                                f"says document {i} starts")
    if shard.metaoff is not None and shard.meta is not None:
        mo = np.asarray(shard.metaoff[ix], dtype=np.int64)
        msize = len(shard.meta)
        bad = np.flatnonzero((mo < 0) | (mo >= msize) | np.r_[False, (np.diff(ix) == 1) & (np.diff(mo) <= 0)])
        if bad.size or int(shard.metaoff[0]) != 0:
            i = int(ix[bad[0]]) if bad.size else 0
            raise damaged(Path(shard.metaoff_path), f"holds a metadata offset out of order or outside "
                                                    f"{Path(shard.meta_path).name} at entry {i}")
    if vocab_size and vocab_size < sep:
        pos = rng.integers(0, shard.tok_cnt, size=min(TOKEN_SAMPLE, shard.tok_cnt))
        ids = np.asarray(shard.tokens[pos]).astype(np.int64)
        out = np.flatnonzero((ids >= vocab_size) & (ids != sep))
        if out.size:
            raise damaged(tok_path, f"holds token id {int(ids[out[0]])} at token {int(pos[out[0]])}, outside the "
                                    f"index's vocabulary [0, {vocab_size})")
    _check_table(shard, rng, pairs)


def _positions(n: int, rng) -> np.ndarray:
    """Entries of an n-long table checked on every open: all of them up to FULL_OFFSETS, else the first
    and last 65536 and 256 random windows of 1024 (sorted, unique)."""
    if n <= FULL_OFFSETS:
        return np.arange(n, dtype=np.int64)
    w = 1 << 10
    starts = rng.integers(0, n - w, size=256)
    parts = [np.arange(min(n, 1 << 16)), np.arange(max(0, n - (1 << 16)), n)]
    parts += [np.arange(s, s + w) for s in starts]
    return np.unique(np.concatenate(parts).astype(np.int64))


def _check_table(shard, rng, pairs: int) -> None:
    n = shard.tok_cnt
    tab_path = Path(shard.table_path)
    if n < 2:
        return
    first = rng.integers(0, n - 1, size=min(pairs, n - 1))
    first = np.unique(np.concatenate([first, [0, n - 2]])).astype(np.int64)
    a, b = shard.ptrs(first), shard.ptrs(first + 1)
    for ranks, ptrs in ((first, a), (first + 1, b)):
        bad = np.flatnonzero((ptrs < 0) | (ptrs >= shard.ds_size) | (ptrs % shard.width != 0))
        if bad.size:
            raise damaged(tab_path, f"holds pointer {int(ptrs[bad[0]])} at rank {int(ranks[bad[0]])}, outside the "
                                    f"{shard.ds_size}-byte token file or not on a token")
    raw = np.asarray(shard.tokens).view(np.uint8)
    span = COMPARE_TOKENS * shard.width
    cols = np.arange(span, dtype=np.int64)

    def window(ptrs: np.ndarray) -> np.ndarray:
        at = ptrs[:, None] + cols
        return np.where(at < shard.ds_size, raw[np.minimum(at, shard.ds_size - 1)].astype(np.int16), -1)

    wa, wb = window(a), window(b)
    diff = wa != wb
    has = diff.any(axis=1)
    col = diff.argmax(axis=1)
    rows = np.arange(len(first))
    wrong = np.flatnonzero(has & (wa[rows, col] > wb[rows, col]))
    same = np.flatnonzero(a == b)
    if wrong.size or same.size:
        r = int(first[wrong[0] if wrong.size else same[0]])
        raise damaged(tab_path, f"is out of order at ranks {r} and {r + 1}: the suffix array does not sort "
                                f"{shard.token_path.name}")


def check_on_open(dirs: Sequence[Path], manifests: Sequence[dict | None], shards: Sequence, vocab_size: int | None) -> None:
    """What every :meth:`CorpusIndex.open` runs before the engine sees the files: each folder's
    checksums (hashing only files the record does not vouch for) and each shard's structure."""
    for d, m in zip(dirs, manifests):
        check_checksums(Path(d), m)
    known = vocab_size if any(m is not None for m in manifests) else None
    for s in shards:
        check_structure(s, known)


@dataclass(frozen=True)
class VerifyReport:
    folder: Path
    files: int  # files hashed
    bytes: int  # bytes hashed
    seconds: float
    checksums: bool  # False: an index without checksums (prebuilt, or built before they were recorded)


def verify_full(index_dirs, *, pairs: int = SA_PAIRS_FULL) -> list[VerifyReport]:
    """The full check on demand (``python -m core index verify PATH``): every checksum of every folder
    hashed again (the record is not consulted, and updated), and the structural checks with a larger
    suffix-array sample. Raises IndexDamaged at the first problem."""
    from core.index.shards import Shard, expand_dirs, shard_paths

    out = []
    for d in expand_dirs(index_dirs):
        t0 = time.perf_counter()
        manifest = fmt.manifest_if_ours(d)
        hashed = check_checksums(d, manifest, use_record=False)
        dtype = manifest["token_dtype"] if manifest else fmt.infer_token_dtype(d)
        vocab = manifest.get("vocab_size") if manifest else None
        for paths in shard_paths(d):
            check_structure(Shard(*paths, dtype), vocab, pairs=pairs)
        out.append(VerifyReport(d, len(hashed), sum((d / n).stat().st_size for n in hashed),
                                time.perf_counter() - t0, bool((manifest or {}).get(CHECKSUMS))))
    return out
