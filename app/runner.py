"""The Run page's work: its defaults, the demo's paths, uploads, an index for a corpus, and the run itself.

The form's defaults come from one place: the config dataclasses (:func:`cli_defaults`, what
``python -m core config --example`` prints) or, with the demo corpus, demo/experiment.toml
(:func:`demo_defaults`). :func:`plan` checks a run and returns its work for :mod:`app.run_worker`, which
runs it in the background; :func:`describe` words a stage's progress and its ETA.

:func:`checked_config` is the last check before a run starts, whatever the widgets did: the run
name is one safe folder name, every path lies inside the data root (when one is set, see
:mod:`core.paths`), and remote code stays off there.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.paths import confine, work_dir
from core.config import DecodingConfig, ExperimentConfig, ModelConfig, SettingConfig, TraceConfig
from core.config.limits import check_model_context
from core.errors import ConfigError
from core.index.ensure import ensure_index
from core.paths import model_source, no_link, safe_name
from core.progress import ProgressEvent
from core.runs.demo import demo_floor_path, demo_index_dir, demo_model_dir, demo_prompt_paths

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
    check_model_context(replace(c, model=model))  # max_new_tokens vs the model's context, before anything loads
    cache_dir = c.cache_dir
    if root is not None:  # the result cache the run writes lives inside the root too (not ~/.cache/propme)
        cache_dir = str(confine(cache_dir, root, what="cache folder")) if cache_dir else str(work_dir(root, "cache"))
    return replace(c, name=name, model=model, index_dirs=tuple(inside(d, "index folder") for d in c.index_dirs),
                   settings=settings, output_dir=str(confine(c.output_dir, root, what="output folder")),
                   cache_dir=cache_dir)


@dataclass(frozen=True)
class Defaults:
    """Where the Run form's values start: the config dataclasses (what ``python -m core config --example``
    prints and an experiment TOML leaves out), or the demo experiment's choices (demo/experiment.toml)."""

    source: str  # shown under the form
    settings: tuple[SettingConfig, ...]
    decoding: DecodingConfig
    trace: TraceConfig
    model: ModelConfig | None = None  # the demo model's config (device, dtype); None: ModelConfig's defaults


def cli_defaults() -> Defaults:
    """The CLI's defaults: one ``prefix`` setting (the example's only [[settings]] table) and the dataclass defaults."""
    return Defaults("the CLI's defaults (`python -m core config --example`)", (SettingConfig("prefix"),),
                    DecodingConfig(), TraceConfig())


def demo_defaults() -> Defaults:
    """The demo experiment's choices, read from demo/experiment.toml (settings, prompt files, decoding, trace)."""
    from core.config.file import load_experiment
    from core.runs.demo import demo_experiment_path

    cfg = load_experiment(demo_experiment_path())
    return Defaults("the demo experiment (demo/experiment.toml)", cfg.settings, cfg.decoding, cfg.trace, cfg.model)


def form_values(d: Defaults) -> dict[str, Any]:
    """The Run form's widget values (by widget key) for defaults ``d``: decoding, tracing, and each setting's
    own prompt count, format, system prompt and prompt file (:func:`app.setting_form.form_values`)."""
    from app.setting_form import form_values as settings_values

    dec, tr = d.decoding, d.trace
    return {**settings_values(d.settings), "run_temp": dec.temperature, "run_top_p": dec.top_p,
            "run_samples": dec.num_samples, "run_max_new": dec.max_new_tokens, "run_seed": dec.seed,
            "run_trace_mode": tr.mode, "run_trace_rarity": tr.rarity_fraction, "run_trace_docs": tr.docs_per_span}


def demo_info() -> dict:
    """Paths of the shipped demo: its model folder and its prompt sets by setting."""
    return {"model": str(demo_model_dir()),
            "prompts": {k: str(v) for k, v in {**demo_prompt_paths(), "floor": demo_floor_path()}.items()}}


def save_upload(name: str, data: bytes, root: Path = UPLOAD_DIR) -> Path:
    """Store an uploaded corpus under a content-addressed name (keeps its extension for format detection)."""
    suffix = re.sub(r"[^A-Za-z0-9.]", "", "".join(Path(name).suffixes[-2:]))[:16] or ".txt"
    path = root / f"{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return path


def index_for_corpus(corpus_path: str, tokenizer_name: str, progress=None, root: Path = APP_INDEX_DIR,
                     holdout=None):
    """Load a corpus file and build (or reuse) its index with ``tokenizer_name`` in a folder under ``root``
    (its skipped rows and renamed ids listed beside it), holding out ``holdout`` documents as the run's
    chance floor (default :class:`core.index.holdout.HoldoutConfig`: 20 documents, seed 42); returns (index dir, load)."""
    from core.config import CorpusConfig
    from core.corpus.load import corpus_fingerprint, load_corpus
    from core.index.holdout import HoldoutConfig
    from core.index.tokenizer import load_tokenizer, tokenizer_fingerprint

    load = load_corpus(CorpusConfig(path=corpus_path), progress)
    tok = load_tokenizer(tokenizer_name)
    holdout = HoldoutConfig() if holdout is None else holdout
    key = hashlib.sha256((corpus_fingerprint(load.documents) + tokenizer_fingerprint(tok)
                          + f"holdout:{holdout.docs}:{holdout.seed}:{holdout.max_tokens}").encode()).hexdigest()[:16]
    out = no_link(root / key, what="app index folder")
    ensure_index(load.documents, tok, out, progress, load=load, holdout=holdout)
    return out, load


def corpus_report_text(load, folder: Path) -> str:
    """The Run page's warning about a corpus's skipped rows and renamed ids (the files beside the index)."""
    from core.corpus.report import describe_load

    return describe_load(load, folder)


def check_output(name: str, out_dir: str, root: Path | None) -> Path:
    """The results folder ``out_dir/name`` of a run from the page, checked before any work starts: a safe
    run name, an output folder inside the data root, nothing there but an earlier results folder."""
    from core.runs.folders import check_replaceable, results_folder
    from core.runs.lock import check_free

    folder = results_folder(confine(out_dir, root, what="output folder"), name)
    check_replaceable(folder)
    check_free(folder)  # a run writing there now: refused (run_experiment takes the lock itself)
    return folder


STAGE_NAMES = {"starting": "starting", "open": "loading tokenizer and index", "load-model": "loading model",
               "generate": "generating", "trace": "tracing", "score": "scoring"}
NEXT_STAGES = {"generate": "tracing and scoring follow", "trace": "scoring follows"}


def describe(e: ProgressEvent) -> str:
    """One line of a stage's progress; the ETA is the stage's own (from its measured rate), and says what follows.

    >>> describe(ProgressEvent("generate", 16, 64, "generations", 2.0, 24.0, "310 tokens/s, batch size 16"))
    'generating: 16/64 generations, about 24 s left for this stage at the measured rate, tracing and scoring follow (310 tokens/s, batch size 16)'
    """
    eta = ""
    if e.eta_s is not None:
        eta = f", about {e.eta_s:.0f} s left for this stage at the measured rate"
        eta += f", {NEXT_STAGES[e.stage]}" if e.stage in NEXT_STAGES else ""
    elif e.stage == "generate" and e.total and not e.done:
        eta = ", measuring the speed on the first batch"
    total = f"/{e.total}" if e.total else ""
    count = f": {e.done}{total} {e.unit}" if e.total else ""
    return f"{STAGE_NAMES.get(e.stage, e.stage)}{count}{eta}" + (f" ({e.message})" if e.message else "")


@dataclass(frozen=True)
class CorpusChoice:
    """The Run form's corpus: the demo's, an index folder, or a corpus file (its index built in the worker)."""

    kind: str  # demo | index | file
    path: str | None = None  # index folder or corpus file, already confined to the data root
    upload_name: str | None = None  # an uploaded file: the name the user gave it (``path`` is where it is stored)


def corpus_choice(kind: str, index_path: str | None, corpus_path: str | None, upload: tuple[str, bytes] | None,
                  root: Path | None) -> tuple[CorpusChoice, tuple[str, ...]] | None:
    """The Run form's corpus radio (``kind``) and boxes as a CorpusChoice and the run's index folders (for a
    corpus file: a placeholder inside the app's folder, replaced by its own index in the run); None when no
    corpus file was given. Uploads are saved (content-addressed) under the app's folder."""
    if kind == "demo corpus":
        return CorpusChoice("demo"), (str(demo_index_dir()),)
    if kind == "existing index folder":
        folder = str(confine(index_path or "", root, what="index folder"))
        return CorpusChoice("index", folder), (folder,)
    if upload is not None:
        source = save_upload(upload[0], upload[1], work_dir(root, "uploads"))
    elif corpus_path:
        source = confine(corpus_path, root, what="corpus file")
    else:
        return None
    return (CorpusChoice("file", str(source), upload[0] if upload is not None else None),
            (str(work_dir(root) / "app-indexes"),))


def corpus_index(corpus: CorpusChoice, tokenizer_name: str, progress, root: Path | None):
    """The index of a corpus file (built or reused, see :func:`index_for_corpus`) in the app's folder.

    A corpus that cannot be used is refused naming the file as the user named it (an upload's own name,
    not where it is stored), and a refused upload is removed."""
    from core.errors import PropMeError

    try:
        return index_for_corpus(corpus.path, tokenizer_name, progress, work_dir(root, "app-indexes"))
    except PropMeError as e:
        if corpus.upload_name is None:
            raise
        Path(corpus.path).unlink(missing_ok=True)  # a rejected upload is not kept
        raise type(e)(str(e).replace(corpus.path, f"the uploaded file {corpus.upload_name!a}")) from None


def plan(cfg: ExperimentConfig, corpus: CorpusChoice, root: Path | None, exempt: tuple[str, ...] = ()):
    """The Run page's experiment as work for :mod:`app.run_worker` (a process of its own: :func:`execute`).

    Every check that needs no corpus or model (run name, output folder, paths inside the data root,
    remote code) runs now and raises ConfigError/ResultsError at the page; the demo index and a corpus
    file's index are made inside the work, where their progress is shown.
    """
    from app.run_worker import ProcessWork

    check_output(cfg.name, cfg.output_dir, root)
    return ProcessWork(execute, (checked_config(cfg, root, exempt=exempt), corpus, root))


def execute(cfg: ExperimentConfig, corpus: CorpusChoice, root: Path | None, progress):
    """Run a checked config (see :func:`plan`): the corpus's index first, then the experiment; a JobResult."""
    from app.run_worker import JobResult
    from core.prompts.floor import with_floor
    from core.reports.text import skipped_notes
    from core.runs.demo import ensure_demo_index
    from core.runs.experiment import run_experiment
    from core.runs.experiment_file import experiment_toml

    warnings = []
    if corpus.kind == "demo":
        ensure_demo_index(progress)
        # the demo index holds no documents out: the demo's own floor texts are the chance floor of every run on it
        cfg = with_floor(cfg, SettingConfig("floor", n_prompts=100, prompts_path=str(demo_floor_path()), kind="floor"))
    elif corpus.kind == "file":
        folder, load = corpus_index(corpus, cfg.model.name_or_path, progress, root)
        if load.problems or load.renamed:
            warnings.append(corpus_report_text(load, folder))
        cfg = replace(cfg, index_dirs=(str(folder),))
    result = run_experiment(cfg, progress=progress, config_text=experiment_toml(cfg))  # config.toml, as the CLI's
    warnings += skipped_notes(result.manifest)  # count and the first reasons, in full
    return JobResult(str(result.path), len(result.generations), tuple(warnings))


# -- the Jobs view: this server's runs, from any tab or session ----------------------------------------
@dataclass(frozen=True)
class JobEntry:
    """A run the Run page started on this server: its job id, run name, results folder and start time."""

    job_id: str
    name: str
    folder: str
    started: float  # time.time() at the start


_ENTRIES: dict[str, JobEntry] = {}
_STAGE_SEEN: dict[tuple[str, str], float] = {}  # (job id, stage) -> time.monotonic() when a page first saw it
_ENTRIES_LOCK = threading.Lock()


def start_job(cfg: ExperimentConfig, work, first: ProgressEvent) -> str:
    """Start ``work`` (see :func:`plan`) in the background and list it in the Jobs view; returns the job id."""
    from app import run_worker
    from core.runs.folders import results_folder

    job_id = run_worker.start(work, first)
    with _ENTRIES_LOCK:
        _ENTRIES[job_id] = JobEntry(job_id, cfg.name, str(results_folder(Path(cfg.output_dir), cfg.name)),
                                    time.time())
    return job_id


def jobs() -> list[tuple[JobEntry, Any]]:
    """[(entry, JobStatus)] of this server's runs, newest first (those the worker still remembers)."""
    from app import run_worker

    with _ENTRIES_LOCK:
        entries = sorted(_ENTRIES.values(), key=lambda e: e.started, reverse=True)
    out = []
    for e in entries:
        status = run_worker.job_status(e.job_id)
        if status is not None:
            out.append((e, status))
    return out


def stage_lines(job_id: str, stages: tuple[ProgressEvent, ...], active: bool) -> list[tuple[float, str]]:
    """(fraction, text) per stage, told truthfully: a stage that a later one followed (or a finished job's
    stages) shows done; the running stage its progress, and while it has no count yet (loading the model)
    how long it has been at it and what it is doing."""
    now = time.monotonic()
    out = []
    for i, e in enumerate(stages):
        with _ENTRIES_LOCK:
            seen = _STAGE_SEEN.setdefault((job_id, e.stage), now)
        later = i < len(stages) - 1
        name = STAGE_NAMES.get(e.stage, e.stage)
        if later or (not active and e.total and e.done >= e.total):
            out.append((1.0, f"{name}: done" + (f" ({e.done} {e.unit})" if e.total > 1 else "")))
        elif active and (e.total <= 1 and e.done == 0):
            doing = f": {e.message}" if e.message else ""
            out.append((0.0, f"{name}: {now - seen:.0f} s so far{doing}" if e.stage != "load-model" else
                        f"{name}: {now - seen:.0f} s so far, reading the weights into memory{doing}"))
        else:
            out.append((e.fraction, describe(e)))
    return out
