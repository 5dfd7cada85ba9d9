"""The shipped toy demo: where its files are, and its corpus index built on first use.

The demo bundle (demo/) holds a small redistributable corpus, a toy GPT-2 trained on it, two
prompt sets and the results of the full demo run. The index is not shipped: it is built in seconds
into ``demo/build/index`` (gitignored) the first time it is needed, and rebuilt whenever its manifest's
corpus or tokenizer fingerprint no longer matches the shipped corpus and the demo tokenizer.
"""
from __future__ import annotations

from pathlib import Path

from core.config import CorpusConfig
from core.errors import CorpusError
from core.progress import ProgressFn

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
CORPUS_FILE = DEMO_DIR / "data" / "corpus.jsonl.zst"  # shipped, compressed
BUILD_DIR = DEMO_DIR / "build"  # gitignored


def demo_model_dir() -> Path:
    """Folder of the toy demo model (weights, config, tokenizer, SHA256SUMS)."""
    return DEMO_DIR / "model"


def demo_results_dir() -> Path:
    """Shipped results folder of the full demo run (prefix, generic, specific)."""
    return DEMO_DIR / "results" / "demo"


def demo_experiment_path() -> Path:
    """The experiment file of the full demo run."""
    return DEMO_DIR / "experiment.toml"


def demo_prompt_paths() -> dict[str, Path]:
    """The team-written natural prompt sets, by setting name."""
    return {name: DEMO_DIR / "prompts" / f"{name}.jsonl" for name in ("generic", "specific")}


def demo_floor_path() -> Path:
    """The demo's chance-floor texts (SPEC 6): written for the demo, not in its corpus."""
    return DEMO_DIR / "prompts" / "floor.jsonl"


def demo_index_dir() -> Path:
    """Where :func:`ensure_demo_index` builds the index."""
    return BUILD_DIR / "index"


def demo_corpus_config() -> CorpusConfig:
    """Corpus config of the shipped demo corpus (zstd-compressed JSONL; metadata: source, licence,
    dup_count, kind and, for planted records, record_id)."""
    return CorpusConfig(path=str(CORPUS_FILE), format="jsonl", text_field="text", id_field="id")


def ensure_demo_index(progress: ProgressFn | None = None, *, index_dir: Path | None = None, rebuild: bool = False):
    """The demo corpus index with the demo model's tokenizer, built on first use (seconds).

    An existing index is reused only when its manifest records the corpus fingerprint of the shipped
    corpus and the fingerprint of the demo tokenizer; otherwise (or with ``rebuild``) it is rebuilt
    from scratch in a temporary folder that replaces the old one. Returns a
    :class:`core.index.corpus_index.CorpusIndex`. Raises :class:`CorpusError` when the corpus file is missing or bad.
    """
    from core.corpus.load import load_corpus
    from core.index.ensure import ensure_index
    from core.index.tokenizer import load_tokenizer

    if not CORPUS_FILE.exists():
        raise CorpusError(f"Demo corpus {CORPUS_FILE} is missing: restore it from git or run python -m demo.build_corpus")
    tok = load_tokenizer(str(demo_model_dir()))
    load = load_corpus(demo_corpus_config(), progress)
    if load.problems:
        first = load.problems[0]
        raise CorpusError(f"Demo corpus {CORPUS_FILE}: {len(load.problems)} bad row(s), first at line {first.line}: "
                          f"{first.reason}; rebuild it with python -m demo.build_corpus")
    return ensure_index(load.documents, tok, demo_index_dir() if index_dir is None else index_dir, progress,
                        rebuild=rebuild)


def names_demo_index(index_dirs) -> bool:
    """True when one of ``index_dirs`` is the demo index folder (:func:`demo_index_dir`)."""
    demo = demo_index_dir().resolve()
    return any(Path(d).resolve() == demo for d in index_dirs)


def ensure_demo_index_for(index_dirs, progress: ProgressFn | None = None) -> bool:
    """Build (or refresh) the demo index when ``index_dirs`` names it, so the demo experiment runs in a
    fresh checkout; returns whether it did. Other index folders are left to the caller."""
    if not names_demo_index(index_dirs):
        return False
    ensure_demo_index(progress)
    return True
