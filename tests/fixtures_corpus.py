"""Write small corpora in every supported format (for tests of the corpus loader and its users)."""
from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import zstandard

WRITABLE = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet", "csv", "hf", "hf-dict", "txt")


def jsonl_bytes(rows: Sequence[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_lines(path: Path, lines: Sequence[bytes | str]) -> Path:
    """A file of the given lines (bytes written as they are), each followed by a newline."""
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n" for ln in lines)
    path.write_bytes(data)
    return path


def write_corpus(folder: Path, fmt: str, rows: Sequence[dict], name: str = "corpus") -> Path:
    """Write ``rows`` (dicts with ``id`` and ``text`` plus metadata) as ``fmt``; return the path.

    ``txt`` writes one file per row at ``<id>`` (ids may hold slashes); ``hf`` / ``hf-dict`` write a
    ``Dataset`` / a ``DatasetDict`` with a ``train`` split via ``save_to_disk``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        path = folder / f"{name}.jsonl"
        path.write_bytes(jsonl_bytes(rows))
    elif fmt == "jsonl.gz":
        path = folder / f"{name}.jsonl.gz"
        with gzip.open(path, "wb") as f:
            f.write(jsonl_bytes(rows))
    elif fmt == "jsonl.zst":
        path = folder / f"{name}.jsonl.zst"
        path.write_bytes(zstandard.ZstdCompressor().compress(jsonl_bytes(rows)))
    elif fmt in ("parquet", "csv"):
        import pandas as pd

        path = folder / f"{name}.{fmt}"
        frame = pd.DataFrame(list(rows))
        frame.to_parquet(path, index=False) if fmt == "parquet" else frame.to_csv(path, index=False)
    elif fmt in ("hf", "hf-dict"):
        import datasets

        path = folder / name
        ds = datasets.Dataset.from_list(list(rows))
        (ds if fmt == "hf" else datasets.DatasetDict({"train": ds})).save_to_disk(str(path))
    elif fmt == "txt":
        path = folder / name
        for row in rows:
            target = path / row["id"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(row["text"], encoding="utf-8")
    else:
        raise ValueError(f"fmt must be one of {WRITABLE}, got {fmt!r}")
    return path
