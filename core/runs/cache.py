"""Persistent result cache (SQLite, stdlib) so long runs resume and repeated runs cost nothing.

Three tables: ``generations`` (one completion of one prompt), ``traces`` (one traced completion),
``summaries`` (scores of one run). Keys are sha256 hex digests of everything that determines the
value (see the ``*_key`` functions); values are JSON with a sha256 checksum column. A damaged entry
(checksum mismatch, undecodable JSON) is logged, deleted and reported as a miss, never returned. A
file that is not (or no longer) a SQLite database is moved aside with a warning and a fresh cache is
created. WAL mode and a busy timeout let several threads and processes write at once; every
``put_*`` batch is one transaction (all of it is stored, or none).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.config import DecodingConfig, TraceConfig
from core.config.tables import to_dict
from core.errors import CacheError
from core.jsonio import json_problem
from core.paths import cache_root
from core.records import Generation, Prompt, TraceResult
from core.runs import codec

log = logging.getLogger(__name__)

TABLES = ("generations", "traces", "summaries")
SCHEMA_VERSION = 1
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_HEADER = b"SQLite format 3\x00"


def _sha(obj: Any) -> str:
    text = obj if isinstance(obj, str) else json.dumps(codec.to_jsonable(obj), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_cache_path() -> Path:
    """``cache.sqlite`` in :func:`core.paths.cache_root` (``$PROPME_CACHE_DIR``, else ``~/.cache/propme``)."""
    return cache_root() / "cache.sqlite"


def generation_key(model_identity: str, tokenizer_id: str, prompt: Prompt, decoding: DecodingConfig,
                   sample_index: int) -> str:
    """Key of one completion: model, tokenizer, prompt ids (or text), decoding minus batch size, sample.

    The seed is part of the decoding config; the batch size is not (it does not change the output).
    """
    dec = to_dict(decoding)
    dec.pop("batch_size")
    source = list(prompt.token_ids) if prompt.token_ids is not None else prompt.text
    return _sha(["generation", model_identity, tokenizer_id, source, dec, sample_index])


def trace_key(generation_key_hash: str, completion: str, index_fingerprint: str, trace: TraceConfig) -> str:
    """Key of one trace: the generation, the exact completion text, the index and the trace config.

    The NV block thresholds (``MetricsConfig.nv_blocks``) are not part of it: they are a scoring
    parameter, applied from the stored matching blocks (:func:`core.scoring.metrics.score_traces`).
    """
    tr = to_dict(trace)
    tr.pop("workers")  # how many processes trace does not change the result
    tr.pop("ray_address", None)  # nor where (core.cluster.index: results identical to a local trace)
    return _sha(["trace", generation_key_hash, _sha(completion), index_fingerprint, tr])


def summary_key(run_identity: Mapping[str, Any]) -> str:
    """Key of one run's scores: any JSON-ready description of what determines them."""
    return _sha(["summary", run_identity])


class ResultCache:
    """SQLite-backed cache; safe to share between threads and processes (one connection each)."""

    def __init__(self, path: str | os.PathLike | None = None, *, timeout_s: float = 60.0):
        """``path``: a ``.sqlite``/``.db`` file or an existing file, else a folder holding ``cache.sqlite``;
        None: :func:`default_cache_path`."""
        p = Path(path) if path is not None else default_cache_path()
        if p.is_file() and p.suffix not in (".sqlite", ".db"):
            with open(p, "rb") as f:
                head = f.read(len(_HEADER))
            if head and head != _HEADER:  # never move a user's other file aside as a "damaged cache"
                raise CacheError(f"{p} is a file that is not a cache database; give a cache folder (or a "
                                 ".sqlite file) with --cache-dir / PROPME_CACHE_DIR")
        if not (p.suffix in (".sqlite", ".db") or p.is_file()):
            p = p / "cache.sqlite"
        self.path = p
        self.timeout_s = timeout_s
        self._local = threading.local()
        self.hits = self.misses = self.corrupt_entries = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"cannot create the cache folder {self.path.parent}: {e}; "
                             "pass another --cache-dir or set PROPME_CACHE_DIR") from None
        self._guard(self._conn)  # open (and repair) now, so errors surface at construction

    # -- connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as f:
                if f.read(16) != _HEADER:
                    raise sqlite3.DatabaseError("file is not a database (bad header)")
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.OperationalError as e:
            raise CacheError(f"cannot open the cache {self.path}: {e}; pass another --cache-dir or set "
                             "PROPME_CACHE_DIR") from None
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        self._retry_locked(self._set_up, conn)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @staticmethod
    def _set_up(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for table in TABLES:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "checksum TEXT NOT NULL, created REAL NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _retry_locked(self, fn, *args):
        """Run ``fn(*args)``, retrying while another connection holds the lock.

        Switching to WAL needs an exclusive lock and SQLite may answer SQLITE_BUSY at once, without
        its busy handler, when two connections open a new database together.
        """
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _move_aside(self, error: Exception) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        log.warning("cache %s is damaged (%s); moved it to %s and starting a fresh cache", self.path, error, aside)
        if self.path.exists():
            os.replace(self.path, aside)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                os.replace(side, aside.with_name(aside.name + suffix))

    def _guard(self, fn, *args):
        """Run ``fn(*args)``; on a damaged database file move it aside and retry once on a fresh one."""
        try:
            return fn(*args)
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorcode", None)
            if not ("not a database" in str(e) or (code is not None and code & 0xFF in _CORRUPT_CODES)):
                raise CacheError(f"cache {self.path}: {e}") from None
            self._move_aside(e)
            return fn(*args)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- generic get/put -----------------------------------------------------------------------
    def get_many(self, table: str, keys: Sequence[str]) -> dict[str, Any]:
        """Decoded JSON values of the keys present and intact (damaged entries are deleted)."""
        self._check_table(table)
        return self._guard(self._get_many, table, list(dict.fromkeys(keys)))

    def _get_many(self, table: str, keys: list[str]) -> dict[str, Any]:
        conn, found, bad = self._conn(), {}, []
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = conn.execute(f"SELECT key, value, checksum FROM {table} WHERE key IN "
                                f"({','.join('?' * len(chunk))})", chunk).fetchall()
            for key, value, checksum in rows:
                try:
                    if not isinstance(value, str) or _sha(value) != checksum:
                        raise ValueError("checksum mismatch")
                    decoded, problem = json_problem(value)  # the one JSON reader
                    if problem:
                        raise ValueError(problem)
                    found[key] = decoded
                except ValueError as e:
                    log.warning("cache %s: damaged %s entry %s (%s); deleted, will recompute",
                                self.path, table, key[:12], e)
                    bad.append(key)
        if bad:
            self.corrupt_entries += len(bad)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in bad])
            conn.execute("COMMIT")
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, table: str, items: Iterable[tuple[str, Any]]) -> int:
        """Store (key, value) pairs in one transaction; values are JSON-ready or record dataclasses."""
        self._check_table(table)
        now = time.time()
        rows = []
        for key, value in items:
            text = json.dumps(codec.to_jsonable(value), ensure_ascii=False, sort_keys=True)
            rows.append((key, text, _sha(text), now))
        if rows:
            self._guard(self._put_rows, table, rows)
        return len(rows)

    def _put_rows(self, table: str, rows: list[tuple]) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _check_table(table: str) -> None:
        if table not in TABLES:
            raise CacheError(f"unknown cache table {table!r}; valid: {TABLES}")

    # -- typed helpers -------------------------------------------------------------------------
    def get_generations(self, keys: Sequence[str]) -> dict[str, Generation]:
        return self._typed(Generation, "generations", keys)

    def put_generations(self, items: Iterable[tuple[str, Generation]]) -> int:
        return self.put_many("generations", items)

    def get_traces(self, keys: Sequence[str]) -> dict[str, TraceResult]:
        return self._typed(TraceResult, "traces", keys)

    def put_traces(self, items: Iterable[tuple[str, TraceResult]]) -> int:
        return self.put_many("traces", items)

    def get_summary(self, key: str) -> dict | None:
        return self.get_many("summaries", [key]).get(key)

    def put_summary(self, key: str, value: Mapping[str, Any]) -> None:
        self.put_many("summaries", [(key, dict(value))])

    def _typed(self, cls: type, table: str, keys: Sequence[str]) -> dict:
        out = {}
        for key, data in self.get_many(table, keys).items():
            try:
                out[key] = codec.from_jsonable(cls, data)
            except (KeyError, TypeError, ValueError) as e:  # valid JSON of the wrong shape
                log.warning("cache %s: %s entry %s does not decode (%s); deleted", self.path, table, key[:12], e)
                self.corrupt_entries += 1
                self._guard(self._put_delete, table, key)
        return out

    def _put_delete(self, table: str, key: str) -> None:
        self._conn().execute(f"DELETE FROM {table} WHERE key = ?", (key,))

    # -- maintenance ---------------------------------------------------------------------------
    def size_report(self) -> dict[str, Any]:
        """Entries and value bytes per table, and the bytes on disk (database + WAL)."""
        def report():
            conn = self._conn()
            tables = {t: dict(zip(("entries", "bytes"), conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(value AS BLOB))), 0) FROM {t}").fetchone()))
                for t in TABLES}
            disk = sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                       if p.exists())
            return {"path": str(self.path), "disk_bytes": disk, "tables": tables}
        return self._guard(report)

    def clear(self, table: str | None = None) -> None:
        """Delete every entry (of one table, or all) and give the space back to the file system."""
        for t in [table] if table else TABLES:
            self._check_table(t)
            self._guard(self._put_delete_all, t)
        self._guard(lambda: self._conn().execute("VACUUM"))

    def _put_delete_all(self, table: str) -> None:
        self._conn().execute(f"DELETE FROM {table}")
