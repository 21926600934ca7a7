"""kairos serve --backend ray on a local multi-node Ray cluster (ray.cluster_utils.Cluster).

Three Ray nodes on this machine, each a different "VM": the head offers the custom
resource kairos/g4dn.xlarge (2 units), two worker nodes kairos/r5n.large (5 units
each). The gateway (a `kairos serve --backend ray --address ...` process) places one
actor per instance by that resource, serves rm2 in emulated mode at 80% of the
simulator's max QPS for the configuration, then loses a node under load (nothing
lost, instances restarted on the other node), then loses the last r5n node (the pool
shrinks to what can be placed, keeps serving) and gets one back (the pool grows back).
Skipped where Ray is not installed (pip install -e '.[ray]').
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from serve_helpers import Server, metric, pid_alive  # noqa: E402

from kairos.serve.loadgen import run_load  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402

pytestmark = pytest.mark.ray

CONFIG = {"g4dn.xlarge": 2, "r5n.large": 5}
QOS_MS = 350.0
MIX = parse_size_mix("deeprecsys")
NODE_ARGS = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * 2**20)
# quick node-death detection (default: tens of seconds) and capped task events
SYSTEM_CONFIG = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 4,
    "health_check_initial_delay_ms": 1000,
    "task_events_max_num_task_in_gcs": 10_000,
    "enable_metrics_collection": False,
}


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(") ", 1)[1].split()[1])


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _wait(pred, timeout_s: float, what: str, period: float = 0.25):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    # loopback only: Ray otherwise swaps 127.0.0.1 for this machine's network address
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # (inherited by the gateway process)
    cluster = Cluster(
        initialize_head=True,
        head_node_args=dict(
            NODE_ARGS, resources={"kairos/g4dn.xlarge": 2}, include_dashboard=False, _system_config=SYSTEM_CONFIG
        ),
    )
    try:
        nodes = {"g4dn": cluster.head_node}
        nodes["r5n-a"] = cluster.add_node(**NODE_ARGS, resources={"kairos/r5n.large": 5})
        nodes["r5n-b"] = cluster.add_node(**NODE_ARGS, resources={"kairos/r5n.large": 5})
        yield cluster, nodes
    finally:
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def sim_max_qps():
    from kairos.profiles import builtin_catalogue
    from kairos.sim.experiment import Experiment

    exp = Experiment.build(builtin_catalogue(), "rm2", CONFIG, QOS_MS, MIX, 20000, 0)
    return exp.max_qps("kairos").max_qps


@pytest.fixture(scope="module")
def ray_gateway(ray_cluster):
    cluster, _ = ray_cluster
    cfg = ",".join(f"{t}={k}" for t, k in CONFIG.items())
    s = Server(
        "--backend",
        "ray",
        "--address",
        cluster.address,
        "--model",
        "rm2",
        "--config",
        cfg,
        "--qos-ms",
        str(QOS_MS),
        start_timeout=240.0,
    )
    try:
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.terminate()
            s.proc.wait(60)
        tail = s.logs()[-3000:]
        assert s.stop() in (0, -signal.SIGTERM), tail


def _placement(s: Server, nodes: dict) -> dict[str, list[str]]:
    """node name -> types of the instances whose actor runs there (actors are raylet children)."""
    by_raylet = {_raylet_pid(n): name for name, n in nodes.items() if n is not None}
    out: dict[str, list[str]] = {}
    for w in s.health()["workers"]:
        if w["state"] == "up":
            out.setdefault(by_raylet.get(_ppid(w["pid"]), "?"), []).append(w["type"])
    return out


def test_ray_actors_placed_by_instance_type(ray_cluster, ray_gateway):
    _, nodes = ray_cluster
    h = ray_gateway.health()
    assert h["workers_up"] == 7 and all(w["mode"] == "emulated" for w in h["workers"])
    placed = _placement(ray_gateway, nodes)
    assert sorted(placed.get("g4dn", [])) == ["g4dn.xlarge"] * 2
    r5n = placed.get("r5n-a", []) + placed.get("r5n-b", [])
    assert sorted(r5n) == ["r5n.large"] * 5
    assert "?" not in placed


def test_ray_serves_rm2_at_80pct_of_sim_max_qps(ray_gateway, sim_max_qps):
    qps = 0.8 * sim_max_qps
    res = asyncio.run(run_load(ray_gateway.url, qps, 20.0, MIX, seed=11, drain_timeout_s=60.0))
    assert res.sent >= 0.8 * qps * 20.0
    assert res.lost == 0 and res.errors == 0 and res.completed == res.sent, res.summary()
    assert res.qos_met_fraction >= 0.99, res.summary()
    # both types served, through the one gateway and its policy
    types = {k.split("#")[0] for k in res.served_by}
    assert types == set(CONFIG)


def test_ray_node_removed_under_load_loses_nothing(ray_cluster, ray_gateway, sim_max_qps):
    cluster, nodes = ray_cluster
    s = ray_gateway
    placed = _placement(s, nodes)
    victim = max(("r5n-a", "r5n-b"), key=lambda n: len(placed.get(n, [])))
    survivor = "r5n-b" if victim == "r5n-a" else "r5n-a"
    n_victims = len(placed[victim])
    assert n_victims >= 1
    qps = 0.8 * sim_max_qps
    duration, at = 25.0, 5.0

    async def scenario():
        load = asyncio.ensure_future(run_load(s.url, qps, duration, MIX, seed=12, drain_timeout_s=90.0))
        await asyncio.sleep(at)
        t = time.monotonic()
        await asyncio.to_thread(cluster.remove_node, nodes[victim], False)
        return await load, t

    t0 = time.monotonic()
    res, t_rm = asyncio.run(scenario())
    nodes[victim] = None
    assert res.sent >= 0.8 * qps * duration
    warnings = [e for e in s.events() if e.get("level") in ("warning", "error")]
    assert res.lost == 0 and res.errors == 0 and res.completed == res.sent, (res.error_kinds, warnings)
    # the queries the lost actors held were served again, by other instances
    assert res.records["attempts"].max() >= 2
    assert metric(s.metrics(), "kairos_redispatched_total") >= 1
    # every instance is back: the lost ones restarted on the surviving r5n node
    _wait(lambda: s.health()["workers_up"] == 7, 60, "all 7 instances up again")
    placed = _placement(s, nodes)
    assert sorted(placed.get(survivor, [])) == ["r5n.large"] * 5 and victim not in placed
    restarted = [w for w in s.health()["workers"] if w["restarts"] >= 1]
    lost_events = [(e["instance"], e["reason"]) for e in s.events() if e["event"] == "worker_lost"]
    # every instance of the removed node was restarted (on a busy shared machine a slow
    # worker elsewhere may also be declared hung and restarted: that is allowed, not required)
    assert sum(1 for w in restarted if w["type"] == "r5n.large") >= n_victims, lost_events
    # serving continued: queries sent in the last 5 s of the run met QoS
    send, lat = res.records["send_s"], res.records["latency_ms"]
    late = send > duration - 5.0
    assert late.sum() > 0.5 * qps * 5.0
    assert float(np.mean(lat[late] <= QOS_MS)) >= 0.95, (t_rm - t0, res.summary())


def test_ray_pool_shrinks_without_capacity_and_grows_back(ray_cluster, ray_gateway):
    cluster, nodes = ray_cluster
    s = ray_gateway
    last = next(n for n in ("r5n-a", "r5n-b") if nodes[n] is not None)
    cluster.remove_node(nodes[last], False)
    nodes[last] = None
    # no node has kairos/r5n.large: its instances stay down (pending), the pool shrinks
    _wait(lambda: s.health()["workers_up"] == 2, 60, "the pool to shrink to the 2 g4dn instances")
    time.sleep(2.0)
    h = s.health()
    assert h["status"] == "ok" and h["workers_up"] == 2
    assert {w["type"] for w in h["workers"] if w["state"] == "up"} == {"g4dn.xlarge"}
    # still serving (a light load the two g4dn instances carry), nothing lost
    res = asyncio.run(run_load(s.url, 10.0, 5.0, MIX, seed=13, drain_timeout_s=60.0))
    assert res.lost == 0 and res.errors == 0 and res.completed == res.sent > 0, res.summary()
    assert {k.split("#")[0] for k in res.served_by} == {"g4dn.xlarge"}
    # a node with the resource joins: the pending actors are placed, the pool grows back
    nodes["r5n-c"] = cluster.add_node(**NODE_ARGS, resources={"kairos/r5n.large": 5})
    _wait(lambda: s.health()["workers_up"] == 7, 90, "the r5n instances to come back")
    assert sorted(_placement(s, nodes).get("r5n-c", [])) == ["r5n.large"] * 5
    res = asyncio.run(run_load(s.url, 20.0, 4.0, MIX, seed=14, drain_timeout_s=60.0))
    assert res.lost == 0 and res.errors == 0 and res.completed == res.sent > 0, res.summary()
    assert "r5n.large" in {k.split("#")[0] for k in res.served_by}


def test_ray_gateway_stops_cleanly_without_orphans(ray_gateway):
    s = ray_gateway
    pids = [w["pid"] for w in s.health()["workers"] if w["pid"]]
    assert len(pids) == 7
    s.proc.send_signal(signal.SIGTERM)
    # drained, then exits as terminated by SIGTERM (uvicorn re-raises the signal it caught)
    assert s.proc.wait(60) in (0, -signal.SIGTERM)
    assert "gateway_stopped" in [e["event"] for e in s.events()]  # drained, not killed by Ray's handler
    _wait(lambda: not any(pid_alive(p) for p in pids), 30, "the actors to exit")


def test_ray_backend_without_address_starts_its_own_ray(monkeypatch):
    """`kairos serve --backend ray` with no --address: a one-node Ray offering every type."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
    s = Server(
        "--backend",
        "ray",
        "--model",
        "rm2",
        "--config",
        "g4dn.xlarge=1,r5n.large=2",
        "--qos-ms",
        "350",
        start_timeout=180.0,
    )
    try:
        pids = [w["pid"] for w in s.health()["workers"]]
        assert len(pids) == 3 and all(pids)
        res = asyncio.run(run_load(s.url, 10.0, 3.0, MIX, seed=15, drain_timeout_s=60.0))
        assert res.lost == 0 and res.errors == 0 and res.completed == res.sent > 0, res.summary()
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(60) in (0, -signal.SIGTERM)
        assert "gateway_stopped" in [e["event"] for e in s.events()]
        _wait(lambda: not any(pid_alive(p) for p in pids), 30, "the actors to exit")
    finally:
        s.stop()
