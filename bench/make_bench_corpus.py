"""A large, seeded benchmark corpus generated on this machine (no downloads).

Text: the Python standard library's own source files (``sysconfig`` stdlib path, site-packages and
tests excluded, sorted, capped at ``--source-mb``). A byte-level BPE tokenizer is trained on a
slice of it and the whole source is tokenized (that step's throughput is what tokenizing a real
corpus costs). Documents of the benchmark corpus are then spliced from random slices of that token
stream (seeded), so they hold real code n-grams, long repeats and near-duplicates, at any size
without tokenizing gigabytes of text.

    python bench/make_bench_corpus.py --tokens 1000000 --out /tmp/corpus.npz   # quick look
"""
from __future__ import annotations

import argparse
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SourceText:
    texts: list[str]
    files: int
    chars: int


def stdlib_texts(max_mb: float = 24.0) -> SourceText:
    """Python stdlib .py files (sorted, no site-packages/tests) up to ``max_mb`` MB of text."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if "site-packages" in rel or "test" in rel or "tests" in rel or "idlelib" in rel:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few stdlib files are latin-1 test data; they are simply not part of the text
        texts.append(text)
        total += len(text)
        if total >= max_mb * 1e6:
            break
    return SourceText(texts, len(texts), total)


def train_bench_tokenizer(texts: list[str], vocab_size: int = 32000, train_mb: float = 4.0):
    """Byte-level BPE trained on the first ``train_mb`` MB of ``texts`` (PreTrainedTokenizerFast)."""
    from tests.fixtures_index import train_tiny_tokenizer

    sample, size = [], 0
    for t in texts:
        sample.append(t)
        size += len(t)
        if size >= train_mb * 1e6:
            break
    return train_tiny_tokenizer(sample, vocab_size)


def tokenize_all(tokenizer, texts: list[str], batch: int = 256) -> tuple[np.ndarray, float]:
    """All texts as one int32 token stream (documents joined), and the seconds it took."""
    t0 = time.perf_counter()
    parts = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], add_special_tokens=False, return_attention_mask=False)
        parts.extend(np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"])
    return np.concatenate(parts), time.perf_counter() - t0


def spliced_docs(stream: np.ndarray, num_tokens: int, seed: int = 0, doc_len: tuple[int, int] = (200, 2000),
                 piece_len: tuple[int, int] = (16, 400)) -> Iterator[tuple[str, np.ndarray, dict]]:
    """Documents totalling ``num_tokens`` tokens, each a concatenation of random slices of ``stream``."""
    rng = np.random.default_rng(seed)
    made, i = 0, 0
    while made < num_tokens:
        n = min(int(rng.integers(*doc_len)), num_tokens - made)
        pieces, have = [], 0
        while have < n:
            k = min(int(rng.integers(*piece_len)), n - have)
            s = int(rng.integers(0, len(stream) - k))
            pieces.append(stream[s:s + k])
            have += k
        yield f"bench-{i}", np.concatenate(pieces).astype(np.int64), {"seed": seed}
        made += n
        i += 1


def write_token_file(stream: np.ndarray, num_tokens: int, folder: Path, seed: int = 0,
                     doc_len: tuple[int, int] = (200, 2000), piece_len: tuple[int, int] = (16, 400),
                     chunk: int = 1 << 23) -> dict:
    """The spliced corpus of ``num_tokens`` tokens as files, made with vectorised draws (no loop per
    document): ``tokens.u16`` (all documents, back to back) and ``doc_lengths.npy``. Same recipe as
    :func:`spliced_docs` (documents of 200-2000 tokens cut from a stream of random 16-400-token slices of
    ``stream``), not the same draws. Reused when ``folder`` already holds it (``corpus.json``)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    want = {"num_tokens": int(num_tokens), "seed": seed, "stream_tokens": len(stream),
            "stream_sum": int(stream.astype(np.int64).sum()), "doc_len": list(doc_len), "piece_len": list(piece_len)}
    info = folder / "corpus.json"
    if info.exists() and json.loads(info.read_text()) == want:
        return want
    rng = np.random.default_rng(seed)
    lengths = rng.integers(*doc_len, size=num_tokens // doc_len[0] + 1)
    ends = np.cumsum(lengths)
    n_docs = int(np.searchsorted(ends, num_tokens)) + 1
    lengths = lengths[:n_docs]
    lengths[-1] -= int(ends[n_docs - 1]) - num_tokens  # the last document ends at num_tokens
    tokens = stream.astype(np.uint16)
    with open(folder / "tokens.u16", "wb") as out:
        for lo in range(0, num_tokens, chunk):
            need = min(chunk, num_tokens - lo)
            sizes = rng.integers(*piece_len, size=need // piece_len[0] + 1)
            sizes = sizes[:int(np.searchsorted(np.cumsum(sizes), need)) + 1]
            starts = rng.integers(0, len(stream) - sizes)
            first = np.cumsum(sizes) - sizes
            idx = np.repeat(starts - first, sizes) + np.arange(int(sizes.sum()))
            out.write(tokens[idx[:need]].tobytes())
    np.save(folder / "doc_lengths.npy", lengths.astype(np.int64))
    info.write_text(json.dumps(want))
    return want


def read_token_file(folder: Path, num_tokens: int, block: int = 1 << 22) -> Iterator[tuple[str, np.ndarray, dict]]:
    """The documents of :func:`write_token_file` up to ``num_tokens`` tokens (the last one cut), read
    in blocks of about ``block`` tokens: nothing holds the whole corpus in memory."""
    lengths = np.load(folder / "doc_lengths.npy")
    ends = np.cumsum(lengths)
    n_docs = int(np.searchsorted(ends, num_tokens)) + 1
    lengths = lengths[:n_docs].copy()
    lengths[-1] -= int(ends[n_docs - 1]) - num_tokens
    with open(folder / "tokens.u16", "rb") as f:
        i = 0
        while i < n_docs:
            j = min(n_docs, int(np.searchsorted(ends, ends[i] - lengths[i] + block)) + 1)
            data = np.fromfile(f, dtype=np.uint16, count=int(lengths[i:j].sum()))
            pos = 0
            for k in range(i, j):
                n = int(lengths[k])
                yield f"bench-{k}", data[pos:pos + n], {}
                pos += n
            i = j


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--source-mb", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="an .npz with the token stream and doc lengths")
    args = ap.parse_args()
    src = stdlib_texts(args.source_mb)
    tok = train_bench_tokenizer(src.texts)
    stream, secs = tokenize_all(tok, src.texts)
    print(f"stdlib text: {src.files} files, {src.chars / 1e6:.1f} M chars -> {len(stream) / 1e6:.2f} M tokens "
          f"in {secs:.1f} s ({len(stream) / secs / 1e6:.2f} M tokens/s)")
    docs = list(spliced_docs(stream, args.tokens, args.seed))
    np.savez(args.out, tokens=np.concatenate([d[1] for d in docs]), lengths=[len(d[1]) for d in docs])
    print(f"wrote {len(docs)} documents, {args.tokens} tokens to {args.out}")


if __name__ == "__main__":
    main()
