"""Make sure an index of some documents exists: the one home of "reuse it or build it".

Used by the demo index (core/runs/demo.py), the Run page's uploaded or typed corpora
(app/runner.py) and, through the demo, re-tracing in the app (app/retrace.py).
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from core.corpus.load import Document, corpus_fingerprint
from core.errors import IndexMismatch, IndexNotBuilt
from core.index.build import build_index
from core.index.corpus_index import CorpusIndex
from core.index.tokenizer import tokenizer_fingerprint
from core.progress import ProgressFn

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_abandoned_builds(index_dir: Path) -> list[Path]:
    """Remove the temporary folders (``NAME.tmp-PID``) that cancelled or killed builds of ``index_dir`` left
    beside it: only those holding the build marker (:data:`core.index.layout.BUILDING`, or no manifest)
    whose process is gone. Returns the folders removed."""
    from core.index import layout as fmt

    removed = []
    for p in index_dir.parent.glob(f"{glob.escape(index_dir.name)}.tmp-*"):
        pid = p.name.rsplit(".tmp-", 1)[1]
        if (not pid.isdigit() or p.is_symlink() or not p.is_dir() or int(pid) == os.getpid() or _alive(int(pid))
                or not ((p / fmt.BUILDING).exists() or not (p / fmt.MANIFEST).exists())):
            continue
        shutil.rmtree(p, ignore_errors=True)
        log.info("removed %s, left by an index build that did not finish", p)
        removed.append(p)
    return removed


def ensure_index(documents: Sequence[Document], tok, index_dir: str | os.PathLike, progress: ProgressFn | None = None,
                 *, rebuild: bool = False, load=None, holdout=None) -> CorpusIndex:
    """The index of ``documents`` under ``tok`` in ``index_dir``, built only when needed.

    An existing index is reused when it opens and its manifest records the fingerprints of these
    documents and this tokenizer; otherwise (or with ``rebuild``) it is built in a temporary folder
    beside ``index_dir`` that then replaces it, so an interrupted build never looks finished. ``load``
    (a :class:`core.corpus.load.CorpusLoad`) writes its skipped rows and renamed ids beside the index.
    ``holdout`` (:class:`core.index.holdout.HoldoutConfig`): documents held out as the chance floor; an
    index is reused only when it was built from these documents with the same holdout.
    """
    index_dir = Path(index_dir)
    corpus_fp, tok_fp = corpus_fingerprint(documents), tokenizer_fingerprint(tok)
    if not rebuild and index_dir.exists():
        try:
            index = CorpusIndex.open(index_dir, tokenizer=tok)
        except (IndexNotBuilt, IndexMismatch) as e:
            log.info("index at %s unusable (%s); rebuilding", index_dir, e)
        else:
            manifest = index.manifest
            if _same_build(manifest, corpus_fp, tok_fp, holdout):
                return index
            log.info("index at %s was built from another corpus or tokenizer; rebuilding", index_dir)
    remove_abandoned_builds(index_dir)
    tmp = index_dir.with_name(f"{index_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_index(documents, tok, tmp, progress=progress, cpus=1, load=load, holdout=holdout)
    shutil.rmtree(index_dir, ignore_errors=True)
    os.replace(tmp, index_dir)
    index = CorpusIndex.open(index_dir, tokenizer=tok)
    log.info("built index at %s: %d documents, %d tokens", index_dir, index.num_docs, index.num_tokens)
    return index


def _same_build(manifest: dict, corpus_fp: str, tok_fp: str, holdout) -> bool:
    """Whether an index manifest records a build of these documents with this tokenizer and holdout."""
    if manifest.get("tokenizer_fingerprint") != tok_fp:
        return False
    record = manifest.get("holdout")
    if holdout is None or holdout.docs == 0:
        return record is None and manifest.get("corpus_fingerprint") == corpus_fp
    return isinstance(record, dict) and record.get("source_corpus_fingerprint") == corpus_fp and (
        record.get("requested"), record.get("seed"), record.get("max_tokens")) == (
        holdout.docs, holdout.seed, holdout.max_tokens)
