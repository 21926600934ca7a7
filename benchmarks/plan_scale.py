"""Planning at scale: time of the default planner (milp) on 4, 8 (RIBBON's real measurements)
and 50 (synthetic) instance types, and how the paper's enumeration (`kairos`) grows with the
number of types. Writes benchmarks/results/plan_scale.md and .json.

    python benchmarks/plan_scale.py [--data ../shared/data]

Times are CPU-time medians of --repeat runs in this process (wall-clock in the .json) (no simulation: the
one-shot MILP, and the MILP plus its tie-break candidates, which is the part of the default
method that runs before its at most 4 simulations).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from kairos.paper import PAPER_QOS_MS
from kairos.plan.bounds import paper_bound
from kairos.plan.methods import run_method
from kairos.plan.space import PlanProblem, count_configurations, enumerate_configurations
from kairos.plan.synthetic import synthetic_catalogue
from kairos.profiles import builtin_catalogue
from kairos.profiles.catalogue import Catalogue
from kairos.profiles.loader import load_prices, load_profiles
from kairos.workload.sizes import parse_size_mix

HERE = Path(__file__).resolve().parent
RIBBON_QOS_MS = {"dien": 30.0, "mtwnd": 21.0, "candle": 40.0, "resnet": 400.0, "vgg": 800.0}
BUDGETS = (1.5, 2.5, 5.0, 10.0)


def timed_plan(prob: PlanProblem, evals: int, repeat: int):
    """Median CPU seconds of this process (the machine is shared: wall time is noted apart)."""
    times, walls, res = [], [], None
    for _ in range(repeat):
        t0, w0 = time.process_time(), time.perf_counter()
        res = run_method("milp", prob, None, evals=evals)
        times.append(time.process_time() - t0)
        walls.append(time.perf_counter() - w0)
    return statistics.median(times), statistics.median(walls), res


def catalogue_rows(name: str, cat: Catalogue, qos: dict, mix_name: str, repeat: int, budgets=BUDGETS) -> list[dict]:
    mix = parse_size_mix(mix_name)
    rows = []
    for model, q in qos.items():
        for b in budgets:
            try:
                prob = PlanProblem.build(cat, model, b, q, mix)
            except Exception as exc:  # e.g. budget below the cheapest type
                rows.append({"catalogue": name, "model": model, "budget": b, "error": str(exc)})
                continue
            t1, w1, r1 = timed_plan(prob, 0, repeat)
            t2, w2, r2 = timed_plan(prob, 4, repeat)
            rows.append(
                {
                    "catalogue": name,
                    "types": prob.T,
                    "model": model,
                    "budget": b,
                    "qos_ms": q,
                    "configurations": float(count_configurations(prob.prices, b)),
                    "one_shot_s": round(t1, 4),
                    "with_candidates_s": round(t2, 4),
                    "one_shot_wall_s": round(w1, 4),
                    "with_candidates_wall_s": round(w2, 4),
                    "config": r1.config,
                    "candidates": len(r2.candidates),
                }
            )
            print(
                f"  {name:10s} {model:6s} ${b:<4g} T={prob.T:2d} one-shot {t1:.3f} s, +candidates {t2:.3f} s "
                f"{r1.config}",
                flush=True,
            )
    return rows


def enumeration_growth(max_types: int, budget: float, limit_s: float) -> list[dict]:
    """`kairos` (enumerate + paper bound) time versus the number of types (rm2, synthetic)."""
    mix = parse_size_mix("deeprecsys")
    rows, rate = [], None
    for n in range(2, max_types + 1):
        cat = synthetic_catalogue(n, seed=11)
        try:
            prob = PlanProblem.build(cat, "rm2", budget, 350.0, mix)
        except Exception:
            continue
        count = count_configurations(prob.prices, budget)
        row = {"types": n, "budget": budget, "configurations": float(count)}
        if count <= 5_000_000:
            t0 = time.process_time()
            X = enumerate_configurations(prob.prices, budget)
            ub = paper_bound(prob, X)
            np.argsort(-ub)[:10]
            row["kairos_s"] = round(time.process_time() - t0, 4)
            rate = row["kairos_s"] / max(count, 1)
            row["measured"] = True
        else:
            row["kairos_s"] = round(rate * count, 1) if rate else None
            row["measured"] = False
        rows.append(row)
        print(
            f"  kairos enumeration: {n:2d} types, {count:.3g} configurations, "
            f"{'' if row['measured'] else '~'}{row['kairos_s']} s",
            flush=True,
        )
        if not row["measured"] and row["kairos_s"] and row["kairos_s"] > limit_s * 1000:
            break
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic-types", type=int, default=50)
    ap.add_argument("--out", default=str(HERE / "results" / "plan_scale.md"))
    args = ap.parse_args(argv)
    data = Path(args.data)
    rows = catalogue_rows("aws-4", builtin_catalogue(), PAPER_QOS_MS, "deeprecsys", args.repeat)
    rib = data / "aws-ribbon-sc21.csv.gz"
    if rib.exists():
        cat = Catalogue("aws-ribbon-8", load_profiles(rib), load_prices(data / "aws-prices.csv"))
        rows += catalogue_rows("ribbon-8", cat, RIBBON_QOS_MS, "ribbon", args.repeat)
    else:
        print(f"  {rib} not found: skipping the 8-type RIBBON catalogue", flush=True)
    syn = synthetic_catalogue(args.synthetic_types, seed=0)
    rows += catalogue_rows(f"synthetic-{args.synthetic_types}", syn, PAPER_QOS_MS, "deeprecsys", args.repeat)
    growth = enumeration_growth(args.synthetic_types, 2.5, 60.0)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"planning": rows, "kairos_enumeration": growth}, indent=1))
    lines = [
        "# Planning time at scale",
        "",
        "Default method (`milp`): median CPU seconds (process time; the 2-core machine was shared, so "
        "wall-clock is in the .json) of the one-shot MILP (`--evals 0`) and of the MILP "
        "plus its tie-break candidates (the planning before its <= 4 simulations); no simulation. "
        "Generated by `benchmarks/plan_scale.py`.",
        "",
    ]
    for cat in dict.fromkeys(r["catalogue"] for r in rows):
        ok = [r for r in rows if r["catalogue"] == cat and "error" not in r]
        if not ok:
            continue
        one = [r["one_shot_s"] for r in ok]
        two = [r["with_candidates_s"] for r in ok]
        lines += [
            f"## {cat} ({ok[0]['types']} types, {len(ok)} model x budget cells)",
            "",
            f"one-shot: median {statistics.median(one):.3f} s, max {max(one):.3f} s; with candidates: "
            f"median {statistics.median(two):.3f} s, max {max(two):.3f} s",
            "",
            "| model | budget | configurations | one-shot s | + candidates s | configuration |",
            "|---|---|---|---|---|---|",
        ]
        for r in ok:
            cfg = " ".join(f"{k}={v}" for k, v in r["config"].items())
            lines.append(
                f"| {r['model']} | {r['budget']:g} | {r['configurations']:.3g} | {r['one_shot_s']:.3f} | "
                f"{r['with_candidates_s']:.3f} | {cfg} |"
            )
        lines.append("")
    lines += [
        "## `kairos` (paper) enumeration versus number of types (rm2, $2.5/h, synthetic types)",
        "",
        "Enumerate every configuration within budget and compute the paper's bound (numpy, vectorised); "
        "'~' = extrapolated from the last measured time per configuration.",
        "",
        "| types | configurations | time s |",
        "|---|---|---|",
    ]
    for g in growth:
        lines.append(f"| {g['types']} | {g['configurations']:.3g} | {'' if g['measured'] else '~'}{g['kairos_s']} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
