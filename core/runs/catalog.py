"""The results folders under a root: every run with its model, date, settings and prompt counts.

:func:`list_runs` walks a folder (confined to the data root when one is set, :mod:`core.paths`) and
finds each results folder written by this tool (:func:`core.runs.results.is_results_folder`). A folder
that holds runs is a parent and is walked, not reported; a folder that has some of a run's files but no
readable manifest is reported as a problem (an incomplete or damaged run). Links are not followed, hidden
folders (this tool's temporary folders start with '.') are skipped, and the walk stops at ``max_depth``.
Only ``manifest.json`` and the setting/prompt columns of ``generations.parquet`` are read.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DamagedFile, DamagedResults, PropMeError, ResultsError
from core.jsonio import read_json
from core.paths import confine
from core.runs import manifest_paths
from core.runs.folders import REQUIRED_FILES, is_results_folder
from core.runs.manifest import FORMAT_VERSION, Manifest, parse

MAX_DEPTH = 4  # folders below the root that are searched (root/a/b/c/run)
MAX_RUNS = 500  # runs listed at most (a huge tree is cut short, and says so)


@dataclass(frozen=True)
class RunEntry:
    """One results folder: where it is, its manifest, and the prompts per setting it holds."""

    path: str
    manifest: Manifest
    prompt_counts: Mapping[str, int] = field(default_factory=dict)  # distinct prompts per setting, from the rows

    @property
    def model(self) -> str:
        m = self.manifest.model
        if m is None:
            return "unknown model"
        return m.config.name_or_path if m.config else m.identity

    def settings_text(self) -> str:
        """e.g. ``trace mixed; greedy, 256 new tokens, 1 sample; seed 42``."""
        d, m = self.manifest.decoding, self.manifest
        decoding = "greedy" if d.greedy else f"temperature {d.temperature:g}, top-p {d.top_p:g}"
        samples = f"{d.num_samples} sample{'s' if d.num_samples != 1 else ''}"
        return f"trace {m.trace.mode}; {decoding}, {d.max_new_tokens} new tokens, {samples}; seed {d.seed}"

    def prompts_text(self) -> str:
        """e.g. ``prefix 100, generic 100``."""
        return ", ".join(f"{s} {n}" for s, n in self.prompt_counts.items())


@dataclass(frozen=True)
class Catalog:
    root: str
    runs: tuple[RunEntry, ...]
    problems: tuple[str, ...] = ()  # folders that look like a run but cannot be read, with the reason
    truncated: bool = False  # more than MAX_RUNS runs: the rest were not listed


def read_manifest(folder: str | os.PathLike) -> Manifest:
    """The typed manifest of results folder ``folder`` (paths made absolute), without reading its rows."""
    folder = Path(folder)
    try:
        raw = read_json(folder / "manifest.json", error=DamagedResults)
    except OSError as e:
        raise ResultsError(f"{folder}/manifest.json cannot be read ({e.strerror or e})") from None
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise ResultsError(f"{folder}/manifest.json has format_version {version!r}; this version reads {FORMAT_VERSION}")
    return parse(manifest_paths.resolve(raw, folder), f"{folder}/manifest.json")


def prompt_counts(folder: str | os.PathLike) -> dict[str, int]:
    """Distinct prompts per setting in ``generations.parquet``, settings in order of first appearance."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(Path(folder) / "generations.parquet", columns=["setting", "prompt_id"])
    except (OSError, ValueError, KeyError) as e:
        raise ResultsError(f"{folder}/generations.parquet cannot be read ({e})") from None
    seen: dict[str, set[str]] = {}
    for s, p in zip(table.column("setting").to_pylist(), table.column("prompt_id").to_pylist()):
        seen.setdefault(s, set()).add(p)
    return {s: len(ids) for s, ids in seen.items()}


def _damaged_manifest(folder: Path) -> str | None:
    """Why ``folder/manifest.json`` cannot be parsed (one line), or None when it parses or is absent."""
    try:
        read_json(folder / "manifest.json")
    except DamagedFile as e:
        return str(e)
    except OSError:
        return None
    return None


def _looks_like_run(filenames: list[str]) -> bool:
    return any(f in filenames for f in REQUIRED_FILES)


def list_runs(root: str | os.PathLike, data_root: Path | None = None, *, max_depth: int = MAX_DEPTH,
              max_runs: int = MAX_RUNS) -> Catalog:
    """Every results folder under ``root`` (``root`` itself included), newest first.

    ``root`` must lie inside ``data_root`` when one is set (OutsideRoot otherwise); links are never
    followed, so nothing outside it is listed. A folder holding runs is walked into, never reported as a
    run; a folder with a run's files but no readable manifest is listed in ``problems``.
    """
    top = confine(root, data_root, what="results root")
    if not top.is_dir():
        raise ResultsError(f"no folder at {top}: choose the folder that holds your results folders")
    runs: list[RunEntry] = []
    problems: list[str] = []
    truncated = False
    def unreadable(e: OSError) -> None:  # a folder the walk cannot enter: listed, never raised
        problems.append(f"{e.filename}: cannot be read ({e.strerror or e})")

    for dirpath, dirnames, filenames in os.walk(top, followlinks=False, onerror=unreadable):
        here = Path(dirpath)
        depth = len(here.relative_to(top).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink()
                             and depth < max_depth)
        damaged = _damaged_manifest(here) if "manifest.json" in filenames else None
        if damaged:
            problems.append(f"{here}: {damaged}")
            dirnames[:] = []
        elif "manifest.json" in filenames and is_results_folder(here):
            dirnames[:] = []  # a run's own folder holds no runs
            if len(runs) >= max_runs:
                truncated = True
                break
            try:
                runs.append(RunEntry(str(here), read_manifest(here), prompt_counts(here)))
            except PropMeError as e:
                problems.append(f"{here}: {e}")
        elif _looks_like_run(filenames):
            missing = [f for f in REQUIRED_FILES if f not in filenames]
            problems.append(f"{here}: incomplete results folder (missing {', '.join(missing)})" if missing else
                            f"{here}: manifest.json was not written by PropMe (no format marker)")
    runs.sort(key=lambda r: (r.manifest.created or "", r.path), reverse=True)
    return Catalog(str(top), tuple(runs), tuple(problems), truncated)


def list_runs_in(folders: list[str], data_root: Path | None = None, *, max_runs: int = MAX_RUNS) -> Catalog:
    """The runs under several folders (each a root holding runs, or a results folder itself), each run once,
    newest first; a folder that is missing, outside the data root or unreadable is a problem, not an error."""
    runs: dict[str, RunEntry] = {}
    problems: list[str] = []
    truncated = False
    for folder in (f.strip() for f in folders):
        if not folder:
            continue
        try:
            found = list_runs(folder, data_root, max_runs=max_runs)
        except (PropMeError, OSError) as e:
            problems.append(f"{folder}: {e}")
            continue
        problems += found.problems
        truncated = truncated or found.truncated
        for r in found.runs:
            runs.setdefault(r.path, r)
    ordered = sorted(runs.values(), key=lambda r: (r.manifest.created or "", r.path), reverse=True)
    return Catalog("; ".join(f.strip() for f in folders if f.strip()), tuple(ordered[:max_runs]),
                   tuple(dict.fromkeys(problems)), truncated or len(ordered) > max_runs)
