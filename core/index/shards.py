"""Finding and memory-mapping the shard files of index folders (see :mod:`core.index.layout`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.errors import ConfigError, IndexDamaged, IndexNotBuilt
from core.index import layout as fmt
from core.jsonio import parse_json


class Shard:
    """Memory maps of one shard's files (a folder may hold several shards)."""

    def __init__(self, tokens: Path, table: Path, offsets: Path, meta: Path | None, metaoff: Path | None,
                 token_dtype: str):
        self.width = fmt.WIDTHS[token_dtype]
        self.token_path, self.table_path, self.offset_path = tokens, table, offsets
        self.meta_path, self.metaoff_path = meta, metaoff
        self.ds_size = tokens.stat().st_size
        self.tok_cnt = self.ds_size // self.width
        self.ptr_size = fmt.ptr_size_for(self.ds_size)
        # infini-gram's engine aborts the process on inconsistent files, so check them first
        sizes = {p.name: p.stat().st_size for p in (table, offsets, *(x for x in (meta, metaoff) if x))}
        problems = [f"{tokens.name} has {self.ds_size} bytes, not a positive multiple of {self.width}"
                    if self.ds_size == 0 or self.ds_size % self.width else "",
                    f"{table.name} has {sizes[table.name]} bytes, expected {self.tok_cnt * self.ptr_size}"
                    if sizes[table.name] != self.tok_cnt * self.ptr_size else "",
                    f"{offsets.name} has {sizes[offsets.name]} bytes, not a multiple of 8"
                    if sizes[offsets.name] % 8 else "",
                    f"{metaoff.name} and {offsets.name} differ in size"
                    if metaoff and sizes[metaoff.name] != sizes[offsets.name] else ""]
        if any(problems):
            raise fmt.not_built(tokens.parent, "; ".join(p for p in problems if p))
        # plain ndarray views of the maps: indexing a np.memmap costs a subclass round trip per call
        self.tokens = np.asarray(np.memmap(tokens, dtype=fmt.DTYPES[token_dtype], mode="r"))
        self.table = np.asarray(np.memmap(table, dtype=np.uint8, mode="r")).reshape(self.tok_cnt, self.ptr_size)
        self.offsets = _u64_map(offsets)  # byte offset of each document's separator
        self.doc_cnt = len(self.offsets)
        self.meta = np.asarray(np.memmap(meta, dtype=np.uint8, mode="r")) if meta and meta.stat().st_size else None
        self.metaoff = _u64_map(metaoff) if metaoff else None

    def doc_bytes(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Byte start (the separator) and end of documents ``local`` (int64 arrays)."""
        local = np.asarray(local, dtype=np.int64)
        starts = np.asarray(self.offsets[local], dtype=np.int64)
        nxt = np.minimum(local + 1, self.doc_cnt - 1)
        ends = np.where(local + 1 < self.doc_cnt, np.asarray(self.offsets[nxt], dtype=np.int64), self.ds_size)
        return starts, ends

    def ptrs(self, ranks: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(ranks), 8), dtype=np.uint8)
        rows[:, :self.ptr_size] = self.table[ranks]
        return rows.view("<u8").ravel().astype(np.int64)

    def locate(self, ptrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(local doc index, token start inside the doc, doc length) for byte pointers."""
        local = np.searchsorted(self.offsets, ptrs.astype(np.uint64), side="right").astype(np.int64) - 1
        starts, ends = self.doc_bytes(local)
        return local, (ptrs - starts) // self.width - 1, (ends - starts) // self.width - 1

    def doc_tokens(self, i: int, lo: int = 0, hi: int | None = None) -> list[int]:
        """Token ids of local document ``i`` (or of its slice [lo, hi))."""
        starts, ends = self.doc_bytes(np.array([i]))
        first, last = int(starts[0]) // self.width + 1, int(ends[0]) // self.width
        hi = last - first if hi is None else hi
        return self.tokens[first + lo:first + min(hi, last - first)].astype(np.int64).tolist()

    def doc_lengths(self) -> np.ndarray:
        """Length in tokens of every document of the shard."""
        b, e = self.doc_bytes(np.arange(self.doc_cnt))
        return (e - b) // self.width - 1

    def meta_of(self, i: int) -> dict:
        """The stored JSON metadata line of local document ``i`` ({} when the shard has none)."""
        if self.meta is None:
            return {}
        end = int(self.metaoff[i + 1]) if i + 1 < self.doc_cnt else len(self.meta)
        line = bytes(self.meta[int(self.metaoff[i]):end])
        value = parse_json(line, name=f"{self.meta_path} (document {i})", hint="the index is damaged; rebuild it",
                           error=IndexDamaged)
        return value if isinstance(value, dict) else {}

    def unigram_counts(self, vocab_size: int, sep: int, chunk: int = 1 << 24) -> np.ndarray:
        """Occurrences of every id below ``vocab_size`` (separators excluded), read in chunks."""
        out = np.zeros(vocab_size, dtype=np.int64)
        for lo in range(0, self.tok_cnt, chunk):
            block = np.asarray(self.tokens[lo:lo + chunk])
            out += np.bincount(block[block != sep], minlength=vocab_size)[:vocab_size]
        return out

    def token_max(self, sep: int, chunk: int = 1 << 24) -> int:
        """The largest token id in the shard (separators excluded)."""
        top = 0
        for lo in range(0, self.tok_cnt, chunk):
            block = np.asarray(self.tokens[lo:lo + chunk])
            block = block[block != sep]
            top = max(top, int(block.max()) if block.size else 0)
        return top


def engine_safe_path(folder: Path, link: Path) -> str:
    """infini-gram's engine sorts files by keywords ("table", "offset", ...) found anywhere in their
    path, so a folder whose path holds one is handed to it through the symlink ``link``."""
    if not any(k in str(folder) for k in fmt.ENGINE_KEYWORDS):
        return str(folder)
    if any(k in str(link) for k in fmt.ENGINE_KEYWORDS):
        raise ConfigError(f"Index folder {folder} and temp folder {link} both contain one of "
                          f"{fmt.ENGINE_KEYWORDS}; rename the folder or set TMPDIR")
    os.symlink(folder, link)
    return str(link)


def _u64_map(path: Path) -> np.ndarray:
    """A read-only uint64 view of a file (an empty array for an empty file: mmap refuses size 0)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.asarray(np.memmap(path, dtype=np.uint64, mode="r"))


def shard_paths(folder: Path) -> list[tuple[Path, ...]]:
    def files(key: str) -> list[Path]:
        return sorted((p for p in folder.iterdir() if p.name.startswith(key)), key=str)

    tok, tab, off = files("tokenized"), files("table"), files("offset")
    meta, metaoff = files("metadata"), files("metaoff")
    if not (len(tok) == len(tab) == len(off)) or not tok:
        raise fmt.not_built(folder, "it needs one tokenized.N, table.N and offset.N file per shard")
    if len(meta) != len(tok) or len(metaoff) != len(tok):
        meta, metaoff = [None] * len(tok), [None] * len(tok)
    return list(zip(tok, tab, off, meta, metaoff))


def expand_dirs(index_dirs) -> list[Path]:
    dirs = [index_dirs] if isinstance(index_dirs, (str, Path)) else list(index_dirs)
    out: list[Path] = []
    for d in (Path(x).expanduser().resolve() for x in dirs):
        if not d.is_dir():
            raise IndexNotBuilt(f"No index at {d}: the folder does not exist; " + fmt.BUILD_HINT.format(path=d))
        subs = sorted(p for p in d.iterdir() if p.is_dir() and ((p / fmt.MANIFEST).exists() or fmt.has_shard_files(p)))
        if not fmt.has_shard_files(d) and not (d / fmt.MANIFEST).exists() and (subs or (d / fmt.BUILDING).exists()):
            if (d / fmt.BUILDING).exists():  # a sharded build (core.index.sharded) that did not finish
                raise fmt.not_built(d, "a sharded build was started here and did not finish")
            out.extend(subs)
        else:
            out.append(d)
    if not out:
        raise IndexNotBuilt("No index folders given; " + fmt.BUILD_HINT.format(path="<folder>"))
    return out


def doc_id_of(meta: dict, fallback: int) -> str:
    """A document's id from its metadata line (ours: ``doc_id``; prebuilt: ``metadata.id``), else ``fallback``."""
    if "doc_id" in meta:
        return str(meta["doc_id"])
    inner = meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {}
    return str(inner.get("id", fallback))
