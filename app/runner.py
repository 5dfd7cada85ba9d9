"""The Run page's work: turn its choices into an ExperimentConfig and run it with stage progress.

Progress goes to one bar per stage (generate, trace, score ...) with its ETA. The Cancel button
sets a ``threading.Event``; the progress callback then raises ``core.progress.Cancelled`` so the
run stops at the next event with everything finished so far in the result cache (a new run of
the same settings resumes from there).
"""
from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.config import DecodingConfig, ExperimentConfig, ModelConfig, SettingConfig, TraceConfig
from core.errors import PropMeError
from core.progress import Cancelled, ProgressEvent

log = logging.getLogger(__name__)

BUILD = Path(__file__).resolve().parents[1] / "build"  # gitignored
UPLOAD_DIR = BUILD / "uploads"  # uploaded corpora, content-addressed
APP_INDEX_DIR = BUILD / "app-indexes"  # indexes the Run page built, keyed by corpus + tokenizer fingerprints


@dataclass(frozen=True)
class RunChoices:
    """Everything the Run page's widgets chose."""

    name: str
    model: ModelConfig
    index_dirs: tuple[str, ...]
    settings: tuple[SettingConfig, ...]
    decoding: DecodingConfig
    trace: TraceConfig
    output_dir: str


def experiment_config(c: RunChoices) -> ExperimentConfig:
    return ExperimentConfig(name=c.name, model=c.model, index_dirs=c.index_dirs, settings=c.settings,
                            decoding=c.decoding, trace=c.trace, output_dir=c.output_dir)


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
    from core.index.build import build_index
    from core.index.corpus_index import CorpusIndex
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint

    load = load_corpus(CorpusConfig(path=corpus_path), progress)
    tok = load_tokenizer(tokenizer_name)
    key = hashlib.sha256((corpus_fingerprint(load.documents) + tokenizer_fingerprint(tok)).encode()).hexdigest()[:16]
    out = root / key
    if out.is_dir() and any(out.iterdir()):  # a finished or an interrupted build
        try:
            CorpusIndex.open(out, tokenizer=tok)
            return out, load
        except PropMeError as e:  # an unfinished or mismatched build: rebuild it below
            log.warning("rebuilding unusable index %s: %s", out, e)
    build_index(load.documents, tok, out, progress=progress, cpus=1)
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
