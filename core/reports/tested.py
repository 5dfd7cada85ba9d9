"""What a run tested, for the first screen of the report: the model, the corpus, each setting with its
prompt count and one example prompt, the thresholds (and whether they were tuned in the app), the floor.

Pure functions of a :class:`core.runs.results.RunResults` (its manifest and generations).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.config import CAPABILITY, MetricsConfig
from core.reports.story import CUSTOM_SETTING, GLOSSARY
from core.scoring.registry import label

EXAMPLE_CHARS = 160  # an example prompt is cut to this many characters
DEMO_CORPUS = ("the toy demo corpus: redistributable code, prose and licence texts plus planted fake records, "
               "some duplicated many times")


def _cut(text: str, n: int = EXAMPLE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n].rstrip() + " …"


def index_examples(dirs: Sequence[str], k: int = 4) -> list[str]:
    """Ids of the first ``k`` documents of the index (what the corpus is, by example); [] when it cannot be opened."""
    from core.errors import PropMeError
    from core.index.corpus_index import CorpusIndex

    try:
        index = CorpusIndex.open(list(dirs))
        return [index.doc_id(i) for i in range(min(k, int(index.num_docs)))]
    except (PropMeError, OSError, ValueError):
        return []


def corpus_line(run, toy_demo: bool = False) -> str:
    """'2,110 documents, 290,644 tokens (index build/index): what it is (or the first document ids)'."""
    ix = run.manifest.index
    if ix is None:
        return "not recorded"
    docs = f"{ix.num_docs:,} documents" if ix.num_docs is not None else "? documents"
    tokens = f"{ix.num_tokens:,} tokens" if ix.num_tokens is not None else "? tokens"
    where = ", ".join("/".join(Path(d).parts[-2:]) for d in ix.dirs) or "?"
    if toy_demo:
        what = f": {DEMO_CORPUS}"
    else:
        ids = index_examples(ix.dirs)
        what = f"; documents such as {', '.join(_cut(i, 40) for i in ids)}" if ids else ""
    return f"{docs}, {tokens} in the index ({where}){what}"


def settings_rows(run, floors: Sequence[str]) -> list[dict[str, str]]:
    """One row per setting: what it is, how many prompts (or floor texts) and one example."""
    meanings = dict(GLOSSARY)
    rows = []
    for s in run.settings():
        gens = [g for g in run.generations if g.key.setting == s]
        prompts = len({g.key.prompt_id for g in gens})
        is_floor = s in floors
        first = gens[0] if gens else None
        if first is None:
            example = ""
        elif is_floor:
            example = "(no prompt: the text itself is traced) " + _cut(first.completion)
        else:
            example = _cut(first.prompt.text)
        meaning = meanings["floor"] if is_floor else meanings.get(s, CUSTOM_SETTING)
        rows.append({"setting": s, "what it is": meaning.split(". ")[0].rstrip(".") + ".",
                     "prompts": f"{prompts:,} {'texts' if is_floor else 'prompts'}"
                                + (f" × {len(gens) // prompts} samples" if prompts and len(gens) > prompts else ""),
                     "example prompt": example})
    return rows


def thresholds_line(cfg: MetricsConfig, run_cfg: MetricsConfig, tuned: bool) -> str:
    """The thresholds the verdicts were read with, and where they came from."""
    text = (f"span threshold N = {cfg.span_threshold} tokens ({label('r_n', cfg)}), near-verbatim threshold "
            f"{cfg.nv_threshold:g}, {cfg.confidence:.0%} bootstrap intervals over prompts (B = {cfg.bootstrap_samples:,})")
    if tuned and cfg != run_cfg:
        return text + (f" — TUNED in the app for this report (the run was scored with N = {run_cfg.span_threshold}, "
                       f"nv threshold {run_cfg.nv_threshold:g})")
    return text + " — the run's own thresholds (not tuned in the app)"


def prefix_line(run) -> str:
    """How the attack's prompts were made (from the prefix setting's config)."""
    s = next((x for x in run.manifest.settings if x.name == CAPABILITY), None)
    if s is None:
        return ""
    return (f"the first {s.prefix_tokens} tokens of training documents with at least {s.min_doc_tokens} tokens "
            f"(seed {s.seed})")
