"""Index builds and tracing on a local Ray cluster of two nodes (127.0.0.1 only), against the local paths.

The cluster starts once per test session (:func:`ray_cluster`); every test here is marked ``ray``."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

pytest.importorskip("ray")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.index.sharded import SHARDS_FILE, build_sharded_index
from tests.fixtures_index import as_docs, train_tiny_tokenizer

pytestmark = pytest.mark.ray

LICENCES = Path("/usr/share/common-licenses")
SHARD_TOKENS = 6000


def _licence_docs() -> list:
    """Real text: paragraphs of the system's licence files (ids, metadata), in a fixed order."""
    docs = []
    for f in sorted(p for p in LICENCES.iterdir() if p.is_file() and not p.is_symlink())[:8]:
        text = f.read_text(encoding="utf-8", errors="replace")
        for i, para in enumerate(p for p in text.split("\n\n") if p.strip()):
            docs.append((f"{f.name}-{i}", para, {"file": f.name, "n": i}))
    return as_docs(docs[:600])


@pytest.fixture(scope="session")
def ray_cluster():
    """Two Ray nodes of one CPU each on 127.0.0.1, connected (started once per session)."""
    from core.cluster import connect, local_cluster

    cluster = local_cluster(2, cpus_per_node=1)
    ray = connect(cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    docs = _licence_docs()
    folder = tmp_path_factory.mktemp("raytok")
    tok = train_tiny_tokenizer([d.text for d in docs[:200]], vocab_size=600, folder=folder / "tok")
    local = tmp_path_factory.mktemp("rayix") / "local"
    build_sharded_index(docs, tok, local, shard_tokens=SHARD_TOKENS, parallel=1)
    return docs, tok, local


def _shard_files(folder: Path) -> dict[str, bytes]:
    """Every shard file (manifest timings excluded) by relative path."""
    out = {}
    for f in sorted(folder.glob("shard-*/*")):
        if f.name == "manifest.json":
            m = json.loads(f.read_text())
            m.pop("build_seconds"), m.pop("built_at")
            out[str(f.relative_to(folder))] = json.dumps(m, sort_keys=True).encode()
        else:
            out[str(f.relative_to(folder))] = f.read_bytes()
    return out


@pytest.fixture(scope="session")
def ray_built(ray_cluster, corpus, tmp_path_factory):
    from core.cluster.build import build_sharded_on_ray

    docs, tok, _local = corpus
    out = tmp_path_factory.mktemp("rayix") / "ray"
    build_sharded_on_ray(docs, tok, out, address=ray_cluster.address, shard_tokens=SHARD_TOKENS, chunk_docs=64,
                         open_index=False)
    return out


def test_ray_build_writes_the_local_sharded_layout_byte_for_byte(corpus, ray_built, ray_cluster):
    _docs, _tok, local = corpus
    mine, theirs = _shard_files(ray_built), _shard_files(local)
    assert len({k.split("/")[0] for k in theirs}) >= 4  # several shards, so the cut between them is tested
    assert mine.keys() == theirs.keys()
    assert [k for k in mine if mine[k] != theirs[k]] == []
    info, base = json.loads((ray_built / SHARDS_FILE).read_text()), json.loads((local / SHARDS_FILE).read_text())
    assert [{k: s[k] for k in ("name", "num_docs", "num_tokens")} for s in info["shards"]] == base["shards"]
    placement = info["placement"]
    assert placement["storage"] == "shared"
    held = sorted(s for v in placement["nodes"].values() for s in v["shards"])
    assert held == [s["name"] for s in base["shards"]]
    alive = {n["NodeID"] for n in __import__("ray").nodes() if n["Alive"]}
    assert set(placement["nodes"]) <= alive and len(alive) == 2
    for v in placement["nodes"].values():
        assert v["address"] == "127.0.0.1"


def test_restarted_ray_build_skips_verified_shards_and_rebuilds_damaged_ones(corpus, ray_built, ray_cluster, tmp_path):
    from core.cluster.build import STATE_FILE, build_sharded_on_ray
    from core.index import layout as fmt

    docs, tok, local = corpus
    out = tmp_path / "again"
    shutil.copytree(ray_built, out)
    state = json.loads((out / STATE_FILE).read_text())
    names = [r["name"] for r in state["planned"]]
    # stopped mid-way: the last shard never finished, the second was damaged, no sharded.json yet
    del state["complete"][names[-1]]
    shutil.rmtree(out / names[-1])
    fmt.write_json_atomic(out / STATE_FILE, state)
    (out / names[1] / "table.0").write_bytes(b"\0" * (out / names[1] / "table.0").stat().st_size)
    (out / SHARDS_FILE).unlink()
    (out / fmt.BUILDING).write_text("stopped\n")
    build_sharded_on_ray(docs, tok, out, address=ray_cluster.address, shard_tokens=SHARD_TOKENS, chunk_docs=64,
                         open_index=False)
    info = json.loads((out / SHARDS_FILE).read_text())
    assert info["ray"]["shards_skipped_on_restart"] == [n for n in names if n not in (names[1], names[-1])]
    assert _shard_files(out) == _shard_files(local)
    assert not (out / fmt.BUILDING).exists()


def _completions(docs, seed: int, n: int) -> list[str]:
    """Completions that copy corpus pieces (long and short, across paragraph ends) among new words."""
    rng = random.Random(seed)
    words = ["the", "model", "wrote", "a", "new", "line", "of", "text", "here", "and", "there", "license", "software"]
    out = []
    for _ in range(n):
        d = rng.choice(docs).text
        a = rng.randrange(max(1, len(d) - 40))
        piece = d[a:a + rng.randrange(5, 400)]
        filler = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 12)))
        out.append(rng.choice([piece, filler + " " + piece, piece + "\n\n" + filler, filler]))
    return out


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(["mixed", "text"]),
       merge=st.sampled_from(["union", "always", "none"]), docs_per_span=st.integers(1, 12))
def test_cluster_trace_equals_local_trace(corpus, ray_cluster, seed, mode, merge, docs_per_span):
    from core.config import TraceConfig
    from core.index.corpus_index import CorpusIndex
    from core.records import GenKey
    from core.tracing.trace import trace_many

    docs, tok, local = corpus
    cidx = _cluster_index(local, ray_cluster, tok)
    cfg = TraceConfig(mode=mode, merge=merge, docs_per_span=docs_per_span, seed=seed % 1000, workers=1)
    items = [(GenKey("s", f"p{i}", 0), t) for i, t in enumerate(_completions(docs, seed, 12))]
    want = trace_many(CorpusIndex.open(local, tokenizer=tok), tok, items, cfg)
    got = trace_many(cidx, tok, items, cfg)
    assert got == want
    assert sum(len(s.docs) for r in want for s in r.spans) > 0  # documents were sampled and compared


_CLUSTER_INDEXES: dict = {}


def _cluster_index(folder, cluster, tok):
    from core.cluster.index import open_cluster_index

    key = str(folder)
    if key not in _CLUSTER_INDEXES:
        _CLUSTER_INDEXES[key] = open_cluster_index([folder], cluster.address, tokenizer=tok)
    return _CLUSTER_INDEXES[key]


def test_cluster_index_spreads_shard_groups_over_both_nodes_and_answers_as_local(corpus, ray_built, ray_cluster):
    from core.index.corpus_index import CorpusIndex

    docs, tok, local = corpus
    for folder in (local, ray_built):  # contiguous groups over the live nodes / the build's placement
        cidx = _cluster_index(folder, ray_cluster, tok)
        assert len(set(cidx.nodes)) == 2
        idx = CorpusIndex.open(local, tokenizer=tok)
        assert (cidx.num_docs, cidx.num_tokens, cidx.fingerprint) == (idx.num_docs, idx.num_tokens, idx.fingerprint)
        assert (cidx.doc_lengths() == idx.doc_lengths()).all()
        assert (cidx.unigram_counts() == idx.unigram_counts()).all()
        for ix in (0, idx.num_docs // 2, idx.num_docs - 1):
            assert cidx.doc_tokens(ix) == idx.doc_tokens(ix)
            assert (cidx.doc_id(ix), cidx.doc_metadata(ix)) == (idx.doc_id(ix), idx.doc_metadata(ix))
        ids = tok(docs[3].text[:60], add_special_tokens=False)["input_ids"]
        assert cidx.count(ids) == idx.count(ids) >= 1
        assert cidx.occurrences(ids[:2], 7, seed=5) == idx.occurrences(ids[:2], 7, seed=5)
        assert cidx.distinct_docs(ids[:1], 11) == idx.distinct_docs(ids[:1], 11)

