"""A chance floor for every corpus: documents held out of the index at build time (SPEC 2, ``floor``).

A small seeded sample of the corpus documents is left out of the index and written beside it
(``holdout.jsonl``: ``id``, ``text``). They are in-distribution text (the same sources, style and
topics as the corpus) and by construction not in the index, so tracing them as if they were
completions shows what any text of this kind reaches by chance: the chance floor a natural setting
has to exceed before its spans say anything about memorization.

- Only documents whose text occurs once in the corpus are candidates (an exact duplicate of a held-out
  document would still be in the index).
- After the build each held-out text (cut to ``max_tokens`` tokens) is looked up in the index; one that
  is found verbatim at that full length (e.g. it is contained in a longer document) is dropped from the
  floor and listed under ``found_in_index``: what remains is, checked, not in the index.
- The index manifest records the construction under ``holdout`` (requested and held-out counts, seed,
  ids, the file, the fingerprint of the whole corpus before the split); ``core.runs.experiment`` adds a
  ``floor`` setting of these texts to every run on the index (``[floor] holdout = true``, the default).
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.limits import check_upper
from core.errors import ConfigError, IndexNotBuilt

HOLDOUT_FILE = "holdout.jsonl"  # beside the index's own files
MAX_SHARE = 0.2  # never hold out more than this share of the corpus (a small corpus keeps most of itself)


@dataclass(frozen=True)
class HoldoutConfig:
    """How many corpus documents are held out of the index as its chance floor."""

    docs: int = 20  # documents held out (0: none; at most MAX_SHARE of the corpus)
    seed: int = 42  # seed of the sample
    max_tokens: int = 256  # each held-out text is cut to its first max_tokens tokens (the default completion budget)

    def __post_init__(self):
        for name, low in (("docs", 0), ("seed", 0), ("max_tokens", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"HoldoutConfig.{name} must be an integer >= {low}, got {value!r}")
        check_upper(self)  # and at most its limit (core/config/limits.py)


def pick_holdout(documents: Sequence[Any], cfg: HoldoutConfig) -> list[int]:
    """Positions (sorted) of the documents held out: a seeded sample of those whose text is unique and
    not blank, at most ``cfg.docs`` and at most MAX_SHARE of the corpus.

    >>> from types import SimpleNamespace as D
    >>> docs = [D(doc_id=str(i), text=t) for i, t in enumerate(["a", "b", "a", "c", " ", "d", "e", "f", "g", "h"])]
    >>> picked = pick_holdout(docs, HoldoutConfig(docs=5, seed=1))
    >>> len(picked), any(docs[i].text in ("a", " ") for i in picked), picked == pick_holdout(docs, HoldoutConfig(5, 1))
    (2, False, True)
    """
    if cfg.docs == 0:
        return []
    seen: dict[str, int] = {}
    for d in documents:
        h = hashlib.sha256(d.text.encode("utf-8")).hexdigest()
        seen[h] = seen.get(h, 0) + 1
    candidates = [i for i, d in enumerate(documents) if d.text.strip()
                  and seen[hashlib.sha256(d.text.encode("utf-8")).hexdigest()] == 1]
    n = min(cfg.docs, len(candidates), int(MAX_SHARE * len(documents)))
    return sorted(random.Random(cfg.seed).sample(candidates, n)) if n > 0 else []


def cut_text(text: str, tokenizer, max_tokens: int) -> tuple[str, list[int]]:
    """The first ``max_tokens`` tokens of ``text`` (no special tokens) as text and ids; a fast tokenizer
    cuts the original string at the token's character offset, else the ids are decoded."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)))
    ids = list(enc["input_ids"])
    if len(ids) <= max_tokens:
        return text, ids
    offsets = enc.get("offset_mapping") if hasattr(enc, "get") else None
    cut = offsets[max_tokens - 1][1] if offsets else None
    piece = text[:cut] if cut else tokenizer.decode(ids[:max_tokens])
    return piece, list(tokenizer(piece, add_special_tokens=False)["input_ids"])


def split_holdout(documents: Sequence[Any], cfg: HoldoutConfig) -> tuple[list[Any], list[Any]]:
    """(documents to index, documents held out)."""
    held = set(pick_holdout(documents, cfg))
    return [d for i, d in enumerate(documents) if i not in held], [documents[i] for i in sorted(held)]


def write_holdout(held: Sequence[Any], index, tokenizer, out_dir: str | Path, cfg: HoldoutConfig,
                  source_fingerprint: str) -> dict[str, Any]:
    """Write ``holdout.jsonl`` beside the built ``index`` (texts cut to ``cfg.max_tokens``), dropping any text
    the index holds verbatim; returns the manifest record of the holdout."""
    kept, found = [], []
    for d in held:
        text, ids = cut_text(d.text, tokenizer, cfg.max_tokens)
        if not ids or index.count(ids) > 0:
            found.append(str(d.doc_id))
            continue
        kept.append({"id": str(d.doc_id), "text": text, "domain": "held out"})
    path = Path(out_dir) / HOLDOUT_FILE
    path.write_text("".join(json.dumps(k, ensure_ascii=False) + "\n" for k in kept), encoding="utf-8")
    return {"requested": cfg.docs, "docs": len(kept), "seed": cfg.seed, "max_tokens": cfg.max_tokens,
            "ids": [k["id"] for k in kept], "found_in_index": found, "file": HOLDOUT_FILE,
            "source_corpus_fingerprint": source_fingerprint}


def holdout_of(index_dir: str | Path) -> dict[str, Any] | None:
    """The holdout record of an index folder's manifest (None when it holds none or no texts)."""
    from core.index import layout as fmt

    try:
        manifest = fmt.read_manifest(Path(index_dir))
    except IndexNotBuilt:  # a prebuilt infini-gram index without our manifest has no holdout
        return None
    record = (manifest or {}).get("holdout")
    if not isinstance(record, dict) or not record.get("docs"):
        return None
    return record
