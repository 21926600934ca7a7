#!/usr/bin/env python3
"""Dispatch quality: max_qps and max_qps / fluid bound per model and policy on the paper's pools.

    python benchmarks/dispatch_quality.py [--queries 20000] [--jobs 2] [--models ...] [--policies ...] [--exact-service]
    python benchmarks/dispatch_quality.py --policies "kairos,kairos:risk_penalty=0.5" --stem dispatch_quality_risk

Writes benchmarks/results/dispatch_quality.{md,csv}. With ``--exact-service`` every query's
actual service time is its profile mean (the dispatcher's estimates are then exact): what
is left of the gap to the fluid bound comes from queueing (random arrivals and sizes),
not from service-time noise; written to dispatch_quality_exact.{md,csv}. A policy with
options is written NAME:KEY=VALUE;KEY=VALUE; ``--stem`` names the output files. The floor for `kairos` is what the
published dispatcher reaches in an independent re-simulation (kairos.paper.PUBLISHED_DISPATCH_QPS).
"""

from __future__ import annotations

import argparse
import csv
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kairos.dispatch import POLICIES
from kairos.dispatch.registry import parse_policy_options
from kairos.paper import MODELS, PAPER_CONFIGS, PAPER_QOS_MS, PUBLISHED_DISPATCH_QPS
from kairos.sim.experiment import Experiment

OUT = Path(__file__).resolve().parent / "results"
ORDER = ["kairos", "kairos-paper", "clockwork", "deeprecsys", "least-loaded", "p2c", "fcfs"]


def split_policy(spec: str) -> tuple[str, dict]:
    """ "kairos:risk_penalty=0.5" -> ("kairos", {"risk_penalty": 0.5}): a policy with options."""
    name, _, opts = spec.partition(":")
    return name, parse_policy_options(name, [o for o in opts.split(";") if o])


def cell(args):
    model, spec, queries, seed, exact = args
    policy, options = split_policy(spec)
    exp = Experiment.paper(model, queries, seed)
    if exact:
        wl = exp.workload
        wl.service_ms = exp.profile.mean_ms.T[wl.buckets].copy()
    r = exp.max_qps(policy, options or None)
    return {
        "model": model,
        "policy": spec,
        "max_qps": round(r.max_qps, 1),
        "fluid_bound_qps": round(r.fluid_bound_qps, 1),
        "ratio": round(r.max_qps / r.fluid_bound_qps, 3),
        "params": r.params,
        "elapsed_s": round(r.elapsed_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument(
        "--policies",
        default=",".join(p for p in ORDER if p in POLICIES),
        help="comma-separated; a policy with options as NAME:KEY=VALUE;KEY=VALUE, e.g. kairos:risk_penalty=0.5",
    )
    ap.add_argument(
        "--stem", default=None, help="output file name under benchmarks/results/ (default dispatch_quality[_exact])"
    )
    ap.add_argument(
        "--exact-service",
        action="store_true",
        help="every query takes exactly its profile mean (estimates exact): the queueing-only gap",
    )
    args = ap.parse_args()
    models, policies = args.models.split(","), args.policies.split(",")
    tasks = [(m, p, args.queries, args.seed, args.exact_service) for m in models for p in policies]
    with ProcessPoolExecutor(args.jobs) as ex:
        rows = list(ex.map(cell, tasks))
    by = {(r["model"], r["policy"]): r for r in rows}
    OUT.mkdir(exist_ok=True)
    stem = args.stem or ("dispatch_quality_exact" if args.exact_service else "dispatch_quality")
    with open(OUT / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    title = "Dispatch quality on the paper's pools"
    if args.exact_service:
        title += ", every query taking exactly its profile mean (exact estimates)"
    lines = [
        f"# {title} ({args.queries} queries, seed {args.seed})",
        "",
        "max_qps (queries/s with >= 99% within QoS) and, in brackets, max_qps / fluid bound.",
        "",
        "| model | pool | QoS ms | bound | " + " | ".join(policies) + " | published | kairos / fcfs |",
        "|---" * (len(policies) + 6) + "|",
    ]
    for m in models:
        cfg = ", ".join(f"{k}={v}" for k, v in PAPER_CONFIGS[m].items())
        cells = [f"{by[m, p]['max_qps']:.1f} ({by[m, p]['ratio']:.3f})" for p in policies]
        k, f = by.get((m, "kairos")), by.get((m, "fcfs"))
        ratio = f"{k['max_qps'] / f['max_qps']:.1f}x" if k and f and f["max_qps"] > 0 else "-"
        lines.append(
            f"| {m} | {cfg} | {PAPER_QOS_MS[m]:g} | {by[m, policies[0]]['fluid_bound_qps']:.1f} | "
            + " | ".join(cells)
            + f" | {PUBLISHED_DISPATCH_QPS.get(m, '-')} | {ratio} |"
        )
    dr = [r for r in rows if r["policy"] == "deeprecsys"]
    if dr:
        lines += [
            "",
            "DeepRecSys thresholds found by hill-climbing: "
            + ", ".join(f"{r['model']} {r['params'].get('threshold')}" for r in dr),
        ]
    text = "\n".join(lines) + "\n"
    (OUT / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
