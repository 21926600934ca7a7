#!/usr/bin/env python3
"""Where each type's time goes, by query size: a simulated policy beside the fluid optimum.

    python benchmarks/time_split.py --model dien --rate 680 [--policy kairos] [--edges 0,100,...]

Runs the policy once at ``--rate`` on the paper's pool for ``--model`` and prints, per
range of query sizes, the queries, the misses and each type's ms of instance time per
second in the simulation and in the fluid optimum (:mod:`kairos.sim.time_split`). Default
size edges: every 100, plus the largest size each type of the pool serves within QoS (by
its mean).
"""

from __future__ import annotations

import argparse
import json

from kairos.paper import PAPER_CONFIGS
from kairos.sim.experiment import Experiment
from kairos.sim.time_split import default_edges, time_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        default="dien",
        choices=sorted(PAPER_CONFIGS),
        help="a model of the paper's setting (its pool and QoS)",
    )
    ap.add_argument("--rate", type=float, default=680.0, help="arrival rate, queries/s")
    ap.add_argument("--policy", default="kairos", help="dispatch policy to simulate")
    ap.add_argument(
        "--edges", default=None, help="comma-separated size edges (default: every 100 plus each type's QoS limit)"
    )
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
    print(
        f"{a.model} on {exp.config}, QoS {exp.qos_ms:g} ms, {a.policy} at {a.rate:g} q/s "
        f"({a.rate / out['fluid_bound_qps']:.3f} of the fluid bound {out['fluid_bound_qps']}): "
        f"{out['misses']} misses, QoS met {out['qos_met_fraction']:.4f}; mean utilisation {out['mean_utilisation']}"
    )
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
    print(
        "total | | | "
        + " | ".join(f"{tot[n][0]:.0f} / {tot[n][1]:.0f} (of {out['capacity_ms_per_s'][n]})" for n in names)
    )


if __name__ == "__main__":
    main()
