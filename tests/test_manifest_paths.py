"""Portable run manifests: project paths stored relative to the results folder, absolute once loaded,
so a results folder copied with its project still finds its index."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from core.config import ModelConfig, SettingConfig
from core.config.file import load_experiment
from core.index.corpus_index import CorpusIndex
from core.records import Generation, GenKey, Prompt
from core.runs.cache import ResultCache
from core.runs.experiment import run_experiment
from core.runs.manifest import IndexInfo, Manifest, ModelInfo
from core.runs.manifest_paths import make_relative, portable_roots, resolve
from core.runs.results import RunResults, load_results, save_results
from tests.fixtures_runs import make_tiny_experiment


def _paths_in(manifest: Manifest) -> list[str]:
    return [*manifest.index.dirs, manifest.model.config.name_or_path,
            *(s.prompts_path for s in manifest.settings if s.prompts_path)]


def test_results_folder_copied_with_its_project_still_loads_and_finds_its_index(tmp_path):
    proj = tmp_path / "proj"
    cfg = load_experiment(make_tiny_experiment(proj))
    run_experiment(cfg, cache=ResultCache(cfg.cache_dir))
    raw = json.loads((proj / "results" / "tiny" / "manifest.json").read_text())
    assert raw["index"]["dirs"] == [os.path.join("..", "..", "index")]
    assert raw["model"]["config"]["name_or_path"] == os.path.join("..", "..", "model")
    assert raw["settings"][1]["prompts_path"] == os.path.join("..", "..", "generic.jsonl")
    assert raw["cache"]["informational"] is True and raw["cache"]["path"].startswith(str(proj / "cache"))
    without_cache = json.dumps({k: v for k, v in raw.items() if k != "cache"})
    assert str(proj) not in without_cache  # no absolute path of the machine that ran it

    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(proj, moved)
    shutil.rmtree(proj)
    run = load_results(moved / "results" / "tiny")
    assert run.manifest.index.dirs == (str(moved / "index"),)
    assert run.manifest.model.config.name_or_path == str(moved / "model")
    assert all(Path(p).exists() and Path(p).is_absolute() for p in _paths_in(run.manifest))
    index = CorpusIndex.open(list(run.manifest.index.dirs))
    assert index.num_docs == run.manifest.index.num_docs == 8
    # saving the loaded run elsewhere in the same project stores relative paths again
    again = save_results(run, moved / "results" / "again")
    assert json.loads((again / "manifest.json").read_text())["index"]["dirs"] == [os.path.join("..", "..", "index")]
    assert load_results(again).manifest.index.dirs == (str(moved / "index"),)


def test_paths_outside_the_project_and_non_paths_are_kept_as_given(tmp_path):
    folder = tmp_path / "proj" / "results" / "r"
    gen = Generation(GenKey("prefix", "a", 0), Prompt("prefix", "a", "p"), "c")
    manifest = Manifest("r", index=IndexInfo(("/outside/index", str(tmp_path / "proj" / "idx")), tokenizer="gpt2"),
                        model=ModelInfo("m", ModelConfig("org/model"), "org/model"),
                        settings=(SettingConfig("a"), SettingConfig("b", prompts_path="/outside/p.jsonl")))
    save_results(RunResults(None, manifest, (gen,), ()), folder)
    raw = json.loads((folder / "manifest.json").read_text())
    assert raw["index"]["dirs"] == ["/outside/index", os.path.join("..", "..", "idx")]
    assert raw["index"]["tokenizer"] == "gpt2" and raw["model"]["config"]["name_or_path"] == "org/model"
    assert raw["settings"][1]["prompts_path"] == "/outside/p.jsonl" and raw["relative_paths"] == ["index/dirs/1"]
    loaded = load_results(folder).manifest
    assert (loaded.index, loaded.model, loaded.settings) == (manifest.index, manifest.model, manifest.settings)


_segment = st.text(st.characters(whitelist_categories=("Ll", "Nd"), whitelist_characters="._-"), min_size=1,
                   max_size=6).filter(lambda s: s not in (".", ".."))


@given(folder=st.lists(_segment, min_size=2, max_size=5), target=st.lists(_segment, min_size=0, max_size=5),
       moved=st.lists(_segment, min_size=0, max_size=3))
def test_relative_then_resolved_in_a_moved_project_is_the_moved_path(folder, target, moved):
    """Property: a path under the project root, made relative and resolved after moving the project,
    equals the same path under the moved root (checked by joining independently)."""
    root, new_root = Path("/p0/proj"), Path("/q9", *moved, "proj")
    out = Path(root, *folder)
    assert root in portable_roots(out) or Path(out).parent.parent in portable_roots(out)
    value = str(Path(out).parent.parent.joinpath(*target))
    m = make_relative({"index": {"dirs": [value]}}, out)
    assert not os.path.isabs(m["index"]["dirs"][0])
    back = resolve(m, new_root.joinpath(*folder))["index"]["dirs"][0]
    assert back == os.path.normpath(str(new_root.joinpath(*folder).parent.parent.joinpath(*target)))
