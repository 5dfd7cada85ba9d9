"""Read a training corpus: JSONL (plain, .gz, .zst), Parquet, CSV, a folder of .txt files, or a
Hugging Face dataset (``hf:<name>`` on the hub, or a folder written by ``save_to_disk``).

Bad rows are never dropped silently: each becomes a :class:`RowProblem` (file, 1-based line or row,
reason) that is returned in :attr:`CorpusLoad.problems` (``on_bad_rows="skip"``) or raised in a
:class:`~core.errors.BadRowsError` (``"stop"``). A row whose id repeats an earlier one keeps its text:
it is renamed ``id#2``, ``id#3``, ... (the first free name) and listed in :attr:`CorpusLoad.renamed`;
:mod:`core.corpus.report` writes both lists beside the index. A file that cannot be read at all raises
:class:`~core.errors.CorpusError` saying what to do. The readers of each format live in
:mod:`core.corpus.formats` (JSONL lines are decoded one by one, with no length limit).
"""
from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config import CorpusConfig
from core.corpus.formats import FORMATS, detect_format, iter_jsonl, kind, open_rows  # noqa: F401 (re-exported)
from core.corpus.limits import InputLimits, too_big
from core.errors import BadRowsError, ConfigError, CorpusError
from core.progress import ProgressFn, Tracker

log = logging.getLogger(__name__)

ON_BAD_ROWS = ("skip", "stop")
LISTED_PROBLEMS = 10  # problems named in an error message; "stop" reads no further than this many
PROGRESS_EVERY = 1024  # rows per progress event
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)  # every field but text and id


@dataclass(frozen=True)
class RowProblem:
    source: str  # the file (for a .txt folder: the .txt file)
    line: int  # 1-based line (JSONL), data row (Parquet, CSV, dataset) or file number (.txt folder)
    reason: str


@dataclass(frozen=True)
class RenamedId:
    source: str
    line: int
    doc_id: str  # the id in the file (an earlier row has it)
    new_id: str  # the id the document has in the index


@dataclass(frozen=True)
class CorpusLoad:
    documents: tuple[Document, ...]  # in corpus order (a sample keeps that order)
    problems: tuple[RowProblem, ...]
    rows_read: int  # rows looked at: len(documents) + len(problems) when nothing is sampled
    source: str
    renamed: tuple[RenamedId, ...] = ()  # rows whose id repeated an earlier one, kept under a new id


def check_on_bad_rows(value: str) -> None:
    if value not in ON_BAD_ROWS:
        raise ConfigError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {value!r}")


def describe_problems(problems: Iterable[RowProblem], limit: int = LISTED_PROBLEMS) -> str:
    """The first ``limit`` problems, one per line, as ``file line N: reason``."""
    return "\n".join(f"  {p.source} line {p.line}: {p.reason}" for p in list(problems)[:limit])


def text_problem(value: Any, name: str) -> str | None:
    """Why ``value`` cannot be a text (not a string, empty or blank, lone surrogate), or None."""
    if not isinstance(value, str):
        return f"{name} is {kind(value)}, expected a string"
    if not value or value.isspace():
        return f"{name} is empty or whitespace-only"
    if not value.isascii() and _has_surrogate(value) and (m := _SURROGATE.search(value)):
        return f"{name} holds a lone surrogate {m.group()!a} at character {m.start()} (not encodable as UTF-8)"
    return None


def _has_surrogate(value: str) -> bool:
    """Whether ``value`` holds a lone surrogate (UTF-8 encoding in C: many times faster than the regex)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _to_document(row: Mapping[str, Any], line: int, text_field: str, id_field: str | None) -> Document | str:
    """The document of a row, or why the row is invalid; a missing (or null) id is the row number."""
    if text_field not in row:
        return f"missing text field {text_field!r} (fields present: {sorted(row)[:10]})"
    if reason := text_problem(row[text_field], f"text field {text_field!r}"):
        return reason
    raw_id = row.get(id_field) if id_field else None
    if raw_id is None:
        doc_id = str(line)
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        return f"id field {id_field!r} is {kind(raw_id)}, expected a string or integer"
    elif reason := text_problem(str(raw_id), f"id field {id_field!r}"):
        return reason
    else:
        doc_id = str(raw_id)
    meta = {k: v for k, v in row.items() if k != text_field and k != id_field}
    return Document(doc_id, row[text_field], meta)


def load_corpus(cfg: CorpusConfig, progress: ProgressFn | None = None, limits: InputLimits | None = None) -> CorpusLoad:
    """Load (a seeded sample of) the corpus described by ``cfg``, reporting every bad row.

    A sample of ``cfg.sample_size`` valid documents is drawn with ``random.Random(cfg.seed)`` by
    reservoir sampling (memory bounded by the sample) and keeps corpus order. Raises CorpusError
    when the corpus cannot be read or holds no valid document, BadRowsError on bad rows when
    ``cfg.on_bad_rows == "stop"`` (after at most LISTED_PROBLEMS of them).
    """
    check_on_bad_rows(cfg.on_bad_rows)
    if cfg.sample_size is not None and cfg.sample_size < 1:
        raise ConfigError(f"sample_size must be at least 1 or None (whole corpus), got {cfg.sample_size}")
    fmt = detect_format(cfg)
    limits = limits or InputLimits.from_env()
    rows, total, (text_field, id_field) = open_rows(cfg, fmt, limits)
    tracker = Tracker("load", total, progress, unit="documents")
    rng = random.Random(cfg.seed)
    kept: list[tuple[int, Document]] = []
    problems: list[RowProblem] = []
    renamed: list[RenamedId] = []
    seen: set[str] = set()
    rows_read = n_valid = 0
    for source, line, row, reason in rows:
        rows_read += 1
        doc = _to_document(row, line, text_field, id_field) if reason is None else reason
        if isinstance(doc, Document) and len(doc.text) * 4 > limits.max_doc_bytes:  # maybe too long: count bytes
            size = len(doc.text.encode("utf-8", "surrogatepass"))
            if size > limits.max_doc_bytes:
                raise too_big(source, f"the document of line {line} ({size:,} bytes)", "max_doc_bytes",
                              limits.max_doc_bytes)
        if isinstance(doc, Document):
            if doc.doc_id in seen:
                new_id = _free_id(doc.doc_id, seen)
                renamed.append(RenamedId(source, line, doc.doc_id, new_id))
                doc = Document(new_id, doc.text, doc.metadata)
            seen.add(doc.doc_id)
        if isinstance(doc, str):
            problems.append(RowProblem(source, line, doc))
            if cfg.on_bad_rows == "stop" and len(problems) >= LISTED_PROBLEMS:
                break
        elif cfg.sample_size is None or n_valid < cfg.sample_size:
            kept.append((n_valid, doc))
            n_valid += 1
        else:  # reservoir sampling (Algorithm R): every valid document is kept with equal chance
            j = rng.randrange(n_valid + 1)
            if j < cfg.sample_size:
                kept[j] = (n_valid, doc)
            n_valid += 1
        if rows_read % PROGRESS_EVERY == 0:
            tracker.advance(PROGRESS_EVERY)
    tracker.advance(rows_read - tracker.done)
    if problems and cfg.on_bad_rows == "stop":
        more = f" (stopped reading after the first {LISTED_PROBLEMS})" if len(problems) >= LISTED_PROBLEMS else ""
        raise BadRowsError(f"{len(problems)} bad row(s) in {cfg.path}{more}:\n{describe_problems(problems)}\n"
                           "Fix these rows, or use on_bad_rows='skip' to skip them and get them reported.",
                           tuple(problems))
    if rows_read == 0:
        raise CorpusError(f"{cfg.path} holds no rows (only blank lines?): add documents or fix the path")
    if n_valid == 0:
        raise CorpusError(f"{cfg.path}: no valid documents in {rows_read} row(s); first problems:\n"
                          f"{describe_problems(problems)}\nFix the rows or the text field ({text_field!r})")
    if problems:
        log.warning("%s: skipped %d bad row(s) of %d", cfg.path, len(problems), rows_read)
    if renamed:
        log.warning("%s: %d row(s) repeat an earlier id and were kept renamed (first: line %d, %r -> %r)",
                    cfg.path, len(renamed), renamed[0].line, renamed[0].doc_id[:80], renamed[0].new_id[:80])
    documents = tuple(doc for _, doc in sorted(kept, key=lambda pair: pair[0]))
    return CorpusLoad(documents, tuple(problems), rows_read, cfg.path, tuple(renamed))


def _free_id(doc_id: str, seen: set[str]) -> str:
    """``doc_id#k`` for the smallest k >= 2 not in ``seen``.

    >>> _free_id("a", {"a", "a#2"})
    'a#3'
    """
    k = 2
    while f"{doc_id}#{k}" in seen:
        k += 1
    return f"{doc_id}#{k}"


def corpus_fingerprint(documents: Iterable[Document]) -> str:
    """sha256 over (doc_id, text) of each document, in order, length-prefixed (metadata is ignored).

    >>> a, b = Document("a", "x y"), Document("b", "z")
    >>> corpus_fingerprint([a, b]) == corpus_fingerprint([b, a]), len(corpus_fingerprint([a]))
    (False, 64)
    """
    h = hashlib.sha256()
    for doc in documents:
        for value in (doc.doc_id, doc.text):
            data = value.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return h.hexdigest()
