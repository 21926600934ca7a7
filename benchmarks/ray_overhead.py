"""Per-query overhead of the Ray backend vs the local backend, and Ray Serve's default router.

Same workload for all three: rm2, pool 2 g4dn.xlarge + 5 r5n.large (emulated: each
instance sleeps a service time drawn from its type's profile), open-loop Poisson at
each of ``--loads`` x the simulator's max QPS for that pool (kairos policy, p99 QoS 350 ms,
deeprecsys sizes), ``--duration`` seconds, the same seeded schedule.

1. local: ``kairos serve`` with one worker process per instance (this machine).
2. ray: ``kairos serve --backend ray --address ...`` on a 3-node local Ray cluster
   (``ray.cluster_utils.Cluster``: the head offers kairos/g4dn.xlarge: 2, two nodes
   kairos/r5n.large: 5), one actor per instance: same gateway and policy, the workers
   are Ray actors.
3. ray-serve: the same emulated instances as one Ray Serve deployment of 7 replicas
   (2 on the g4dn node, 5 on an r5n node, ``max_ongoing_requests=1``: one query at a
   time, like an instance) behind Ray Serve's HTTP proxy and its default request
   router (power of two choices; it does not know the instance types).

Per completed query, from the load generator (client view):

- added = latency - send lag - gateway queueing wait - service time: what the serving
  path adds (HTTP, dispatch, transport, worker wake-up). Kairos backends only: Ray
  Serve does not report the time a request waited for a replica.
- non-service = latency - send lag - service time: everything but the service time,
  queueing included (so it also reflects the dispatch policy). All three.

    python benchmarks/ray_overhead.py [--duration 20] [--loads 0.8,0.2] [--out benchmarks/results/ray_overhead.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _serve_common import ServeProcess, loadavg  # noqa: E402

from kairos.serve.loadgen import run_load, use_uvloop  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402

MODEL, QOS_MS = "rm2", 350.0
CONFIG = {"g4dn.xlarge": 2, "r5n.large": 5}
MIX = parse_size_mix("deeprecsys")
NODE_ARGS = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * 2**20)


def pct(x, p):
    return round(float(np.percentile(x, p)), 3) if len(x) else None


def summarize(name: str, r, wait_known: bool, load: float) -> dict:
    R = r.records
    ok = R["status"] == 200
    nonsvc = (R["client_overhead_ms"] + R["wait_ms"])[ok]  # everything but service
    row = {
        "backend": name,
        "load": load,
        "qps": round(r.offered_qps, 2),
        "sent": r.sent,
        "completed": r.completed,
        "errors": r.errors,
        "lost": r.lost,
        "achieved_qps": r.achieved_qps,
        "qos_met": r.qos_met_fraction,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "nonservice_p50_ms": pct(nonsvc, 50),
        "nonservice_p99_ms": pct(nonsvc, 99),
        "added_p50_ms": None,
        "added_p99_ms": None,
        "loadavg": loadavg(),
    }
    if wait_known:
        added = R["client_overhead_ms"][ok]
        row["added_p50_ms"], row["added_p99_ms"] = pct(added, 50), pct(added, 99)
    return row


def start_cluster():
    from ray.cluster_utils import Cluster

    slots = {"g4dn.xlarge": 2, "r5n.large": 5}
    head = dict(
        NODE_ARGS,
        include_dashboard=False,
        resources={"kairos/g4dn.xlarge": slots["g4dn.xlarge"], "serve-slot": slots["g4dn.xlarge"]},
        _system_config={"task_events_max_num_task_in_gcs": 10_000, "enable_metrics_collection": False},
    )
    c = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        c.add_node(**NODE_ARGS, resources={"kairos/r5n.large": slots["r5n.large"], "serve-slot": slots["r5n.large"]})
    return c


def serve_app(n_replicas: int):
    """A Ray Serve deployment whose replicas emulate instances of their node's type."""
    from ray import serve

    @serve.deployment(
        num_replicas=n_replicas,
        max_ongoing_requests=1,
        ray_actor_options={"num_cpus": 0.01, "resources": {"serve-slot": 1}},
    )
    class EmulatedInstance:
        def __init__(self):
            import ray

            from kairos.profiles import builtin_catalogue
            from kairos.serve.worker import EmulatedBackend

            node = ray.get_runtime_context().get_node_id()
            res = next(n["Resources"] for n in ray.nodes() if n["NodeID"] == node)
            self.type = next(k.split("/", 1)[1] for k in res if k.startswith("kairos/"))
            self.tag = f"{self.type}#{os.getpid()}"
            self.backend = EmulatedBackend(MODEL, self.type, os.getpid())
            self.max_size = int(builtin_catalogue().profile(MODEL).max_batch)

        async def __call__(self, request):
            from starlette.responses import Response

            if request.url.path.endswith("/v1/info"):
                return Response(
                    json.dumps({"qos_ms": QOS_MS, "max_size": self.max_size, "model": MODEL}),
                    media_type="application/json",
                )  # (Content-Length: what the load generator reads)
            body = await request.json()
            size = int(body["size"])
            t0 = time.perf_counter()
            ms = self.backend.draw_ms(self.backend.profile.bucket_of(np.asarray([size]))[0])
            await asyncio.sleep(ms / 1000.0)
            svc = (time.perf_counter() - t0) * 1000.0
            return Response(
                json.dumps(
                    {
                        "id": 0,
                        "result": None,
                        "instance": self.tag,
                        "instance_index": os.getpid() % 100_000,
                        "instance_type": self.type,
                        "size": size,
                        "wait_ms": 0.0,
                        "service_ms": svc,
                        "gateway_latency_ms": svc,
                        "qos_ms": QOS_MS,
                        "qos_met": True,
                        "attempts": 1,
                    }
                ),
                media_type="application/json",
            )

    return EmulatedInstance.bind()


def run_rate(url: str, qps: float, duration: float, seed: int, warmup_s: float):
    """A warm-up run (discarded: first connections, first draws, lazy imports), a pause, the measured run."""
    if warmup_s > 0:
        asyncio.run(run_load(url, qps, warmup_s, MIX, seed=seed + 1000, drain_timeout_s=120.0))
        time.sleep(2.0)
    return asyncio.run(run_load(url, qps, duration, MIX, seed=seed, drain_timeout_s=120.0))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument(
        "--loads",
        default="0.8,0.2",
        help="fractions of the simulator's max QPS (the light one isolates overhead from queueing)",
    )
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of discarded load before each measured run")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    ap.add_argument("--skip-serve", action="store_true", help="no Ray Serve comparison")
    a = ap.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only
    use_uvloop()
    from kairos.profiles import builtin_catalogue
    from kairos.sim.experiment import Experiment

    exp = Experiment.build(builtin_catalogue(), MODEL, CONFIG, QOS_MS, MIX, 20000, 0)
    max_qps = exp.max_qps("kairos").max_qps
    p2c_max_qps = exp.max_qps("p2c").max_qps  # Ray Serve's default routing rule, in the simulator
    loads = [float(x) for x in a.loads.split(",")]
    cfg = ",".join(f"{t}={k}" for t, k in CONFIG.items())
    common = ("--model", MODEL, "--config", cfg, "--qos-ms", str(QOS_MS))
    rows = []
    cluster = start_cluster()
    try:
        srv = ServeProcess(*common, quiet=True, start_timeout=60.0)
        try:
            for f in loads:
                rows.append(summarize("local", run_rate(srv.url, f * max_qps, a.duration, a.seed, a.warmup), True, f))
        finally:
            srv.stop()
        srv = ServeProcess("--backend", "ray", "--address", cluster.address, *common, quiet=True, start_timeout=240.0)
        try:
            for f in loads:
                rows.append(summarize("ray", run_rate(srv.url, f * max_qps, a.duration, a.seed, a.warmup), True, f))
        finally:
            srv.stop()
        if not a.skip_serve:
            import ray
            from _serve_common import free_port
            from ray import serve

            port = free_port()
            ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
            try:
                serve.start(http_options={"host": "127.0.0.1", "port": port})
                serve.run(serve_app(sum(CONFIG.values())), route_prefix="/")
                url = f"http://127.0.0.1:{port}"
                for f in loads:
                    r = run_rate(url, f * max_qps, a.duration, a.seed, a.warmup)
                    rows.append(summarize("ray-serve", r, False, f))
            finally:
                serve.shutdown()
                ray.shutdown()
    finally:
        cluster.shutdown()
    base = {r["load"]: r for r in rows if r["backend"] == "local"}

    def ratio(row, key):
        b = base[row["load"]]
        return f"{row[key] / b[key]:.2f}x" if row.get(key) is not None and b.get(key) else "n/a"

    lines = [
        "# Ray backend overhead (benchmarks/ray_overhead.py)",
        "",
        "Command: `python benchmarks/ray_overhead.py " + " ".join(sys.argv[1:]) + "`",
        "",
        f"rm2, {cfg} (emulated), p99 QoS {QOS_MS:g} ms, open-loop Poisson at {a.loads} x the simulated max QPS "
        f"of the kairos policy ({max_qps:.1f} q/s) for {a.duration:g} s each after a {a.warmup:g} s warm-up, "
        f"deeprecsys sizes, seed {a.seed}; "
        f"{os.cpu_count()} CPUs shared with other work (load average in the last column).",
        "",
        "| backend | load | q/s | sent | lost | errors | QoS met | p50 / p99 ms | added p50 / p99 ms | "
        "ratio vs local | non-service p50 / p99 ms | ratio vs local | loadavg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        added = "n/a" if r["added_p50_ms"] is None else f"{r['added_p50_ms']} / {r['added_p99_ms']}"
        lines.append(
            f"| {r['backend']} | {r['load']:g} | {r['qps']:g} | {r['sent']} | {r['lost']} | {r['errors']} | "
            f"{r['qos_met']:.4f} | "
            f"{r['p50_ms']} / {r['p99_ms']} | {added} | {ratio(r, 'added_p50_ms')} / {ratio(r, 'added_p99_ms')} | "
            f"{r['nonservice_p50_ms']} / {r['nonservice_p99_ms']} | "
            f"{ratio(r, 'nonservice_p50_ms')} / {ratio(r, 'nonservice_p99_ms')} | {r['loadavg']} |"
        )
    lines += [
        "",
        "added = latency - send lag - queueing wait - service time (HTTP, dispatch, transport, worker wake-up); "
        "Ray Serve does not report the wait, so only non-service (= latency - send lag - service, queueing "
        "included) compares all three. ray-serve routes with Ray Serve's default power-of-two-choices router "
        "over 7 identical-looking replicas (2 emulate g4dn.xlarge, 5 r5n.large). Ratios are against the local "
        "backend at the same load. In the simulator, on this pool, that rule (p2c) "
        + (f"meets QoS up to {p2c_max_qps:.1f} q/s" if p2c_max_qps > 0 else "meets QoS at no rate")
        + f" and the kairos policy up to {max_qps:.1f} q/s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps({"benchmark": "ray_overhead", "max_qps": max_qps, "p2c_max_qps": p2c_max_qps, "rows": rows}))
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
