"""core/runs/compare.py and core/runs/catalog.py: what differs between two runs, and which runs lie under a root."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest

from core.config import DecodingConfig, MetricsConfig, SettingConfig, TraceConfig
from core.errors import OutsideRoot, ResultsError
from core.records import GenKey, Prompt
from core.runs.catalog import list_runs, read_manifest
from core.runs.compare import comparability, prompt_sets
from core.runs.manifest import IndexInfo
from core.runs.results import load_results, save_results
from tests.fixtures_app import make_run


def _variant(run, **manifest_changes):
    return dataclasses.replace(run, manifest=dataclasses.replace(run.manifest, **manifest_changes))


def test_identical_runs_are_comparable_and_same_model():
    run = make_run(seed=7)
    c = comparability(run.manifest, run.manifest, prompts=(prompt_sets(run.generations),) * 2)
    assert c.comparable and c.same_model and c.differences == ()
    assert c.a != c.b  # two runs with one name get told apart
    assert c.summary().startswith("comparable")


def test_trace_mode_mismatch_of_the_same_model_is_named():
    a = make_run(seed=7, name="smol")
    b = _variant(a, trace=TraceConfig(mode="text"))
    c = comparability(a.manifest, b.manifest, labels=("run-a", "run-b"))
    assert not c.comparable and c.same_model
    assert [d.text for d in c.blocking] == ["trace mode: mixed in run-a, text in run-b"]
    assert c.summary() == "not comparable: trace mode: mixed in run-a, text in run-b"


def test_every_kind_of_difference_is_listed_once_in_words():
    a = make_run(seed=7)
    b = _variant(a, index=IndexInfo(fingerprint="another-corpus"),
                 decoding=DecodingConfig(temperature=0.7, max_new_tokens=64, batch_size=4),
                 trace=TraceConfig(workers=3, rarity_fraction=0.1),
                 settings=(SettingConfig("prefix", n_prompts=20), SettingConfig("generic")),
                 metrics=MetricsConfig(span_threshold=20), prompt_formats={"generic": "chat"})
    a = _variant(a, prompt_formats={"generic": "raw"})
    c = comparability(a.manifest, b.manifest, labels=("A", "B"))
    texts = [d.text for d in c.differences]
    # an independent list of what was changed above (workers and batch_size do not change results)
    assert texts == [
        "corpus index: fingerprint fixture-inde in A, another-corp in B (another corpus or tokenizer)",
        "trace rarity fraction: 0.05 in A, 0.1 in B",
        "decoding temperature: 0.0 in A, 0.7 in B",
        "decoding max new tokens: 256 in A, 64 in B",
        "settings only in A: specific (not compared)",
        "prefix n prompts: 100 in A, 20 in B",
        "generic prompt format: raw in A, chat in B",
        "scored with different thresholds in A and B (both are scored again here with one configuration)",
    ]
    assert [d.blocking for d in c.differences] == [True, True, True, True, False, True, True, False]


def test_prompt_counts_and_texts_come_from_the_generations():
    a = make_run(seed=7)
    fewer = dataclasses.replace(a, generations=tuple(g for g in a.generations if g.key.prompt_id != "specific-0"))
    other = dataclasses.replace(a, generations=tuple(
        dataclasses.replace(g, prompt=Prompt(g.key.setting, g.key.prompt_id, g.prompt.text + "!"))
        if g.key == GenKey("generic", "generic-1") else g for g in a.generations))
    base = prompt_sets(a.generations)
    assert {s: p.count for s, p in base.items()} == {
        s: len({g.key.prompt_id for g in a.generations if g.key.setting == s}) for s in ("prefix", "generic", "specific")}
    c = comparability(a.manifest, a.manifest, labels=("A", "B"), prompts=(base, prompt_sets(fewer.generations)))
    assert [d.text for d in c.differences] == ["specific prompts: 6 in A, 5 in B"]
    c = comparability(a.manifest, a.manifest, labels=("A", "B"), prompts=(base, prompt_sets(other.generations)))
    assert [d.text for d in c.differences] == ["generic prompts: 7 in both, but different prompt texts"]


def _save(run, folder):
    return save_results(run, folder)


def test_catalog_lists_runs_under_parents_and_reports_broken_folders(tmp_path):
    root = tmp_path / "results"
    a = make_run(seed=7, name="a")
    _save(a, root / "a")
    _save(_variant(make_run(seed=8, name="b", n_per_setting=3), created="2026-02-01T00:00:00+00:00",
                   trace=TraceConfig(mode="text")), root / "sweep" / "b")
    (root / "sweep" / "broken").mkdir(parents=True)
    (root / "sweep" / "broken" / "generations.parquet").write_bytes(b"x")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a run")
    (root / ".b.tmp-123-0123abcd").mkdir()  # a temporary folder of a run being written
    _save(a, root / ".b.tmp-123-0123abcd" / "hidden")
    (tmp_path / "outside").mkdir()
    _save(a, tmp_path / "outside" / "linked")
    os.symlink(tmp_path / "outside", root / "link")
    cat = list_runs(root)
    assert [os.path.relpath(r.path, root) for r in cat.runs] == ["sweep/b", "a"]  # newest first
    b = cat.runs[0]
    assert b.prompt_counts == {"prefix": 3, "generic": 4, "specific": 3}  # 3 per setting + the hostile generic one
    assert b.manifest.trace.mode == "text" and b.model == "tests/fixture-model"
    assert b.settings_text() == "trace text; greedy, 256 new tokens, 1 sample; seed 42"
    assert b.prompts_text() == "prefix 3, generic 4, specific 3"
    assert len(cat.problems) == 1 and "sweep/broken: incomplete results folder (missing manifest.json" in cat.problems[0]
    # the root itself may be a run
    assert [r.path for r in list_runs(root / "a").runs] == [str(root / "a")]
    assert read_manifest(root / "a") == load_results(root / "a").manifest  # the same typed manifest, rows unread


def test_catalog_is_confined_to_the_data_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(OutsideRoot, match="results root .* is outside the data root"):
        list_runs(tmp_path / "root" / ".." / "elsewhere", tmp_path / "root")
    with pytest.raises(ResultsError, match="no folder at"):
        list_runs(tmp_path / "root" / "missing", tmp_path / "root")
    assert list_runs(tmp_path / "root", tmp_path / "root").runs == ()


def test_catalog_reports_a_manifest_it_cannot_read(tmp_path):
    folder = _save(make_run(seed=7), tmp_path / "r")
    raw = json.loads((folder / "manifest.json").read_text())
    raw["trace"] = "not a table"
    (folder / "manifest.json").write_text(json.dumps(raw))
    cat = list_runs(tmp_path)
    assert cat.runs == () and len(cat.problems) == 1 and "trace" in cat.problems[0]
