"""A stable identity of a model for cache keys, computed without loading it (and without torch)."""
from __future__ import annotations

import hashlib
from pathlib import Path

_EDGE_BYTES = 1 << 20  # model_identity hashes the first and last MiB of each big file
_SMALL_FILE = 16 << 20  # files up to this size are hashed whole
_IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".py", ".tiktoken", ".gguf")


def _file_digest(path: Path) -> str:
    """sha256 of a file: whole when small, else size + first and last MiB (fast on 100 GB checkpoints)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}:".encode())
    with path.open("rb") as f:
        if size <= _SMALL_FILE:
            h.update(f.read())
        else:
            h.update(f.read(_EDGE_BYTES))
            f.seek(size - _EDGE_BYTES)
            h.update(f.read(_EDGE_BYTES))
    return h.hexdigest()


def model_identity(path_or_id: str, revision: str | None = None) -> str:
    """A stable id of a model for cache keys.

    Hub id: ``hub:<id>@<revision or 'default'>``. Local folder: ``<folder name>@sha256:<16 hex>``
    over config, tokenizer and weight files (small files whole, big ones by size + first/last MiB,
    never by mtime), so retraining or replacing weights in place changes the identity. A ``.gguf``
    file: ``<file name>@sha256:<16 hex>`` of that file alone.
    """
    folder = Path(path_or_id).expanduser()
    if folder.is_file():
        return f"{folder.name}@sha256:{hashlib.sha256(_file_digest(folder).encode()).hexdigest()[:16]}"
    if not folder.is_dir():
        return f"hub:{path_or_id}@{revision or 'default'}"
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.name.endswith(_IDENTITY_SUFFIXES):
            h.update(_file_digest(p).encode())
    return f"{folder.resolve().name}@sha256:{h.hexdigest()[:16]}"
