#!/usr/bin/env python3
"""What queueing a query ahead on a busy instance (`ahead_ms`) gains when each start on an
idle instance costs a gateway round trip (`handoff_ms`), in the simulator.

A live gateway gives an idle instance its query a round trip after the previous one ended:
the result travels back, the dispatcher decides, the query travels out, the worker wakes
up. The simulator models that with ``handoff_ms`` (the instance held, doing nothing, from
the decision to the start). With ``ahead_ms`` the policy queues a query on a busy instance
it expects to finish within that many ms; the gateway sends it at once, so it starts the
moment the instance is free, without the handoff -- at the price of committing early
(the instance may finish later than expected while another frees up). This prints the
simulated max QPS for every (handoff, ahead) pair, and each one's ratio to the policy's
defaults without a handoff (what `kairos simulate --max-qps` predicts).

    python investigations/handoff_ahead.py [--models dien,rm2] [--handoff-ms 0,0.25,0.5] [--ahead-ms 0,0.5,1,2]
                                       [--policies kairos,kairos-online] [--jobs 2] [--json]
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

from kairos.paper import PAPER_QOS_MS
from kairos.sim.experiment import Experiment


def cell(args) -> dict:
    model, policy, handoff, ahead, queries = args
    exp = Experiment.paper(model, queries, 0)
    r = exp.max_qps(policy, {"ahead_ms": ahead} if ahead else None, handoff_ms=handoff)
    return {"model": model, "policy": policy, "handoff_ms": handoff, "ahead_ms": ahead, "max_qps": round(r.max_qps, 2)}


def floats(text: str) -> list[float]:
    out = [float(x) for x in text.split(",")]
    return out if 0.0 in out else [0.0] + out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dien,rm2")
    ap.add_argument("--policies", default="kairos,kairos-online")
    ap.add_argument("--handoff-ms", default="0,0.25,0.5", help="round trip before a start on an idle instance, ms")
    ap.add_argument("--ahead-ms", default="0,0.5,1,2", help="the policy's ahead_ms values to try")
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    models, policies = a.models.split(","), a.policies.split(",")
    handoffs, aheads = floats(a.handoff_ms), floats(a.ahead_ms)
    tasks = [(m, p, h, x, a.queries) for m in models for p in policies for h in handoffs for x in aheads]
    with ProcessPoolExecutor(a.jobs) as ex:
        rows = list(ex.map(cell, tasks))
    by = {(r["model"], r["policy"], r["handoff_ms"], r["ahead_ms"]): r for r in rows}
    for r in rows:
        base = by[r["model"], r["policy"], 0.0, 0.0]["max_qps"]
        r["vs_defaults_no_handoff"] = round(r["max_qps"] / base, 4) if base else None
    if a.json:
        print(json.dumps(rows))
        return
    print(
        f"simulated max QPS ({a.queries} queries, seed 0, deeprecsys mix, the paper's pools); in brackets: "
        "ratio to the policy's defaults with no handoff"
    )
    head = "".join(f"{f'ahead {x:g} ms':>20}" for x in aheads)
    print(f"{'model':6} {'QoS':>4} {'policy':14} {'handoff':>8}{head}")
    for m in models:
        for p in policies:
            for h in handoffs:
                cells = "".join(
                    f"{by[m, p, h, x]['max_qps']:>11.1f} ({by[m, p, h, x]['vs_defaults_no_handoff']:.3f})"
                    for x in aheads
                )
                print(f"{m:6} {PAPER_QOS_MS[m]:>4g} {p:14} {h:>8g}{cells}")


if __name__ == "__main__":
    main()
