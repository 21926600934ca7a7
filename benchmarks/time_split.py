#!/usr/bin/env python3
"""Where each type's time goes, by query size: a simulated policy beside the fluid optimum.

    python benchmarks/time_split.py --model dien --rate 680 [--policy kairos] [--edges 0,100,...]

The fluid bound (kairos.plan.fluid) routes each size bucket to the types that serve it
within QoS so that every instance is at most 100% busy; its optimum says which sizes
each type should spend its time on. This runs the policy once at ``--rate`` on the
paper's pool for ``--model`` and prints, per range of query sizes: how many queries,
how many missed QoS, and for each type the milliseconds of instance time per second
spent on those sizes -- in the simulation (actual service times) and in the fluid
optimum scaled to the same rate (mean service times; one optimum where several tie).
Time a policy spends on sizes the optimum gives to another type, or on queries that
miss anyway, is what the bound does not lose. Default size edges: every 100, plus the
largest size each type of the pool serves within QoS (by its mean).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from kairos.paper import PAPER_CONFIGS
from kairos.plan.fluid import config_fluid_bound
from kairos.sim.engine import pool_type_ids
from kairos.sim.experiment import Experiment


def default_edges(exp: Experiment) -> list[int]:
    sizes = exp.profile.batches
    edges = set(range(0, int(sizes[-1]) + 100, 100))
    for name in exp.config:
        ok = sizes[exp.profile.mean_ms[exp.profile.type_index(name)] <= exp.qos_ms]
        if ok.size and ok[-1] < sizes[-1]:
            edges.add(int(ok[-1]))
    return sorted(edges)


def time_split(exp: Experiment, policy: str, rate: float, edges: list[int]) -> dict:
    prof, wl = exp.profile, exp.workload
    res = exp.run(policy, rate)
    sizes = prof.batches[np.asarray(wl.buckets)]
    lat = np.full(res.n, np.inf)
    lat[np.flatnonzero(res.served_by >= 0)] = res.latency_ms
    miss = lat > exp.qos_ms
    inst_type = np.asarray(pool_type_ids(prof, exp.config))
    served_type = np.where(res.served_by >= 0, inst_type[np.maximum(res.served_by, 0)], -1)
    span_s = len(sizes) / rate
    fb = config_fluid_bound(prof, exp.config, exp.probs, exp.qos_ms)
    fluid_ms = fb.routing * prof.mean_ms * (rate / fb.qps)  # [types, buckets] ms of instance time per s
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (sizes > lo) & (sizes <= hi)
        bsel = (prof.batches > lo) & (prof.batches <= hi)
        row = {"sizes": f"{lo + 1}-{hi}", "queries": int(sel.sum()), "misses": int((sel & miss).sum())}
        for name in exp.config:
            t = prof.type_index(name)
            on_t = sel & (served_type == t)
            row[name] = {"sim_ms_per_s": round(float(wl.service_ms[on_t, t].sum()) / span_s, 1),
                         "fluid_ms_per_s": round(float(fluid_ms[t, bsel].sum()), 1)}
        rows.append(row)
    util = {name: round(float(res.utilisation[inst_type == prof.type_index(name)].mean()), 3) for name in exp.config}
    return {"policy": policy, "rate": rate, "fluid_bound_qps": round(fb.qps, 1), "qos_met_fraction": round(res.qos_met_fraction, 5),
            "misses": int(miss.sum()), "mean_utilisation": util, "capacity_ms_per_s": {k: 1000 * v for k, v in exp.config.items()},
            "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="dien", choices=sorted(PAPER_CONFIGS),
                    help="a model of the paper's setting (its pool and QoS)")
    ap.add_argument("--rate", type=float, default=680.0, help="arrival rate, queries/s")
    ap.add_argument("--policy", default="kairos", help="dispatch policy to simulate")
    ap.add_argument("--edges", default=None, help="comma-separated size edges (default: every 100 plus each type's QoS limit)")
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="one JSON object")
    a = ap.parse_args()
    if a.rate <= 0:
        ap.error("--rate must be > 0")
    exp = Experiment.paper(a.model, a.queries, a.seed)
    edges = default_edges(exp) if a.edges is None else sorted({int(x) for x in a.edges.split(",")})
    out = {"model": a.model, "config": exp.config, "qos_ms": exp.qos_ms, **time_split(exp, a.policy, a.rate, edges)}
    if a.json:
        print(json.dumps(out))
        return
    print(f"{a.model} on {exp.config}, QoS {exp.qos_ms:g} ms, {a.policy} at {a.rate:g} q/s "
          f"({a.rate / out['fluid_bound_qps']:.3f} of the fluid bound {out['fluid_bound_qps']}): "
          f"{out['misses']} misses, QoS met {out['qos_met_fraction']:.4f}; mean utilisation {out['mean_utilisation']}")
    names = list(exp.config)
    print("sizes | queries | misses | " + " | ".join(f"{n} sim / fluid ms/s" for n in names))
    tot = {n: [0.0, 0.0] for n in names}
    for r in out["rows"]:
        cells = []
        for n in names:
            s, f = r[n]["sim_ms_per_s"], r[n]["fluid_ms_per_s"]
            tot[n][0] += s
            tot[n][1] += f
            cells.append(f"{s:.0f} / {f:.0f}")
        print(f"{r['sizes']} | {r['queries']} | {r['misses']} | " + " | ".join(cells))
    print("total | | | " + " | ".join(f"{tot[n][0]:.0f} / {tot[n][1]:.0f} (of {out['capacity_ms_per_s'][n]})" for n in names))


if __name__ == "__main__":
    main()
