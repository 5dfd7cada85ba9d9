"""Where cluster tracing holds each shard: the shard folders of an index cut into groups, each pinned to
the Ray node that holds its shards (``sharded.json`` placement of an index built on Ray) or spread over
the live nodes (shared storage), up to one group per CPU of a node."""
from __future__ import annotations

from pathlib import Path

from core.errors import DamagedFile, IndexNotBuilt
from core.index import layout as fmt
from core.jsonio import read_json


def _sharded_info(path: Path) -> dict:
    """``sharded.json`` of a sharded index ({} for a folder without one); a damaged one is refused."""
    try:
        info = read_json(path)
    except FileNotFoundError:
        return {}
    except DamagedFile as e:
        raise fmt.not_built(path.parent, f"{path.name} is damaged ({str(e).split(': ', 1)[-1]})") from None
    if not isinstance(info, dict):
        raise fmt.not_built(path.parent, f"{path.name} is damaged (not a JSON object)")
    return info


def live_node(node_id: str, address: str | None, nodes: list[dict]) -> str | None:
    """The live node ``node_id`` or, when it is gone (a Ray node gets a new id when it restarts), a live
    node at the same ``address``; None when there is none."""
    ids = [n["NodeID"] for n in nodes]
    if node_id in ids:
        return node_id
    same = [n["NodeID"] for n in nodes if address and n.get("NodeManagerAddress") == address]
    return same[0] if same else None


def _split(folders: list[str], parts: int) -> list[list[str]]:
    """``folders`` cut into at most ``parts`` contiguous, nearly equal groups."""
    parts = max(1, min(parts, len(folders)))
    size, extra = divmod(len(folders), parts)
    out, at = [], 0
    for i in range(parts):
        n = size + (i < extra)
        out.append(folders[at:at + n])
        at += n
    return [g for g in out if g]


def plan_groups(index_dirs, nodes: list[dict], actors_per_node: int | None = None
                ) -> tuple[list[tuple[list[str], str | None, bool]], list[str]]:
    """The shard folders grouped, [(folders, node id or None, pinned)], and all folders in index
    order (the order ``CorpusIndex.open(index_dirs)`` gives their shards). ``nodes``: the live nodes
    (``ray.nodes()`` entries); each gets up to ``actors_per_node`` groups (default: its CPUs), so a
    node searches its shards on all its cores.

    An index built on Ray names its nodes (``sharded.json`` placement): node-local shards are held on
    their node (found again by address after a restart), shared ones on their builder's node when it is
    alive. Other folders (and shared shards of nodes that are gone) are cut into contiguous groups
    spread over the live nodes."""
    from core.index.sharded import SHARDS_FILE
    from core.index.shards import expand_dirs

    def per_node(nid: str) -> int:
        if actors_per_node:
            return actors_per_node
        cpus = next((n.get("Resources", {}).get("CPU", 1) for n in nodes if n["NodeID"] == nid), 1)
        return max(1, int(cpus))

    groups: list[tuple[list[str], str | None, bool]] = []
    loose: list[str] = []
    ordered: list[str] = []
    for d in [index_dirs] if isinstance(index_dirs, (str, Path)) else list(index_dirs):
        d = Path(d).expanduser()
        info = _sharded_info(d / SHARDS_FILE)
        placement = info.get("placement")
        if not placement:
            loose.extend(str(x) for x in expand_dirs(d))
            ordered.extend(str(x) for x in expand_dirs(d))
            continue
        if (d / fmt.BUILDING).exists():
            raise fmt.not_built(d, "a sharded build was started here and did not finish")
        pinned = placement["storage"] == "node-local"
        for nid, held in placement["nodes"].items():
            folders = [str(d.resolve() / s) for s in held["shards"]]
            node = live_node(nid, held.get("address"), nodes)
            if node is None and pinned:
                raise IndexNotBuilt(f"Shards {held['shards'][0]}.. of {d} are on node {nid[:12]} ({held.get('address')}), "
                                    "which is not in the Ray cluster: start that node again or rebuild the index")
            if node is None:
                loose.extend(folders)
            else:
                groups.extend((g, node, pinned) for g in _split(folders, per_node(node)))
        ordered.extend(str(d.resolve() / s["name"]) for s in info["shards"])
    if loose:
        slots = [n["NodeID"] for n in nodes for _ in range(per_node(n["NodeID"]))] or [None]
        for i, g in enumerate(_split(loose, len(slots))):
            groups.append((g, slots[i], False))
    return groups, ordered
