"""The Run page's work: the demo's paths, uploads, an index for a corpus, and stage progress.

Progress goes to one bar per stage (generate, trace, score ...) with its ETA. The Cancel button
sets a ``threading.Event``; the progress callback then raises ``core.progress.Cancelled`` so the
run stops at the next event with everything finished so far in the result cache (a new run of
the same settings resumes from there).
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

from core.progress import Cancelled, ProgressEvent
from core.runs.demo import demo_model_dir, demo_prompt_paths

BUILD = Path(__file__).resolve().parents[1] / "build"  # gitignored
UPLOAD_DIR = BUILD / "uploads"  # uploaded corpora, content-addressed
APP_INDEX_DIR = BUILD / "app-indexes"  # indexes the Run page built, keyed by corpus + tokenizer fingerprints


def demo_info() -> dict:
    """Paths of the shipped demo: its model folder and its prompt sets by setting."""
    return {"model": str(demo_model_dir()),
            "prompts": {k: str(v) for k, v in demo_prompt_paths().items()}}


def save_upload(name: str, data: bytes, root: Path = UPLOAD_DIR) -> Path:
    """Store an uploaded corpus under a content-addressed name (keeps its extension for format detection)."""
    suffix = re.sub(r"[^A-Za-z0-9.]", "", "".join(Path(name).suffixes[-2:]))[:16] or ".txt"
    path = root / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return path


def index_for_corpus(corpus_path: str, tokenizer_name: str, progress=None, root: Path = APP_INDEX_DIR):
    """Load a corpus file and build (or reuse) its index with ``tokenizer_name``; returns (index dir, load)."""
    from core.config import CorpusConfig
    from core.corpus.load import corpus_fingerprint, load_corpus
    from core.index.ensure import ensure_index
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint

    load = load_corpus(CorpusConfig(path=corpus_path), progress)
    tok = load_tokenizer(tokenizer_name)
    key = hashlib.sha256((corpus_fingerprint(load.documents) + tokenizer_fingerprint(tok)).encode()).hexdigest()[:16]
    out = root / key
    ensure_index(load.documents, tok, out, progress)
    return out, load


def progress_callback(cancel: threading.Event, show: Callable[[ProgressEvent], None]):
    """A ProgressFn that shows each event and raises Cancelled once ``cancel`` is set."""

    def on_event(e: ProgressEvent) -> None:
        if cancel.is_set():
            raise Cancelled(f"cancelled during {e.stage} at {e.done}/{e.total} {e.unit}")
        show(e)

    return on_event


def describe(e: ProgressEvent) -> str:
    eta = f", about {e.eta_s:.0f} s left" if e.eta_s is not None else ""
    total = f"/{e.total}" if e.total else ""
    return f"{e.stage}: {e.done}{total} {e.unit}{eta}" + (f" ({e.message})" if e.message else "")
