"""File formats of a corpus: detect the format, sniff whole-file problems, and read rows.

Every reader yields ``(source, line, fields, problem)`` rows: ``fields`` is the row as a mapping,
or None with ``problem`` saying why the row cannot be read (not UTF-8, not JSON, not an object).
Whole-file problems (missing, empty, binary, unknown format, no text column) raise CorpusError.
:mod:`core.corpus.load` turns rows into documents; :mod:`core.prompts.sets` reuses :func:`iter_jsonl`.
"""
from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import zstandard

from core.config import CorpusConfig
from core.corpus.limits import CappedReader, InputLimits, too_big
from core.errors import CorpusError
from core.jsonio import json_problem

FORMATS = ("jsonl", "parquet", "csv", "txt", "hf")
SNIFF_BYTES = 8192  # a NUL byte in the first 8 KB marks a file as binary
BATCH_ROWS = 1024  # rows per Parquet/CSV/dataset batch
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                   ".pq": "parquet", ".csv": "csv", ".txt": "txt"}
_BOM = b"\xef\xbb\xbf"

Row = tuple[str, int, "Mapping[str, Any] | None", "str | None"]  # source, line, fields, problem


def kind(value: Any) -> str:
    """A JSON-ish name of the type of ``value`` for messages (null, a number, a list, ...)."""
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "an object", str: "a string"}
    return names.get(type(value), type(value).__name__)


def _open_bytes(path: Path, limits: InputLimits | None = None) -> io.BufferedIOBase:
    """The (unpacked) bytes of ``path``; with ``limits``, reading more than ``max_unpacked_bytes`` stops."""
    if path.suffix.lower() == ".gz":
        inner = gzip.open(path, "rb")  # noqa: SIM115 (returned open, closed by the caller)
    elif path.suffix.lower() == ".zst":
        inner = zstandard.ZstdDecompressor().stream_reader(path.open("rb"), read_across_frames=True)
    else:
        inner = path.open("rb")
    if limits is None:
        return inner if isinstance(inner, io.BufferedIOBase) else io.BufferedReader(inner)
    return io.BufferedReader(CappedReader(inner, limits.max_unpacked_bytes, str(path)), 1 << 16)


def _read_line(f, limits: InputLimits, path: Path, line: int) -> bytes:
    """The next line of ``f`` (b"" at the end), reading no more than ``max_line_bytes`` of it."""
    raw = f.readline(limits.max_line_bytes + 1)
    if len(raw) > limits.max_line_bytes and not (len(raw) == limits.max_line_bytes + 1 and raw.endswith(b"\n")):
        raise too_big(str(path), f"line {line}", "max_line_bytes", limits.max_line_bytes)
    return raw


def _sniff(path: Path, text: bool = True) -> bytes:
    """First bytes of a (decompressed) file; raises CorpusError if it is missing, empty or (a text
    file) binary."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise CorpusError(f"{path} {what}: expected a corpus file; check the path")
    try:
        with _open_bytes(path) as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, EOFError, zstandard.ZstdError) as e:
        raise CorpusError(f"{path} cannot be decompressed ({e}); check that the file is intact") from e
    if not head:
        raise CorpusError(f"{path} is empty: add documents or point the corpus path at another file")
    if text and b"\0" in head:
        raise CorpusError(f"{path} looks binary (NUL bytes in its first {SNIFF_BYTES} bytes), not UTF-8 "
                          "text: check the path and format (UTF-16 files must be re-saved as UTF-8)")
    return head


def _parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 (byte {e.start} of the line): re-save the file as UTF-8"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON at column {e.colno}: {e.msg}"
    except (RecursionError, MemoryError, ValueError):  # the one reader words what else can go wrong
        return None, f"invalid JSON: {json_problem(text)[1] or 'cannot be read'}"
    if not isinstance(obj, dict):
        hint = " (a JSON array file must be rewritten as JSONL, one object per line)" if isinstance(obj, list) else ""
        return None, f"expected a JSON object per line, got {kind(obj)}{hint}"
    return obj, None


def iter_jsonl(path: str | Path, limits: InputLimits | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    """``(line, object, None)`` per non-blank line of a JSONL file (plain, .gz or .zst), or
    ``(line, None, reason)`` for a line that is not UTF-8, not JSON, or not a JSON object.

    Lines are read as bytes and decoded one at a time, each at most ``limits.max_line_bytes`` and the
    file at most ``limits.max_unpacked_bytes`` (default: :meth:`InputLimits.from_env`). Raises CorpusError
    when the file is missing, empty, binary, cannot be decompressed, or goes over a limit.
    """
    path = Path(path)
    limits = limits or InputLimits.from_env()
    _sniff(path)
    line = 0
    with _open_bytes(path, limits) as f:
        try:
            while raw := _read_line(f, limits, path, line + 1):
                line += 1
                if line == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                if raw and not raw.isspace():
                    yield (line, *_parse_line(raw))
        except (OSError, EOFError, zstandard.ZstdError) as e:
            raise CorpusError(f"{path} cannot be decompressed after line {line} ({e}); "
                              "check that the file is intact") from e


def detect_format(cfg: CorpusConfig) -> str:
    """The corpus format: ``cfg.format`` or, for "auto", from the hf: prefix, suffix or folder."""
    if cfg.format != "auto":
        if cfg.format not in FORMATS:
            raise CorpusError(f"unknown corpus format {cfg.format!r}: use one of {('auto',) + FORMATS}")
        return cfg.format
    if cfg.path.startswith("hf:"):
        return "hf"
    path = Path(cfg.path)
    if not path.exists():
        raise CorpusError(f"corpus path {path} does not exist; check the path")
    if path.is_dir():
        saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
        return "hf" if saved else "txt"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst"):
        suffixes.pop()
    if suffixes and suffixes[-1] in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffixes[-1]]
    raise CorpusError(f"cannot tell the format of {path} from its name: rename it (.jsonl, .jsonl.gz, "
                      f".jsonl.zst, .parquet, .csv) or set the corpus format to one of {FORMATS}")


def _require_column(source: str, columns: Iterable[str], name: str) -> None:
    if name not in columns:
        raise CorpusError(f"{source} has no text column {name!r}; columns present: {list(columns)}. "
                          "Set the corpus text field to the column holding the documents")


def _jsonl_rows(path: Path, limits: InputLimits) -> Iterator[Row]:
    for line, obj, reason in iter_jsonl(path, limits):
        yield str(path), line, obj, reason


def _parquet_rows(path: Path, text_field: str, limits: InputLimits) -> tuple[Iterator[Row], int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _sniff(path, text=False)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise CorpusError(f"{path} is not a readable Parquet file ({e}); check the path and format") from e
    _require_column(str(path), pf.schema_arrow.names, text_field)
    unpacked = sum(pf.metadata.row_group(i).total_byte_size for i in range(pf.metadata.num_row_groups))
    if unpacked > limits.max_unpacked_bytes:
        raise too_big(str(path), f"the file once unpacked ({unpacked:,} bytes)", "max_unpacked_bytes",
                      limits.max_unpacked_bytes)

    def rows() -> Iterator[Row]:
        n = 0
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                n += 1
                yield str(path), n, row, None

    return rows(), pf.metadata.num_rows


def _csv_columns(path: Path, limits: InputLimits) -> None:
    """Refuse a CSV whose header line is longer than ``max_line_bytes`` or has more than ``max_csv_columns``
    columns, before pandas reads it."""
    import csv

    with _open_bytes(path, limits) as f:
        head = _read_line(f, limits, path, 1)
    n = max((len(r) for r in csv.reader(io.StringIO(head.decode("utf-8-sig", "replace")))), default=0)
    if n > limits.max_csv_columns:
        raise too_big(str(path), f"the header's {n:,} columns", "max_csv_columns", limits.max_csv_columns, "columns")


def _csv_rows(path: Path, text_field: str, limits: InputLimits) -> Iterator[Row]:
    import pandas as pd

    _sniff(path)
    _csv_columns(path, limits)
    opts = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}
    try:
        with _open_bytes(path, limits) as f:
            columns = list(pd.read_csv(f, nrows=0, **opts).columns)
        _require_column(str(path), columns, text_field)
        n = 0
        with _open_bytes(path, limits) as f:
            for chunk in pd.read_csv(f, chunksize=BATCH_ROWS, **opts):
                for row in chunk.to_dict("records"):
                    n += 1
                    yield str(path), n, row, None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not valid UTF-8 (byte {e.start} of a block): re-save it as UTF-8") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CorpusError(f"{path} is not a readable CSV file ({e}); fix the file or the format") from e


def _txt_files(folder: Path) -> list[Path]:
    """The .txt files under ``folder`` and every symbolic link in it (to a file or a folder), sorted by
    relative path; links are not followed (a link may point anywhere: it becomes a reported skip)."""
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        base = Path(top)
        found += [base / d for d in dirs if (base / d).is_symlink()]
        found += [base / f for f in files if f.endswith(".txt") or (base / f).is_symlink()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _txt_rows(path: Path, limits: InputLimits) -> tuple[Iterator[Row], int]:
    """One document per .txt file (recursively, sorted by relative path; id = that path).

    Symbolic links inside a folder are never followed: each is a skipped row saying so."""
    root, files = (path, _txt_files(path)) if path.is_dir() else (path.parent, [path])
    if not files:
        raise CorpusError(f"{path} holds no .txt files (searched recursively): put one document per .txt "
                          "file there, or point the corpus path at a JSONL/Parquet/CSV file")

    def rows() -> Iterator[Row]:
        total = 0
        for n, p in enumerate(files, 1):
            if p != path and p.is_symlink():
                yield str(p), n, None, (f"symbolic link to {os.readlink(p)!a}, not followed: a corpus folder is "
                                        "read only inside itself (copy the file in to index it)")
                continue
            if not p.is_file():
                yield str(p), n, None, "not a regular file"
                continue
            try:
                size = p.stat().st_size
                if size > limits.max_doc_bytes:
                    raise too_big(str(p), f"the document ({size:,} bytes)", "max_doc_bytes", limits.max_doc_bytes)
                total += size
                if total > limits.max_unpacked_bytes:
                    raise too_big(str(path), "the folder's .txt files together", "max_unpacked_bytes",
                                  limits.max_unpacked_bytes)
                data = p.read_bytes()
            except OSError as e:
                yield str(p), n, None, f"cannot be read ({e.strerror or e})"
                continue
            if b"\0" in data[:SNIFF_BYTES]:
                yield str(p), n, None, "binary file (NUL bytes), not text"
                continue
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                yield str(p), n, None, f"not valid UTF-8 (byte {e.start}): re-save the file as UTF-8"
                continue
            yield str(p), n, {"text": text, "id": p.relative_to(root).as_posix()}, None

    return rows(), len(files)


def _hf_rows(cfg: CorpusConfig) -> tuple[Iterator[Row], int]:
    import datasets

    try:
        if cfg.path.startswith("hf:"):
            ds = datasets.load_dataset(cfg.path[3:], split=cfg.split)
        else:
            ds = datasets.load_from_disk(cfg.path)
    except (OSError, ValueError) as e:
        raise CorpusError(f"cannot load the Hugging Face dataset {cfg.path} ({e}); check the name or folder "
                          "(a folder must be written by Dataset.save_to_disk) and your network") from e
    if isinstance(ds, datasets.DatasetDict):
        if cfg.split not in ds:
            raise CorpusError(f"{cfg.path} has no split {cfg.split!r}; splits present: {list(ds)}")
        ds = ds[cfg.split]
    _require_column(cfg.path, ds.column_names, cfg.text_field)

    def rows() -> Iterator[Row]:
        n = 0
        for table in ds.with_format("arrow").iter(batch_size=BATCH_ROWS):
            for row in table.to_pylist():
                n += 1
                yield cfg.path, n, row, None

    return rows(), len(ds)


def open_rows(cfg: CorpusConfig, fmt: str, limits: InputLimits | None = None
              ) -> tuple[Iterator[Row], int, tuple[str, str | None]]:
    """Rows of the corpus, their number when cheap to know (else 0), and (text field, id field); reading
    stops at ``limits`` (default: :meth:`InputLimits.from_env`) with a CorpusError naming the file."""
    limits = limits or InputLimits.from_env()
    fields = (cfg.text_field, cfg.id_field)
    path = Path(cfg.path)
    if fmt == "hf":
        return (*_hf_rows(cfg), fields)
    if not path.exists():
        raise CorpusError(f"corpus path {path} does not exist; check the path")
    if fmt == "txt":
        return (*_txt_rows(path, limits), ("text", "id"))
    if fmt == "parquet":
        return (*_parquet_rows(path, cfg.text_field, limits), fields)
    if fmt == "csv":
        return _csv_rows(path, cfg.text_field, limits), 0, fields
    return _jsonl_rows(path, limits), 0, fields
