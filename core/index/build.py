"""Build an index folder: tokenize documents, write infini-gram's shard files, build the suffix array.

infini-gram's own indexer hard-codes hub tokenizers, so we write the shard files ourselves (layout in
:mod:`core.index.layout`) and call its bundled ``rust_indexing`` binary for the suffix array.
``manifest.json`` is written last and atomically: a folder without it is not a finished index.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CorpusError, IndexNotBuilt
from core.index import layout as fmt
from core.progress import ProgressEvent, ProgressFn, Tracker

log = logging.getLogger(__name__)

HACK = 100_000  # rust_indexing's overlap between parts, in bytes (its --hacksize default)
SA_RAM_PER_BYTE = 10  # rust_indexing make-part peak RSS per byte of text (measured 9.6 on a 200 MB file)
SA_MEMORY_BUDGET = 2 << 30  # default RAM budget of the suffix-array step: one job up to ~200 MB of text
MIN_PART_BYTES = 4 * HACK  # parts under HACK bytes make rust_indexing miscount or fail (seen at 75 KB)


def _rust_indexing() -> Path:
    import infini_gram

    return Path(infini_gram.__file__).parent / "rust_indexing"


def build_index(documents: Iterable, tokenizer, out_dir: str | Path, *, progress: ProgressFn | None = None,
                cpus: int | None = None, batch_size: int = 8192, max_memory_bytes: int = SA_MEMORY_BUDGET,
                load=None, holdout=None, encoder=None):
    """Tokenize ``documents`` (objects with ``doc_id``, ``text``, ``metadata``) and index them in ``out_dir``.

    No special tokens are added. ``load``: the :class:`core.corpus.load.CorpusLoad` they came from; its
    skipped rows and renamed ids are listed in files beside the index and counted in its manifest
    (``corpus_report``, see :mod:`core.corpus.report`). ``max_memory_bytes`` is the RAM budget of the suffix-array step:
    a text of up to budget/SA_RAM_PER_BYTE bytes (2 per u16 token) is sorted in one job, larger ones in
    parts that are then merged (several times slower). ``encoder``: the
    :class:`core.index.encode.TextEncoder` to tokenize with (default: one for ``tokenizer``; the
    manifest's ``tokenize`` says which engine gave the ids). Returns the opened
    :class:`core.index.corpus_index.CorpusIndex`.

    ``holdout`` (a :class:`core.index.holdout.HoldoutConfig`): a seeded sample of the documents is left out
    of the index and written beside it as its chance floor (recorded under ``holdout`` in the manifest).
    """
    held, source_fp = [], None
    if holdout is not None and holdout.docs > 0:
        from core.corpus.load import corpus_fingerprint
        from core.index.holdout import split_holdout

        docs = documents if isinstance(documents, (list, tuple)) else list(documents)
        source_fp = corpus_fingerprint(docs)
        documents, held = split_holdout(docs, holdout)
    stream, ids_kw = tokenized_corpus(documents, tokenizer, out_dir, load=load, progress=progress, batch_size=batch_size,
                                      encoder=encoder)
    extra = {"corpus_report": ids_kw.pop("corpus_report"), "tokenize": ids_kw.pop("tokenize")}
    index = build_index_from_ids(stream, out_dir, progress=progress, cpus=cpus, max_memory_bytes=max_memory_bytes,
                                 manifest_extra=extra, **ids_kw)
    if source_fp is None:
        return index
    from core.index.corpus_index import CorpusIndex
    from core.index.holdout import write_holdout

    record = write_holdout(held, index, tokenizer, out_dir, holdout, source_fp)
    fmt.write_json_atomic(Path(out_dir) / fmt.MANIFEST, {**index.manifest, "holdout": record})
    log.info("held %d documents out of the index as its chance floor (seed %d)", record["docs"], holdout.seed)
    return CorpusIndex.open(out_dir)


BATCH_CHARS = 4_000_000  # characters tokenized per call (the engines spread a batch over their threads)


def _text_batches(docs: Sequence, batch_size: int, batch_chars: int) -> Iterator[Sequence]:
    """Consecutive slices of ``docs`` of at most ``batch_size`` documents and about ``batch_chars`` characters."""
    start = chars = 0
    for i, d in enumerate(docs):
        chars += len(d.text)
        if chars >= batch_chars or i + 1 - start >= batch_size:
            yield docs[start:i + 1]
            start, chars = i + 1, 0
    if start < len(docs):
        yield docs[start:]


def tokenized_corpus(documents: Iterable, tokenizer, out_dir: str | Path, *, load=None,
                     progress: ProgressFn | None = None, batch_size: int = 8192,
                     encoder=None) -> tuple[Iterator, dict]:
    """Documents tokenized in batches, as ``(doc_id, ids, metadata)``, and the index identity for
    :func:`build_index_from_ids` (tokenizer, vocabulary, corpus fingerprint; ``corpus_report``: what
    the load skipped, written beside the index; ``tokenize``: the engine and its counts, filled in
    once the stream is exhausted).

    Tokenizing goes through :func:`core.index.encode.encode_texts` (exactly the tokenizer's ids;
    fastokens where it is exact), one batch ahead in a thread while the caller writes the previous
    one (the engines release the GIL); ``ids`` are uint32 views of the batch's flat array."""
    from concurrent.futures import ThreadPoolExecutor

    from core.corpus.load import corpus_fingerprint
    from core.corpus.report import write_load_report
    from core.index.encode import TextEncoder, encode_texts
    from core.index.tokenizer import (
        tokenizer_eos_id,
        tokenizer_fingerprint,
        tokenizer_identity,
        tokenizer_vocab_size,
    )

    docs = documents if isinstance(documents, (list, tuple)) else list(documents)
    if not docs:
        raise CorpusError(f"No documents to index into {out_dir}: the corpus is empty")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    corpus_fp = corpus_fingerprint(docs)
    corpus_report = write_load_report(load, out_dir)
    tracker = Tracker("tokenize", len(docs), progress, unit="documents")
    encoder = encoder or TextEncoder(tokenizer)
    info: dict[str, Any] = {"engine": encoder.engine, "fallback_reason": encoder.reason}

    def tokenized() -> Iterator[tuple[str, np.ndarray, Mapping[str, Any]]]:
        batches = _text_batches(docs, batch_size, BATCH_CHARS)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
            batch = next(batches, None)
            ahead = pool.submit(encode_texts, encoder, [d.text for d in batch]) if batch else None
            while batch is not None:
                enc = ahead.result()
                nxt = next(batches, None)
                ahead = pool.submit(encode_texts, encoder, [d.text for d in nxt]) if nxt else None
                for i, d in enumerate(batch):
                    yield str(d.doc_id), enc.doc(i), dict(d.metadata or {})
                tracker.advance(len(batch))
                batch = nxt
        info.update(engine=encoder.engine, fallback_reason=encoder.reason, **encoder.stats.as_dict())

    return tokenized(), {"vocab_size": tokenizer_vocab_size(tokenizer), "eos_token_id": tokenizer_eos_id(tokenizer),
                         "tokenizer_name": tokenizer_identity(tokenizer),
                         "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), "corpus_fingerprint": corpus_fp,
                         "corpus_report": corpus_report, "tokenize": info}


def build_index_from_ids(docs: Iterable[tuple[str, np.ndarray, Mapping[str, Any]]], out_dir: str | Path, *,
                         vocab_size: int, eos_token_id: int, tokenizer_name: str | None = None,
                         tokenizer_fingerprint: str | None = None, corpus_fingerprint: str | None = None,
                         progress: ProgressFn | None = None, cpus: int | None = None,
                         max_memory_bytes: int = SA_MEMORY_BUDGET, manifest_extra: Mapping[str, Any] | None = None):
    """Index pre-tokenized documents ``(doc_id, ids, metadata)``; ids must lie in ``[0, vocab_size)``.

    ``manifest_extra``: more fields for the index manifest (:func:`build_index` adds ``corpus_report``).

    ``max_memory_bytes`` is the RAM budget of the suffix-array step (see :func:`build_suffix_array`);
    up to ``cpus`` jobs run in parallel when the text must be cut into parts.
    """
    if not 0 <= eos_token_id < vocab_size:
        raise IndexNotBuilt(f"eos_token_id {eos_token_id} must lie in [0, vocab_size={vocab_size})")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / fmt.BUILDING).write_text("build in progress\n")
    for name in (fmt.MANIFEST, fmt.COUNTS, *fmt.SHARD_FILES):
        (out / name).unlink(missing_ok=True)
    for stale in out.glob("sa-sample*"):
        stale.unlink()
    dtype_name = fmt.choose_dtype(vocab_size)
    stats = _write_shard(docs, out, dtype_name, vocab_size, progress)
    if stats["num_docs"] == 0:
        raise CorpusError(f"No documents to index into {out}: the corpus is empty")
    t_write = time.perf_counter()
    from core.index import sa_search
    from core.index.verify import Checksums

    sums = Checksums(out)  # the written files are hashed while the suffix array is sorted
    sums.start((fmt.TOKENS, fmt.OFFSETS, fmt.META, fmt.METAOFF))
    try:
        sa_steps = build_suffix_array(out / fmt.TOKENS, fmt.WIDTHS[dtype_name], cpus=cpus, progress=progress,
                                      max_memory_bytes=max_memory_bytes, sample_step=sa_search.SAMPLE_STEP)
        from core.index.shards import Shard, shard_paths

        sample = sa_steps.pop("sample", None)  # narrows every span search (core.index.sa_search)
        sa_search.write_sample(Shard(*shard_paths(out)[0], dtype_name), sa_search.SAMPLE_STEP, sample)
        t_sa = time.perf_counter()
        np.save(out / fmt.COUNTS, stats["counts"])
        checksums = sums.result()  # every index file (core.index.verify), checked when the index is opened
    except BaseException:
        sums.cancel()
        raise
    manifest = {
        "format_version": fmt.FORMAT_VERSION,
        "tokenizer_name": tokenizer_name,
        "tokenizer_fingerprint": tokenizer_fingerprint,
        "corpus_fingerprint": corpus_fingerprint,
        "num_docs": stats["num_docs"],
        "num_tokens": stats["num_tokens"],
        "token_dtype": dtype_name,
        "vocab_size": int(vocab_size),
        "eos_token_id": int(eos_token_id),
        "fingerprint": fmt.index_fingerprint([fmt.sha256_file(out / fmt.TOKENS)], dtype_name),
        "build_seconds": {"tokenize_write": round(t_write - t0, 3), "suffix_array": round(t_sa - t_write, 3),
                          "total": round(time.perf_counter() - t0, 3), "suffix_array_steps": sa_steps},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {name: (out / name).stat().st_size for name in (*fmt.SHARD_FILES, fmt.COUNTS)},
        "checksums": checksums,
        **dict(manifest_extra or {}),
    }
    fmt.write_json_atomic(out / fmt.MANIFEST, manifest)
    (out / fmt.BUILDING).unlink()
    log.info("indexed %d documents, %d tokens into %s", stats["num_docs"], stats["num_tokens"], out)
    from core.index.corpus_index import CorpusIndex

    return CorpusIndex.open(out)


def _write_shard(docs, out: Path, dtype_name: str, vocab_size: int, progress: ProgressFn | None,
                 block_tokens: int = 1 << 22) -> dict:
    """Stream documents into the token/offset/metadata files; returns counts and sizes.

    Documents are gathered into blocks of about ``block_tokens`` tokens, each checked, counted and
    written with a few vectorised calls (separators inserted by ``np.insert``)."""
    dtype = fmt.DTYPES[dtype_name]
    width = fmt.WIDTHS[dtype_name]
    sep_id = fmt.separator_id(dtype_name)
    counts = np.zeros(vocab_size, dtype=np.int64)
    num_docs = num_tokens = ds_pos = mt_pos = 0
    tracker = Tracker("write", 0, progress, unit="documents")
    pending: list[np.ndarray] = []
    names: list[str] = []
    pending_len = 0
    with open(out / fmt.TOKENS, "wb") as ds, open(out / fmt.OFFSETS, "wb") as od, \
            open(out / fmt.META, "wb") as mt, open(out / fmt.METAOFF, "wb") as om:

        def flush() -> None:
            nonlocal pending, names, pending_len, ds_pos, mt_pos
            if not pending:
                return
            lengths = np.array([len(a) for a in pending], dtype=np.int64)
            flat = np.concatenate(pending) if len(pending) > 1 else np.asarray(pending[0])
            if flat.size and (flat.min() < 0 or flat.max() >= vocab_size):
                bad = next(i for i, a in enumerate(pending) if a.size and (a.min() < 0 or a.max() >= vocab_size))
                raise IndexNotBuilt(f"document {names[bad]!r} holds token id {int(pending[bad].max())} outside "
                                    f"[0, vocab_size={vocab_size}); use the tokenizer the index is built for")
            starts = np.cumsum(lengths) - lengths  # each document's first token in ``flat``
            ds.write(np.insert(flat.astype(dtype, copy=False), starts, sep_id).tobytes())
            counts[:] += np.bincount(flat, minlength=vocab_size)[:vocab_size]
            od.write((ds_pos + (starts + np.arange(len(lengths))) * width).astype(np.uint64).tobytes())
            ds_pos += int(lengths.sum() + len(lengths)) * width
            lines = [line.encode("utf-8") for line in names_meta]
            sizes = np.array([len(x) for x in lines], dtype=np.int64)
            om.write((mt_pos + np.cumsum(sizes) - sizes).astype(np.uint64).tobytes())
            mt.write(b"".join(lines))
            mt_pos += int(sizes.sum())
            pending, names, pending_len = [], [], 0
            names_meta.clear()

        names_meta: list[str] = []
        for doc_id, ids, metadata in docs:
            ids = np.asarray(ids)
            if ids.dtype.kind not in "iu":
                ids = ids.astype(np.int64)
            pending.append(ids)
            names.append(doc_id)
            names_meta.append(json.dumps({"doc_id": str(doc_id), "metadata": dict(metadata)}, ensure_ascii=False,
                                         default=str) + "\n")
            pending_len += ids.size
            num_docs += 1
            num_tokens += int(ids.size)
            if pending_len >= block_tokens:
                flush()
                tracker.advance(0, message=f"{num_tokens} tokens")
            tracker.done = num_docs
        flush()
        tracker.advance(0, message=f"{num_docs} documents, {num_tokens} tokens")
    if progress is not None:
        progress(ProgressEvent("unigrams", vocab_size, vocab_size, unit="token ids"))
    return {"num_docs": num_docs, "num_tokens": num_tokens, "counts": counts}


def build_suffix_array(token_file: Path, token_width: int, *, cpus: int | None = None,
                       progress: ProgressFn | None = None, max_memory_bytes: int = SA_MEMORY_BUDGET,
                       engine: str = "auto", sample_step: int | None = None) -> dict:
    """Write the suffix array ``table.0`` of ``token_file`` beside it.

    ``engine``: "libsais" (:mod:`core.index.sais`: u16 tokens, about 4x faster and a third of the
    memory), "rust" (infini-gram's rust_indexing) or "auto": libsais when it is available, the file has
    at least ``sais.MIN_TOKENS`` tokens and the sort fits in ``max_memory_bytes``, else rust_indexing.
    Both write the same bytes.

    rust_indexing: one make-part job covers the file when it fits in ``max_memory_bytes``
    (SA_RAM_PER_BYTE bytes of RAM per byte of text); its table is then final. Larger files are cut into
    parts sorted ``cpus`` at a time (each part >= MIN_PART_BYTES) and merged, which costs more time
    than the sorting. Returns the seconds of each step and the job layout (recorded in the manifest),
    and with libsais and ``sample_step`` the suffix-array sample as ``"sample"`` (see :mod:`core.index.sais`).
    """
    from core.index import sais

    token_file = Path(token_file)
    folder = token_file.parent
    ds_size = token_file.stat().st_size
    n_tokens = ds_size // token_width
    if engine not in ("auto", "libsais", "rust"):
        raise IndexNotBuilt(f"suffix-array engine must be auto, libsais or rust, got {engine!r}")
    if engine == "libsais" or (engine == "auto" and sais.MIN_TOKENS <= n_tokens
                               and sais.RAM_PER_TOKEN * n_tokens <= max_memory_bytes
                               and sais.usable(token_width, n_tokens)):
        t0 = time.perf_counter()
        sample = sais.suffix_array(token_file, folder / fmt.TABLE, sample_step=sample_step)
        if progress is not None:
            progress(ProgressEvent("suffix-array", 1, 1, unit="steps", message="libsais16"))
        return {"total": round(time.perf_counter() - t0, 3), "engine": "libsais16", "jobs": 1, "parallel": 1} | \
            ({"sample": sample} if sample is not None else {})
    # rust_indexing allocates a bucket per possible token (32 GiB for u32), so u32 files are sorted as
    # u16 (suffixes compare bytewise either way) and the misaligned suffixes are dropped afterwards.
    sort_width = min(token_width, 2)
    ratio = fmt.ptr_size_for(ds_size)
    cpus = max(1, cpus or os.cpu_count() or 1)
    if SA_RAM_PER_BYTE * ds_size <= max_memory_bytes:
        total_jobs = 1
    else:  # `cpus` jobs run at once and share the memory budget
        total_jobs = -(-SA_RAM_PER_BYTE * ds_size * cpus // max_memory_bytes)
    total_jobs = max(1, min(total_jobs, ds_size // MIN_PART_BYTES))
    parallel = min(cpus, total_jobs)
    part = -(-ds_size // total_jobs)
    part += (-part) % token_width
    parts_dir, merged_dir = folder / "sa-parts", folder / "sa-merged"
    for d in (parts_dir, merged_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    exe = str(_rust_indexing())
    common = ["--data-file", str(token_file), "--ratio", str(ratio), "--token-width", str(sort_width)]
    ranges = [(i * part, min((i + 1) * part + HACK, ds_size)) for i in range(total_jobs) if i * part < ds_size]
    tracker = Tracker("suffix-array", len(ranges) + 2, progress, unit="steps")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    for b in range(0, len(ranges), parallel):
        procs = [subprocess.Popen([exe, "make-part", *common, "--parts-dir", str(parts_dir),
                                   "--start-byte", str(s), "--end-byte", str(e)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for s, e in ranges[b:b + parallel]]
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise IndexNotBuilt(f"rust_indexing make-part failed on {token_file} (exit {p.returncode}): "
                                    f"{err.decode(errors='replace')[-2000:]}")
            tracker.advance(1, "make-part")
    times["make_part"] = time.perf_counter() - t0
    table = folder / fmt.TABLE
    sorted_file = table if sort_width == token_width else folder / "sa-all.bin"
    whole = (ds_size // sort_width) * ratio
    made = sorted(parts_dir.iterdir())
    if len(ranges) == 1 and len(made) == 1 and made[0].stat().st_size == whole:
        os.replace(made[0], sorted_file)  # one part covering the file: its table is the suffix array
        tracker.advance(2, "single part: no merge needed")
    else:
        _run([exe, "merge", *common, "--parts-dir", str(parts_dir), "--merged-dir", str(merged_dir),
              "--num-threads", str(cpus), "--hacksize", str(HACK)], "merge", token_file)
        tracker.advance(1, "merge")
        times["merge"] = time.perf_counter() - t0 - times["make_part"]
        _run([exe, "concat", *common, "--merged-dir", str(merged_dir), "--merged-file", str(sorted_file),
              "--num-threads", str(cpus)], "concat", token_file)
        tracker.advance(1, "concat")
    shutil.rmtree(parts_dir)
    shutil.rmtree(merged_dir)
    if sorted_file != table:
        _keep_aligned(sorted_file, table, ratio, token_width)
        sorted_file.unlink()
    times["total"] = time.perf_counter() - t0
    expected = (ds_size // token_width) * ratio
    if table.stat().st_size != expected:
        raise IndexNotBuilt(f"rust_indexing wrote {table.stat().st_size} bytes to {table}, expected {expected}")
    log.info("suffix array of %s: %d jobs (%d parallel), %s", token_file, len(ranges), parallel, times)
    return {k: round(v, 3) for k, v in times.items()} | {"engine": "rust_indexing", "jobs": len(ranges),
                                                         "parallel": parallel}


def _keep_aligned(src: Path, dst: Path, ptr_size: int, token_width: int, chunk: int = 1 << 22) -> None:
    """Copy the suffix-array entries of ``src`` that point at token starts (ptr % token_width == 0)."""
    raw = np.memmap(src, dtype=np.uint8, mode="r").reshape(-1, ptr_size)
    with open(dst, "wb") as out:
        for lo in range(0, len(raw), chunk):
            rows = np.zeros((min(chunk, len(raw) - lo), 8), dtype=np.uint8)
            rows[:, :ptr_size] = raw[lo:lo + chunk]
            keep = rows.view("<u8").ravel() % token_width == 0
            out.write(np.ascontiguousarray(rows[keep, :ptr_size]).tobytes())


def _run(cmd: list[str], step: str, token_file: Path) -> None:
    res = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if res.returncode != 0:
        raise IndexNotBuilt(f"rust_indexing {step} failed on {token_file} (exit {res.returncode}): "
                            f"{res.stderr.decode(errors='replace')[-2000:]}")
