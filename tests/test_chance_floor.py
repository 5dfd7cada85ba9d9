"""A chance floor for every run: corpus documents held out of the index at build time (core/index/holdout.py),
traced by every run on that index as its ``floor`` setting (core/runs/experiment.py), recorded in the index
manifest and the run's manifest, and described in words (core/reports/floor_text.py).

Checked against independent answers: a brute-force substring search of the held-out token ids in every
indexed document's token ids, the index's own document list, and the texts of the held-out documents.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.config import FloorConfig
from core.errors import ConfigError
from core.index.build import build_index
from core.index.ensure import ensure_index
from core.index.holdout import HOLDOUT_FILE, MAX_SHARE, HoldoutConfig, holdout_of, pick_holdout
from tests.fixtures_index import TinyDoc, train_tiny_tokenizer

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "river", "stone", "cloud", "lamp"]


def corpus(n: int = 60, seed: int = 3) -> list[TinyDoc]:
    rng = random.Random(seed)
    docs = [TinyDoc(f"doc-{i}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + ".")
            for i in range(n)]
    docs.append(TinyDoc("dup-a", docs[0].text))  # an exact duplicate: neither copy may be held out
    docs.append(TinyDoc("inner", " ".join(docs[1].text.split()[:10])))  # contained in doc-1: found in the index if held out
    return docs


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tiny_tokenizer([d.text for d in corpus()], 300, tmp_path_factory.mktemp("tok"))


def _contains(hay: list[int], needle: list[int]) -> bool:
    return any(hay[i:i + len(needle)] == needle for i in range(len(hay) - len(needle) + 1))


def test_held_out_documents_are_not_in_the_index(tok, tmp_path):
    docs = corpus()
    cfg = HoldoutConfig(docs=12, seed=7, max_tokens=40)
    index = build_index(docs, tok, tmp_path / "index", cpus=1, holdout=cfg)
    rec = index.manifest["holdout"]
    picked = {docs[i].doc_id for i in pick_holdout(docs, cfg)}
    assert len(picked) == 12 and not picked & {"doc-0", "dup-a"}  # duplicates are never candidates
    indexed = {index.doc_id(i) for i in range(index.num_docs)}
    assert index.num_docs == len(docs) - 12 and not indexed & picked
    assert set(rec["ids"]) | set(rec["found_in_index"]) == picked
    assert (rec["requested"], rec["seed"], rec["max_tokens"], rec["docs"]) == (12, 7, 40, len(rec["ids"]))
    rows = [json.loads(line) for line in (tmp_path / "index" / HOLDOUT_FILE).read_text().splitlines()]
    assert [r["id"] for r in rows] == rec["ids"] and rec["ids"]
    by_id = {d.doc_id: d.text for d in docs}
    indexed_ids = [index.doc_tokens(i) for i in range(index.num_docs)]
    for r in rows:  # a prefix of its document, at most max_tokens long, and in no indexed document (brute force)
        ids = tok(r["text"], add_special_tokens=False)["input_ids"]
        assert by_id[r["id"]].startswith(r["text"]) and 0 < len(ids) <= 40
        assert not any(_contains(d, ids) for d in indexed_ids), r["id"]
        assert index.count(ids) == 0
    for doc_id in rec["found_in_index"]:  # dropped ones really are in the index at full length
        ids = tok(by_id[doc_id], add_special_tokens=False)["input_ids"][:40]
        assert any(_contains(d, ids) for d in indexed_ids)
    assert holdout_of(tmp_path / "index") == rec


def test_contained_document_is_dropped_when_held_out(tok, tmp_path):
    docs = corpus()
    held = lambda s: {docs[i].doc_id for i in pick_holdout(docs, HoldoutConfig(docs=12, seed=s))}
    seed = next(s for s in range(500) if "inner" in held(s) and "doc-1" not in held(s))
    index = build_index(docs, tok, tmp_path / "index", cpus=1, holdout=HoldoutConfig(docs=12, seed=seed))
    assert "inner" in index.manifest["holdout"]["found_in_index"]
    assert "inner" not in index.manifest["holdout"]["ids"]


def test_sample_is_seeded_small_and_capped():
    docs = corpus()
    a, b = pick_holdout(docs, HoldoutConfig(10, 1)), pick_holdout(docs, HoldoutConfig(10, 1))
    assert a == b and a != pick_holdout(docs, HoldoutConfig(10, 2))
    assert len(pick_holdout(docs, HoldoutConfig(1000, 1))) == int(MAX_SHARE * len(docs))
    assert pick_holdout(docs[:4], HoldoutConfig(20, 1)) == []  # 20% of 4 documents is 0
    assert pick_holdout(docs, HoldoutConfig(0, 1)) == []
    with pytest.raises(ConfigError, match="docs must be an integer >= 0"):
        HoldoutConfig(docs=-1)
    with pytest.raises(ConfigError, match="built-in"):
        FloorConfig(name="prefix")


def test_ensure_index_reuses_only_the_same_holdout(tok, tmp_path):
    docs, out = corpus(), tmp_path / "index"
    first = ensure_index(docs, tok, out, holdout=HoldoutConfig(docs=5, seed=1))
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert ensure_index(docs, tok, out, holdout=HoldoutConfig(docs=5, seed=1)).fingerprint == first.fingerprint
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # reused
    other = ensure_index(docs, tok, out, holdout=HoldoutConfig(docs=5, seed=2))
    assert other.manifest["holdout"]["seed"] == 2
    plain = ensure_index(docs, tok, out)
    assert "holdout" not in plain.manifest and plain.num_docs == len(docs)


def test_every_run_on_a_holdout_index_has_a_floor(tmp_path):
    """A run of the tiny experiment (prefix + generic, no floor setting) on an index built with held-out
    documents traces them as its floor: texts cut to the completion budget, scored, left out of PM, and
    described in the manifest."""
    from core.config.file import load_experiment
    from core.index.tokenizer import load_tokenizer
    from core.reports.floor_text import floor_description
    from core.reports.story import floor_settings
    from core.runs.experiment import run_experiment
    from tests.fixtures_runs import CORPUS, make_tiny_experiment

    toml = make_tiny_experiment(tmp_path, build_index=False)
    tok = load_tokenizer(str(tmp_path / "model"))
    docs = [TinyDoc(f"c{i}", t) for i, t in enumerate(CORPUS * 3)] + [TinyDoc(f"u{i}", t + f" unique {i}.")
                                                                       for i, t in enumerate(CORPUS)]
    index = build_index(docs, tok, tmp_path / "index", cpus=1, holdout=HoldoutConfig(docs=4, seed=5))
    rec = index.manifest["holdout"]
    assert rec["docs"] >= 1
    run = run_experiment(load_experiment(toml))
    floor = [g for g in run.generations if g.key.setting == "floor"]
    assert floor_settings(run.manifest, run.settings()) == ("floor",)
    assert sorted(g.key.prompt_id for g in floor) == sorted(rec["ids"])
    texts = {d.doc_id: d.text for d in docs}
    for g in floor:  # a prefix of the held-out document, no longer than a completion may be (12 tokens)
        assert texts[g.key.prompt_id].startswith(g.completion)
        assert 0 < len(tok(g.completion, add_special_tokens=False)["input_ids"]) <= 12
    assert "floor" in run.summary and "floor" not in run.pm
    info = run.manifest.floor
    assert info["kind"] == "holdout" and info["ids"] == rec["ids"] and info["seed"] == 5 and info["max_tokens"] == 12
    text = floor_description(run.manifest, ("floor",))
    assert "held out of the index" in text and "seed 5" in text and rec["ids"][0] in text
    off = Path(toml).read_text() + "\n[floor]\nholdout = false\n"
    Path(toml).write_text(off.replace('name = "tiny"', 'name = "nofloor"', 1))
    assert "floor" not in load_results_settings(run_experiment(load_experiment(toml)))


def load_results_settings(run) -> list[str]:
    return list(run.settings())


def test_floor_texts_given_on_the_run_page_become_a_floor_setting(tmp_path):
    from core.errors import PromptSetError
    from core.prompts.floor import floor_generations, floor_setting_from_texts

    s = floor_setting_from_texts(["  Written after the cut-off.  ", "", "Another new text."], tmp_path)
    again = floor_setting_from_texts(["Written after the cut-off.", "Another new text."], tmp_path)
    assert s == again and s.kind == "floor" and s.n_prompts == 2 and Path(s.prompts_path).parent == tmp_path
    assert [g.completion for g in floor_generations(s)] == ["Written after the cut-off.", "Another new text."]
    with pytest.raises(PromptSetError, match="at least one non-empty text"):
        floor_setting_from_texts(["  ", ""], tmp_path)


def test_with_floor_adds_the_fallback_only_when_the_run_has_none(tok, tmp_path):
    from core.config import ExperimentConfig, ModelConfig, SettingConfig
    from core.prompts.floor import with_floor

    plain, held = tmp_path / "plain", tmp_path / "held"
    build_index(corpus(), tok, plain, cpus=1)
    build_index(corpus(), tok, held, cpus=1, holdout=HoldoutConfig(docs=3))
    fallback = SettingConfig("floor", prompts_path=str(tmp_path / "f.jsonl"), kind="floor")
    cfg = ExperimentConfig("r", ModelConfig("m"), (str(plain),), (SettingConfig("prefix"),))
    assert with_floor(cfg, fallback).settings[-1] == fallback  # no floor anywhere: the fallback
    assert with_floor(dataclasses_replace(cfg, index_dirs=(str(held),)), fallback).settings == cfg.settings  # held out
    own = dataclasses_replace(cfg, settings=(*cfg.settings, SettingConfig("mine", prompts_path="x.jsonl", kind="floor")))
    assert with_floor(own, fallback) == own
    off = dataclasses_replace(cfg, index_dirs=(str(held),), floor=FloorConfig(holdout=False))
    assert with_floor(off, fallback).settings[-1] == fallback


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)
