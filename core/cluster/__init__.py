"""PropMe on a Ray cluster: index builds (:mod:`core.cluster.build`) and tracing
(:mod:`core.cluster.index`) across nodes. Ray is optional (``requirements-cluster.txt``).

:func:`connect` is the one way in: ``"local"`` starts a Ray instance on this machine bound to
127.0.0.1 (the same code path as a real cluster), ``"auto"`` joins the cluster this machine belongs
to, any other value is a cluster address (``host:port`` or ``ray://host:10001``).
"""
from __future__ import annotations

import os
from pathlib import Path

from core.errors import ConfigError

INSTALL_HINT = "Ray is not installed: pip install -r requirements-cluster.txt (ray[default]==2.60.*)"
ROOT = Path(__file__).resolve().parents[2]  # the folder holding the core package
WORKER_ENV = {"TOKENIZERS_PARALLELISM": "false"}  # one core per task: Ray runs one task per core


def require_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


def runtime_env(address: str) -> dict:
    """How Ray's workers find the ``core`` package: on this machine through PYTHONPATH; on a remote
    cluster the package is shipped with the job (``py_modules``) unless PROPME_RAY_CODE=installed
    says the nodes have it installed (a container image, a shared checkout)."""
    env = dict(WORKER_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    out: dict = {"env_vars": env}
    here = address == "local" or address.split("://")[-1].split(":")[0] in ("127.0.0.1", "localhost")
    if not here and os.environ.get("PROPME_RAY_CODE", "ship") != "installed":
        out["py_modules"] = [str(ROOT / "core")]
    return out


def connect(address: str):
    """Connect this process to Ray (once; later calls with any address reuse the connection).

    Returns the ``ray`` module. Raises ConfigError (one line) when Ray is missing or unreachable."""
    if address == "local":
        loopback_only()
    ray = require_ray()
    if not address or not isinstance(address, str):
        raise ConfigError(f"ray address must be 'local', 'auto' or a cluster address, got {address!r}")
    if ray.is_initialized():
        return ray
    kwargs = {"runtime_env": runtime_env(address), "log_to_driver": False, "configure_logging": False}
    try:
        if address == "local":  # "local": always a new instance (never one found in /tmp/ray)
            ray.init(address="local", include_dashboard=False, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"Cannot connect to the Ray cluster at {address!r}: {first}; start one with "
                          "`ray start --head --node-ip-address=127.0.0.1` or use --ray local") from e
    return ray


def loopback_only() -> None:
    """Make the Ray nodes this process starts bind and advertise 127.0.0.1 only (no other interface):
    Ray's own switch for single-machine clusters, read by the driver and inherited by the nodes."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import sys

    constants = sys.modules.get("ray._private.ray_constants")
    if constants is not None:  # ray already imported: the switch was read at import
        constants.ENABLE_RAY_CLUSTER = False


def local_cluster(nodes: int, cpus_per_node: int = 1, memory_per_node: int | None = None, **node_args):
    """A Ray cluster of ``nodes`` nodes on this machine, all bound to 127.0.0.1
    (``ray.cluster_utils.Cluster``; for tests and benchmarks). Connect with ``connect(cluster.address)``."""
    loopback_only()
    require_ray()
    from ray.cluster_utils import Cluster

    args = {"num_cpus": cpus_per_node, "include_dashboard": False, **node_args}
    if memory_per_node:
        args["memory"] = memory_per_node
    cluster = Cluster(initialize_head=True, head_node_args=dict(args), shutdown_at_exit=True)
    for _ in range(nodes - 1):
        cluster.add_node(**args)
    cluster.wait_for_nodes()
    return cluster


def configured_address(trace=None) -> str:
    """The Ray cluster tracing runs on: the experiment's ``[trace] ray_address``, else the
    PROPME_RAY_ADDRESS environment variable (set where the app is started, so runs from its Run page
    trace on the cluster), else "" (this machine)."""
    return (getattr(trace, "ray_address", "") or os.environ.get("PROPME_RAY_ADDRESS", "")).strip()


def cluster_summary(address: str) -> str:
    """One line about the cluster at ``address`` (for the app's Run page): nodes, CPUs, memory."""
    ray = connect(address)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = ray.cluster_resources()
    return (f"Ray cluster {address}: {len(nodes)} node{'s' * (len(nodes) != 1)}, {int(res.get('CPU', 0))} CPUs, "
            f"{res.get('memory', 0) / 2**30:.1f} GiB for tasks")


def alive_nodes(ray) -> list[dict]:
    """The cluster's live nodes, sorted by node id (a stable order for placing work)."""
    return sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: n["NodeID"])


def on_node(node_id: str, soft: bool = False):
    """A scheduling strategy that runs a task or actor on the node ``node_id``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=soft)
