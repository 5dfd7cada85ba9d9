"""On-disk layout of an index folder: infini-gram's shard files plus our manifest.

One folder holds one shard, in the format infini-gram's engine reads (version 4):

- ``tokenized.0``: documents as token ids (u16 or u32, little endian), each preceded by a separator of
  0xFF bytes of the token width; ``offset.0``: u64 byte offset of each document's separator;
- ``metadata.0``: one JSON line per document; ``metaoff.0``: u64 byte offset of each line;
- ``table.0``: the suffix array (byte offsets into ``tokenized.0``, ``ptr_size`` bytes each);
- ``tokcounts.npy`` (ours): unigram counts per token id; ``manifest.json`` (ours, written last).

The engine picks files by substring ("tokenized", "table", "offset", "metadata", "metaoff",
"unigram") of their *full path*, so our own file names avoid those words.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from core.errors import DamagedFile, IndexNotBuilt
from core.jsonio import read_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COUNTS = "tokcounts.npy"
BUILDING = "propme-building"  # present while a build is in progress
TOKENS, TABLE, OFFSETS, META, METAOFF = "tokenized.0", "table.0", "offset.0", "metadata.0", "metaoff.0"
SHARD_FILES = (TOKENS, TABLE, OFFSETS, META, METAOFF)
ENGINE_KEYWORDS = ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")
DTYPES = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}
WIDTHS = {"u8": 1, "u16": 2, "u32": 4}
BUILD_HINT = "build it with: python -m core index build --corpus <corpus> --tokenizer <tokenizer> --out {path}"


def choose_dtype(vocab_size: int) -> str:
    """u16 when every id (< vocab_size) stays below the 0xFFFF separator, else u32.

    >>> choose_dtype(50257), choose_dtype(65535), choose_dtype(65536), choose_dtype(128256)
    ('u16', 'u16', 'u32', 'u32')
    """
    return "u16" if vocab_size <= 0xFFFF else "u32"


def separator_id(token_dtype: str) -> int:
    return int(np.iinfo(DTYPES[token_dtype]).max)


def ptr_size_for(ds_size: int) -> int:
    """Bytes per suffix-array entry, as rust_indexing chooses it: ceil(log2(ds_size) / 8)."""
    return max(1, math.ceil(math.log2(max(ds_size, 2)) / 8))


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def index_fingerprint(token_file_hashes: list[str], token_dtype: str) -> str:
    """sha256 over the token files' hashes and the dtype: same corpus + tokenizer => same value."""
    return hashlib.sha256(json.dumps([token_dtype, token_file_hashes]).encode()).hexdigest()


def prebuilt_fingerprint(folder: Path, token_dtype: str) -> str:
    """Identity of a prebuilt infini-gram index (no manifest): its files' names and sizes, not content (cheap)."""
    sig = [(p.name, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file()]
    return hashlib.sha256(json.dumps([token_dtype, sig]).encode()).hexdigest()


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def not_built(path: Path, why: str) -> IndexNotBuilt:
    return IndexNotBuilt(f"No finished index at {path} ({why}); " + BUILD_HINT.format(path=path))


def read_manifest(folder: Path) -> dict:
    """The manifest of a finished build, after checking every listed file has its recorded size."""
    mpath = folder / MANIFEST
    if (folder / BUILDING).exists():
        raise not_built(folder, "a build was started here and did not finish")
    try:
        manifest = read_json(mpath)
    except FileNotFoundError:
        raise not_built(folder, f"{MANIFEST} is missing") from None
    except DamagedFile as e:
        raise not_built(folder, f"{MANIFEST} is damaged ({str(e).split(': ', 1)[-1]})") from None
    if not isinstance(manifest, dict):
        raise not_built(folder, f"{MANIFEST} is damaged (not a JSON object)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise not_built(folder, f"{MANIFEST} has format_version {manifest.get('format_version')!r}, "
                                f"this version reads {FORMAT_VERSION}")
    for name, size in manifest.get("files", {}).items():
        f = folder / name
        if not f.exists():
            raise not_built(folder, f"{name} is missing")
        if f.stat().st_size != size:
            raise not_built(folder, f"{name} has {f.stat().st_size} bytes, the manifest says {size}")
    return manifest


def manifest_if_ours(folder: Path) -> dict | None:
    """The manifest of a folder this project built (checked: :func:`read_manifest`); None for a prebuilt
    infini-gram folder (none of our files in it)."""
    ours = (folder / MANIFEST).exists() or (folder / COUNTS).exists() or (folder / BUILDING).exists()
    return read_manifest(folder) if ours else None


def has_shard_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.startswith("tokenized") for p in folder.iterdir())


def infer_token_dtype(folder: Path) -> str:
    """Token width of a prebuilt infini-gram shard, from the sizes of its token and suffix-array files."""
    tok = sorted(folder.glob("tokenized*"))
    tab = sorted(folder.glob("table*"))
    if not tok or len(tok) != len(tab):
        raise not_built(folder, "it needs tokenized.N and table.N files for every shard")
    ds_size, sa_size = tok[0].stat().st_size, tab[0].stat().st_size
    for name, width in (("u16", 2), ("u32", 4), ("u8", 1)):
        if ds_size % width == 0 and ds_size and sa_size == (ds_size // width) * ptr_size_for(ds_size):
            return name
    raise not_built(folder, f"{tok[0].name} ({ds_size} B) and {tab[0].name} ({sa_size} B) fit no token width")
