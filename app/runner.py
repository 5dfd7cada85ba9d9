"""The Run page's work: the demo's paths, uploads, an index for a corpus, and stage progress.

Progress goes to one bar per stage (generate, trace, score ...) with its ETA. The Cancel button
sets a ``threading.Event``; the progress callback then raises ``core.progress.Cancelled`` so the
run stops at the next event with everything finished so far in the result cache (a new run of
the same settings resumes from there).

:func:`experiment_config` is the last check before a run starts, whatever the widgets did: the run
name is one safe folder name, every path lies inside the data root (when one is set, see
:mod:`core.paths`), and remote code stays off there.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.paths import work_dir
from core.config import ExperimentConfig
from core.errors import ConfigError
from core.index.ensure import ensure_index
from core.paths import confine, model_source, safe_name
from core.progress import Cancelled, ProgressEvent
from core.runs.demo import demo_model_dir, demo_prompt_paths

UPLOAD_DIR = work_dir(None) / "uploads"  # uploaded corpora, content-addressed (work_dir(root) with a data root)
APP_INDEX_DIR = work_dir(None) / "app-indexes"  # indexes the Run page built, keyed by corpus + tokenizer


def checked_config(c: ExperimentConfig, root: Path | None = None, exempt: tuple[str, ...] = ()) -> ExperimentConfig:
    """The Run page's ExperimentConfig checked against the data root ``root`` (None: none set), its paths
    resolved.

    Refuses (ConfigError) a run name that is not one safe folder name, remote code with a data root
    set, and a model, index, prompt file or output folder outside the root. ``exempt`` lists the
    app's own shipped paths (the demo model, index and prompt sets), which are allowed anywhere.
    """
    name = safe_name(c.name)
    if root is not None and c.model.trust_remote_code:
        raise ConfigError("Trust remote code cannot be enabled from the web app on this server (PROPME_DATA_ROOT "
                          "is set): run such models with `python -m core run` on a machine you control")

    def inside(path: str, what: str) -> str:
        return path if path in exempt else str(confine(path, root, what=what))

    model = c.model
    if model.name_or_path not in exempt:
        model = replace(model, name_or_path=model_source(model.name_or_path, root, what="model"))
    settings = tuple(replace(s, prompts_path=inside(s.prompts_path, f"prompt set for {s.name}"))
                     if s.prompts_path else s for s in c.settings)
    return replace(c, name=name, model=model, index_dirs=tuple(inside(d, "index folder") for d in c.index_dirs),
                   settings=settings, output_dir=str(confine(c.output_dir, root, what="output folder")))


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
    """Load a corpus file and build (or reuse) its index with ``tokenizer_name`` in a folder under ``root``
    (its skipped rows and renamed ids listed beside it); returns (index dir, load)."""
    from core.config import CorpusConfig
    from core.corpus.load import corpus_fingerprint, load_corpus
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint

    load = load_corpus(CorpusConfig(path=corpus_path), progress)
    tok = load_tokenizer(tokenizer_name)
    key = hashlib.sha256((corpus_fingerprint(load.documents) + tokenizer_fingerprint(tok)).encode()).hexdigest()[:16]
    out = root / key
    ensure_index(load.documents, tok, out, progress, load=load)
    return out, load


def corpus_report_text(load, folder: Path) -> str:
    """The Run page's warning about a corpus's skipped rows and renamed ids (the files beside the index)."""
    from core.corpus.report import describe_load

    return describe_load(load, folder)


def check_output(name: str, out_dir: str, root: Path | None) -> Path:
    """The results folder ``out_dir/name`` of a run from the page, checked before any work starts: a safe
    run name, an output folder inside the data root, nothing there but an earlier results folder."""
    from core.runs.folders import check_replaceable, results_folder

    folder = results_folder(confine(out_dir, root, what="output folder"), name)
    check_replaceable(folder)
    return folder


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
