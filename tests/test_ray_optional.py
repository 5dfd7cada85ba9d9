"""Ray is optional: without it, ``--ray`` says in one line how to install it."""
from __future__ import annotations


def test_ray_option_without_ray_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    from core.cli import main
    from core.cluster import INSTALL_HINT

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    rc = main(["index", "build", "--corpus", str(tmp_path / "c.jsonl"), "--tokenizer", "gpt2", "--ray", "local",
               "--out", str(tmp_path / "ix")])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and INSTALL_HINT in err and len(err.splitlines()) == 1


def test_tracing_goes_to_the_configured_cluster_the_experiment_first_then_the_environment(monkeypatch):
    from core.cluster import configured_address
    from core.config import TraceConfig

    monkeypatch.delenv("PROPME_RAY_ADDRESS", raising=False)
    assert configured_address(TraceConfig()) == ""
    monkeypatch.setenv("PROPME_RAY_ADDRESS", "auto")
    assert configured_address(TraceConfig()) == "auto"
    assert configured_address(TraceConfig(ray_address="10.0.0.5:6379")) == "10.0.0.5:6379"


def test_ray_address_does_not_change_the_trace_cache_key():
    from core.config import TraceConfig
    from core.runs.cache import trace_key

    assert trace_key("g", "text", "fp", TraceConfig()) == trace_key("g", "text", "fp", TraceConfig(ray_address="auto"))
    assert trace_key("g", "text", "fp", TraceConfig()) != trace_key("g", "text", "fp", TraceConfig(seed=1))


def _placed_index(folder, storage: str, nodes: dict) -> None:
    import json

    from core.index.layout import write_json_atomic

    folder.mkdir()
    names = [s for held in nodes.values() for s in held["shards"]]
    for n in names:
        (folder / n).mkdir()
    write_json_atomic(folder / "sharded.json", {"shards": [{"name": n} for n in sorted(names)],
                                                "placement": {"storage": storage, "nodes": nodes}})
    json.loads((folder / "sharded.json").read_text())


def test_shard_groups_follow_the_recorded_placement_and_a_restarted_node_is_found_by_address(tmp_path):
    import pytest

    from core.cluster.placement import plan_groups
    from core.errors import IndexNotBuilt

    _placed_index(tmp_path / "ix", "node-local", {
        "old-a": {"address": "10.0.0.1", "shards": ["shard-00000", "shard-00002", "shard-00003"]},
        "b": {"address": "10.0.0.2", "shards": ["shard-00001"]}})
    nodes = [{"NodeID": "new-a", "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 2}},
             {"NodeID": "b", "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 4}}]
    groups, ordered = plan_groups([tmp_path / "ix"], nodes)
    root = (tmp_path / "ix").resolve()
    assert ordered == [str(root / f"shard-0000{i}") for i in range(4)]
    assert sorted(groups) == [([str(root / "shard-00000"), str(root / "shard-00002")], "new-a", True),
                              ([str(root / "shard-00001")], "b", True), ([str(root / "shard-00003")], "new-a", True)]
    with pytest.raises(IndexNotBuilt, match="not in the Ray cluster"):
        plan_groups([tmp_path / "ix"], nodes[1:])
    _placed_index(tmp_path / "shared", "shared", {"gone": {"address": "10.0.0.9", "shards": ["shard-00000", "shard-00001"]}})
    groups, _ = plan_groups([tmp_path / "shared"], nodes, actors_per_node=1)  # spread over the live nodes instead
    assert [(len(g), node, pinned) for g, node, pinned in groups] == [(1, "new-a", False), (1, "b", False)]
