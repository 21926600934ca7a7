#!/usr/bin/env python3
"""A sample-path bound with deadlines: how many queries must *any* dispatcher let miss QoS?

    python benchmarks/window_bound.py --model dien --rates 680,720,740 [--queries 20000] [--seed 0]
    python benchmarks/window_bound.py --model dien --search

The window bound (kairos.plan.window) keeps each query's window [arrival, arrival + QoS]:
a time-indexed LP over the very queries the simulator replays (same seed, same arrival
times, each one's actual service time on each type) whose optimum bounds how many of
them any dispatcher -- even one that knew the future and could pre-empt -- finishes
within QoS. A rate at which that leaves more misses than the max-QPS criterion allows is
a rate no dispatcher passes on this sample path.

Printed per rate: the bound on queries within QoS, the misses it forces, and whether
the criterion's miss allowance could still hold; with ``--search``, the highest rate
(to 0.5%) at which it could (kairos.sim.window_search: searched up to the fluid bound,
which is reported where the LP allows the fluid rate) beside the fluid bound and the
`kairos` policy's max_qps from the simulator.
"""

from __future__ import annotations

import argparse
import json

from kairos.paper import PAPER_CONFIGS
from kairos.plan.window import BLOCK_QUERIES, SLOTS_PER_QOS
from kairos.sim.experiment import Experiment
from kairos.sim.window_search import window_max_qps, window_probe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--model",
        default="dien",
        choices=sorted(PAPER_CONFIGS),
        help="a model of the paper's setting (its pool and QoS)",
    )
    ap.add_argument("--rates", default="680", help="comma-separated arrival rates (queries/s)")
    ap.add_argument("--search", action="store_true", help="find the highest rate the bound allows (to 0.5%%)")
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--block-queries",
        type=int,
        default=BLOCK_QUERIES,
        help="about this many queries per LP block (its arrivals' time span at the rate)",
    )
    ap.add_argument("--slots-per-qos", type=int, default=SLOTS_PER_QOS, help="time slots of the LP per QoS window")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    a = ap.parse_args()
    exp = Experiment.paper(a.model, a.queries, a.seed)
    n = exp.workload.n

    def show(p: dict) -> None:
        row = {
            "model": a.model,
            "rate": round(p["rate"], 2),
            "within_qos_bound": round(p["within_qos_bound"], 1),
            "forced_misses": round(p["forced_misses"], 1),
            "could_pass": p["could_pass"],
            "lp_s": round(p["lp_s"], 1),
        }
        print(
            json.dumps(row)
            if a.json
            else f"{a.model} at {p['rate']:8.2f} q/s: at most {p['within_qos_bound']:9.1f} of {n} within QoS -> at least "
            f"{p['forced_misses']:7.1f} misses ({p['forced_misses'] / n:.3%}); 1% allowance "
            f"{'could hold' if p['could_pass'] else 'broken'}  [{row['lp_s']} s]",
            flush=True,
        )

    if not a.search:
        for r in a.rates.split(","):
            show(window_probe(exp, float(r), a.block_queries, a.slots_per_qos))
        return
    found = window_max_qps(exp, a.block_queries, a.slots_per_qos, on_probe=show)
    lo, fluid, capped = found["window_bound_qps"], found["fluid_bound_qps"], found["capped_at_fluid"]
    kairos = exp.max_qps("kairos").max_qps
    out = {
        "model": a.model,
        "seed": a.seed,
        "queries": n,
        "window_bound_qps": round(lo, 1),
        "capped_at_fluid": capped,
        "fluid_bound_qps": round(fluid, 1),
        "kairos_max_qps": round(kairos, 1),
        "kairos_over_window": round(kairos / lo, 4),
        "kairos_over_fluid": round(kairos / fluid, 4),
    }
    print(
        json.dumps(out)
        if a.json
        else f"window bound {lo:.1f} q/s{' (the LP allows the fluid rate: capped there)' if capped else ''} "
        f"(fluid {fluid:.1f}); kairos max_qps {kairos:.1f} = "
        f"{kairos / lo:.3f} of the window bound, {kairos / fluid:.3f} of the fluid bound"
    )


if __name__ == "__main__":
    main()
