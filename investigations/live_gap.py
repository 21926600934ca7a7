#!/usr/bin/env python3
"""Where the live system loses against the simulator: measure the per-query overheads of one
live run, then put them into the simulator and see how much of the gap they explain.

1. Live: ``kairos serve`` (emulated workers; gateway, workers and this load generator
   under SCHED_RR, see investigations/vm/rt.py) on the paper's pool for ``--model``
   and one open-loop run at ``--rate`` for ``--duration`` s. Per answered query:
   - instance overhead = gateway latency - wait - service: the time the gateway holds
     an instance beyond the worker's own service time (dispatch, transport both ways,
     wake-ups);
   - client overhead = client latency - send lag - wait - service: everything the client
     sees beyond wait and service (HTTP both ways included);
   - service excess = worker-reported service - the profile's mean for that type and size.
2. Simulator, same pool and policy, at a grid of rates: the QoS-met fraction as simulated,
   then (a) with every query holding its instance the measured mean instance overhead
   longer, and (b) additionally with each query's latency raised by a client overhead
   drawn from the measured ones (independently of load). The highest grid rate that
   still passes 99% under (b) is what these overheads alone would leave of the
   simulator's max QPS.

    python investigations/live_gap.py [--model dien] [--policy kairos-online] [--rate 450] [--duration 15]
                                      [--keep-cpus-awake]

Needs root or CAP_SYS_NICE (SCHED_RR).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [
    os.path.join(os.path.dirname(_HERE), "benchmarks"),
    os.path.join(_HERE, "vm"),
]  # _serve_common; rt, awake
from _serve_common import ServeProcess, loadavg  # noqa: E402
from awake import CpuSpinners  # noqa: E402
from rt import start_realtime  # noqa: E402

from kairos.paper import PAPER_CONFIGS, PAPER_QOS_MS  # noqa: E402
from kairos.profiles import builtin_catalogue  # noqa: E402
from kairos.serve.loadgen import run_load, schedule, use_uvloop  # noqa: E402
from kairos.sim.engine import pool_type_ids  # noqa: E402
from kairos.sim.experiment import Experiment  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402


def live(model: str, policy: str, rate: float, duration: float, seed: int, awake: bool = False) -> dict:
    prof = builtin_catalogue().profile(model)
    config = PAPER_CONFIGS[model]
    cfg = ",".join(f"{k}={v}" for k, v in config.items())
    mix = parse_size_mix("deeprecsys")
    srv = start_realtime(
        lambda: ServeProcess(
            "--model",
            model,
            "--config",
            cfg,
            "--qos-ms",
            str(PAPER_QOS_MS[model]),
            "--policy",
            policy,
            quiet=True,
            start_timeout=60.0,
        )
    )
    try:
        times, sizes = schedule(rate, duration, mix, seed, int(prof.batches[-1]))
        with CpuSpinners() if awake else contextlib.nullcontext():
            r = asyncio.run(run_load(srv.url, rate, duration, mix, seed, sizes=sizes, times=times))
    finally:
        srv.stop()
    rec = r.records
    svc = rec["service_ms"]
    ok = ~np.isnan(svc)
    type_of = np.asarray(pool_type_ids(prof, config))
    inst = rec["instance"][ok].astype(int)
    mean = prof.mean_ms[type_of[inst], prof.bucket_of(np.asarray(sizes))[ok]]
    return {
        "result": r,
        "instance_ovh": rec["gateway_overhead_ms"][ok],
        "client_ovh": rec["client_overhead_ms"][ok],
        "service_excess": svc[ok] - mean,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dien")
    ap.add_argument("--policy", default="kairos-online")
    ap.add_argument("--rate", type=float, default=450.0, help="live rate, queries/s")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--grid",
        default="0.70,0.75,0.80,0.85,0.90,0.95,1.00",
        help="simulated rates, as fractions of the simulator's max QPS",
    )
    ap.add_argument(
        "--keep-cpus-awake",
        action="store_true",
        help="a SCHED_IDLE spinner per CPU during the run (no halted-CPU wake-ups; investigations/vm/awake.py)",
    )
    a = ap.parse_args()
    use_uvloop()
    la = loadavg()
    m = live(a.model, a.policy, a.rate, a.duration, a.seed, a.keep_cpus_awake)
    r = m["result"]
    io, co, se = m["instance_ovh"], m["client_ovh"], m["service_excess"]

    def stats(x):
        return {
            "mean": round(float(np.mean(x)), 3),
            "p50": round(float(np.percentile(x, 50)), 3),
            "p99": round(float(np.percentile(x, 99)), 3),
        }

    print(
        f"live {a.model} ({a.policy}) at {a.rate:g} q/s for {a.duration:g} s: qos_met={r.qos_met_fraction} "
        f"p99={r.p99_ms} ms sent={r.sent} lost={r.lost} (loadavg {la})"
    )
    print(f"  instance overhead ms {stats(io)}; client overhead ms {stats(co)}; service - profile mean ms {stats(se)}")

    qos = PAPER_QOS_MS[a.model]
    exp = Experiment.build(
        builtin_catalogue(), a.model, PAPER_CONFIGS[a.model], qos, parse_size_mix("deeprecsys"), 20_000, a.seed
    )
    sim_max = exp.max_qps(a.policy).max_qps
    base = exp.workload.service_ms.copy()
    rng = np.random.default_rng(a.seed)
    rows = []
    passing = {"sim": 0.0, "instance": 0.0, "both": 0.0}
    for f in (float(x) for x in a.grid.split(",")):
        rate = f * sim_max
        exp.workload.service_ms = base
        met_sim = exp.run(a.policy, rate).qos_met_fraction
        exp.workload.service_ms = base + float(io.mean())
        lat = exp.run(a.policy, rate).latency_ms
        met_inst = float((lat <= qos).sum()) / exp.workload.n
        extra = np.maximum(rng.choice(co, size=lat.size) - float(io.mean()), 0.0)  # beyond the instance time
        met_both = float((lat + extra <= qos).sum()) / exp.workload.n
        for k, v in (("sim", met_sim), ("instance", met_inst), ("both", met_both)):
            if v >= 0.99:
                passing[k] = max(passing[k], rate)
        rows.append(
            {
                "rate": round(rate, 1),
                "fraction": f,
                "met_sim": round(met_sim, 4),
                "met_instance_ovh": round(met_inst, 4),
                "met_both": round(met_both, 4),
            }
        )
        print(
            f"  sim {rate:7.1f} q/s ({f:.2f} of {sim_max:.1f}): met {met_sim:.4f} | + instance overhead "
            f"{met_inst:.4f} | + client overhead {met_both:.4f}"
        )
    print(
        f"highest passing grid rate: simulated {passing['sim']:.1f}, with the instance overhead "
        f"{passing['instance']:.1f}, with both {passing['both']:.1f} "
        f"({passing['both'] / sim_max:.3f} of the simulator's {sim_max:.1f})"
    )
    print(
        json.dumps(
            {
                "benchmark": "live_gap",
                "model": a.model,
                "policy": a.policy,
                "live_rate": a.rate,
                "live_qos_met": r.qos_met_fraction,
                "instance_overhead_ms": stats(io),
                "client_overhead_ms": stats(co),
                "service_excess_ms": stats(se),
                "sim_max_qps": round(sim_max, 2),
                "grid": rows,
                "highest_passing": passing,
                "loadavg": la,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
