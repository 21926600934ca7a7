#!/usr/bin/env python3
"""What per-query overhead costs: simulated max QPS when every query holds its instance
for a fixed extra time that the dispatcher's profile does not include.

A live gateway takes an instance when it sends a query and gets it back when the answer
arrives: the transport both ways and the worker's wake-up are instance time the profile
never measured. This runs the simulator with each query's actual service time on every
type raised by ``d`` ms (the estimates stay the profile's), for the `kairos` and
`kairos-online` policies, next to the fluid bound of the raised service times (the
capacity the extra time itself removes) and the same run's d = 0 figure. It explains
how far a live pool on a given machine can get from the simulator's prediction
(benchmarks/serve_vs_sim.py) before any dispatch decision is wrong.

    python investigations/overhead_sensitivity.py [--models dien,rm2] [--added-ms 0,0.25,0.5,1,2] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

from kairos.paper import PAPER_QOS_MS
from kairos.plan.fluid import fluid_bound
from kairos.sim.experiment import Experiment

POLICIES = ("kairos", "kairos-online")


def cell(args) -> dict:
    model, added_ms, policy, queries = args
    exp = Experiment.paper(model, queries, 0)
    exp.workload.service_ms = exp.workload.service_ms + added_ms  # the instance is held this much longer
    counts = [exp.config.get(t, 0) for t in exp.profile.types]
    bound = fluid_bound(exp.profile.mean_ms + added_ms, counts, exp.probs, exp.qos_ms).qps
    r = exp.max_qps(policy)
    return {
        "model": model,
        "added_ms": added_ms,
        "policy": policy,
        "max_qps": round(r.max_qps, 1),
        "fluid_bound_raised_qps": round(bound, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dien,rm2")
    ap.add_argument("--added-ms", default="0,0.25,0.5,1,2", help="extra instance time per query, ms")
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    models = a.models.split(",")
    added = [float(x) for x in a.added_ms.split(",")]
    if 0.0 not in added:
        added = [0.0] + added
    tasks = [(m, d, p, a.queries) for m in models for d in added for p in POLICIES]
    with ProcessPoolExecutor(a.jobs) as ex:
        rows = list(ex.map(cell, tasks))
    by = {(r["model"], r["added_ms"], r["policy"]): r for r in rows}
    for r in rows:
        r["vs_kairos_at_0"] = round(r["max_qps"] / by[r["model"], 0.0, "kairos"]["max_qps"], 3)
    if a.json:
        print(json.dumps(rows))
        return
    print(
        f"simulated max QPS with d ms of extra instance time per query ({a.queries} queries, seed 0); "
        "ratio to kairos at d = 0 in brackets"
    )
    print(f"{'model':6} {'QoS ms':>6} {'d ms':>5} {'bound(d)':>9} {'kairos':>16} {'kairos-online':>16}")
    for m in models:
        for d in added:
            k, o = by[m, d, "kairos"], by[m, d, "kairos-online"]
            print(
                f"{m:6} {PAPER_QOS_MS[m]:>6g} {d:>5g} {k['fluid_bound_raised_qps']:>9} "
                f"{k['max_qps']:>8} ({k['vs_kairos_at_0']:.3f}) {o['max_qps']:>8} ({o['vs_kairos_at_0']:.3f})"
            )


if __name__ == "__main__":
    main()
