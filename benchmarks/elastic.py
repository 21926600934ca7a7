#!/usr/bin/env python3
"""Elastic operation on a real week of load: Kairos's controller against the autoscaler users run
today (Ray Serve's default replica rule on the best single type) and the static peak pool.

    python benchmarks/elastic.py [--models rm2,wnd,mtwnd,dien,ncf] [--start-minute 5040]
                                 [--hours H | --max-queries 2000000] [--seed 0] [--static]
                                 [--ray-policy p2c] [--ray-target 2] [--json] [--out FILE]

For each model on the built-in catalogue (deeprecsys sizes, the paper's QoS), the Azure week
(``../shared/data/azure-lmm-2024-per-minute.csv``) is scaled so that its busiest minute runs at
the QoS-throughput the default planner predicts at $10/h (``kairos plan --model M --budget 10
--json``: ``predicted_qps``; kept in benchmarks/results/elastic_peaks.json, computed when
missing), and a slice of it from ``--start-minute`` is replayed through the full
discrete-event simulation (:func:`kairos.elastic.simulate.simulate_elastic`, Poisson arrivals
within each minute, the kairos dispatch policy) by:

* ``kairos-120`` / ``kairos-30`` / ``kairos-300``: Kairos's controller (its default settings;
  the planner as ``kairos simulate --autoscale`` builds it: plan_for_rate verified with
  4,000-query simulations), instances starting in 120 / 30 / 300 s;
* ``ray-serve-120``: Ray Serve as users run it: :class:`kairos.elastic.baseline.ReplicaAutoscaler`
  (Ray Serve's default autoscaling settings) on the type whose homogeneous pool serves the
  week's peak at the least cost, queries routed by Ray's default router (power of two choices,
  the ``p2c`` policy; ``--ray-policy kairos`` gives it Kairos's dispatch instead, to compare
  the autoscalers alone); ``max_replicas`` is Ray's 100, or 1.2x the replica count its rule
  settles at for the week's peak where that is more (Ray's guide: about 20% above the peak's
  need);
* with ``--static``, the static pool for the week's peak, simulated too.

The slice: ``--hours`` if given, else the longest stretch (at most a day, at least ten
minutes) whose expected number of queries is at most ``--max-queries``. The full simulation
handles every query (each run prints its wall seconds), and an average day of the week scaled
this way holds about 11 million queries for rm2 but 57 (dien) to 540 million (ncf) for the
faster models, so the default budget replays hours of rm2 and minutes of the others (printed). Every figure is over the slice: ``vs_static``
divides by the pool planned for the slice's busiest minute kept all along (simulate_elastic's
``static_cost_usd``), ``vs_week_static`` by the pool for the week's busiest minute over the same
time (what a pool sized once for the week costs), ``vs_oracle`` by the 10-minute clairvoyant
lower bound. Simulation caches go to benchmarks/results/elastic_cache.jsonl (not in git).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from kairos.dispatch import POLICIES
from kairos.elastic.baseline import RayServeSettings, ReplicaAutoscaler, ServiceTime, StaticAutoscaler, best_single_type
from kairos.elastic.rates import RateTrace, load_rates
from kairos.elastic.simulate import TargetPlanner, pool_cost, simulate_elastic
from kairos.errors import KairosInputError
from kairos.paper import MODELS, PAPER_QOS_MS
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import DEFAULT_METHOD, run_method
from kairos.plan.space import PlanProblem
from kairos.plan.target import NO_CAP
from kairos.profiles import builtin_catalogue
from kairos.workload.sizes import parse_size_mix

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PEAKS = RESULTS / "elastic_peaks.json"
CACHE = RESULTS / "elastic_cache.jsonl"
RATES = "azure-lmm-2024-per-minute.csv"
BUDGET = 10.0  # $/hour: the busiest minute is the default plan's predicted QoS-throughput at this budget
PLAN_QUERIES = 20_000  # the evaluator of `kairos plan` (its --queries default)
CONTROL_QUERIES = 4_000  # the planner's evaluator of `kairos simulate --autoscale` (its --plan-queries default)
MIX = "deeprecsys"
WEEK_MINUTES = 7 * 24 * 60
MIN_MINUTES = 10
SCHEMES = (("kairos", 120.0), ("ray-serve", 120.0), ("kairos", 30.0), ("kairos", 300.0))
RAY_POLICY = "p2c"  # Ray Serve's default router: power of two choices


def peak_qps(model: str, peaks: dict) -> dict:
    """The default plan at $10/h: its predicted QoS-throughput (what `kairos plan --model M --budget 10
    --json` prints as predicted_qps), cached in elastic_peaks.json."""
    if model not in peaks:
        cat, mix, qos = builtin_catalogue(), parse_size_mix(MIX), PAPER_QOS_MS[model]
        t0 = time.perf_counter()
        res = run_method(
            DEFAULT_METHOD,
            PlanProblem.build(cat, model, BUDGET, qos, mix),
            Evaluator(cat, model, qos, mix, PLAN_QUERIES, 0, CACHE),
        )
        peaks[model] = {
            "predicted_qps": round(res.predicted_qps, 3),
            "predicted_kind": res.predicted_kind,
            "config": res.config,
            "cost_per_hour": round(res.cost_per_hour, 4),
            "command": f"kairos plan --model {model} --budget {BUDGET:g} --json",
            "elapsed_s": round(time.perf_counter() - t0, 1),
        }
        PEAKS.write_text(json.dumps(peaks, indent=1, sort_keys=True) + "\n")
    return peaks[model]


def slice_minutes(week: RateTrace, start: int, hours: float | None, max_queries: float) -> int:
    """Minutes to replay from ``start``: ``hours`` if given, else the longest stretch (at most a
    day, at least MIN_MINUTES) whose expected number of queries is at most ``max_queries``."""
    left = len(week.counts) - start
    if hours is not None:
        n = int(round(hours * 60))
        if n < 1 or n > left:
            raise KairosInputError(
                f"--hours {hours:g}: from --start-minute {start} there are {left} minutes; "
                f"give --hours between 1/60 and {left / 60:g}"
            )
        return n
    total = 0.0
    for n in range(min(left, 24 * 60)):
        total += float(week.counts[start + n])
        if total > max_queries and n >= MIN_MINUTES:
            return n
    return min(left, 24 * 60)


def clock(minute: int) -> str:
    """Minute 0 of the trace is Tuesday 12:00 UTC."""
    days = ("Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Mon")
    m = minute + 12 * 60
    return f"{days[(m // 1440) % 7]} {m % 1440 // 60:02d}:{m % 60:02d} UTC"


def run_model(
    model: str,
    data: Path,
    start: int,
    hours: float | None,
    max_queries: float,
    seed: int,
    with_static: bool,
    peaks: dict,
    ray_policy: str = RAY_POLICY,
    ray_target: float | None = None,
) -> dict:
    cat, mix, qos = builtin_catalogue(), parse_size_mix(MIX), PAPER_QOS_MS[model]
    peak = peak_qps(model, peaks)["predicted_qps"]
    week = load_rates(data / RATES).scaled_to_peak(peak)
    minutes = slice_minutes(week, start, hours, max_queries)
    part = week.slice(start, minutes)
    problem = PlanProblem.build(cat, model, NO_CAP, qos, mix)
    evaluator = Evaluator(cat, model, qos, mix, CONTROL_QUERIES, seed, CACHE)
    planner = TargetPlanner(problem, evaluator)
    t0 = time.perf_counter()
    week_static = planner.cheapest_for(peak)
    one_type, homo = best_single_type(problem, peak, evaluator)
    service = ServiceTime.of(problem, one_type)
    target = RayServeSettings().target_ongoing_requests if ray_target is None else ray_target
    need = ReplicaAutoscaler(
        one_type, service, RayServeSettings(target_ongoing_requests=target, max_replicas=100_000)
    ).equilibrium(peak)
    ray = RayServeSettings(
        target_ongoing_requests=target, max_replicas=max(RayServeSettings().max_replicas, math.ceil(1.2 * need))
    )
    setup_s = time.perf_counter() - t0
    out = {
        "model": model,
        "qos_ms": qos,
        "peak_qps": peak,
        "start_minute": start,
        "minutes": minutes,
        "from": clock(start),
        "to": clock(start + minutes),
        "slice_peak_qps": round(float(part.rates.max()), 3),
        "slice_mean_qps": round(float(part.rates.mean()), 3),
        "expected_queries": int(part.counts.sum()),
        "week_static_config": week_static,
        "ray_type": one_type,
        "ray_homogeneous_peak_pool": homo.config,
        "ray_service_mean_ms": round(service.mean_s * 1000, 3),
        "ray_service_scv": round(service.scv, 3),
        "ray_replicas_at_peak": need,
        "ray_max_replicas": ray.max_replicas,
        "ray_policy": ray_policy,
        "ray_target_ongoing_requests": target,
        "setup_s": round(setup_s, 1),
        "runs": {},
    }
    print(
        f"{model}: peak {peak:g} q/s; minutes {start}-{start + minutes} ({clock(start)} to {clock(start + minutes)}), "
        f"mean {out['slice_mean_qps']:g} q/s, ~{out['expected_queries']:,} queries; week static pool {week_static}; "
        f"ray-serve on {one_type} (peak needs {need} replicas, max_replicas {ray.max_replicas}); "
        f"setup {setup_s:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    schemes = list(SCHEMES) + ([("static", 120.0)] if with_static else [])
    for kind, startup in schemes:
        name = f"{kind}-{startup:g}" if kind != "static" else "static"
        auto, policy = None, "kairos"
        if kind == "ray-serve":
            auto, policy = ReplicaAutoscaler(one_type, service, ray), ray_policy
        elif kind == "static":
            auto = StaticAutoscaler(week_static)
        res = simulate_elastic(problem, planner, part, policy, startup_s=startup, seed=seed, autoscaler=auto)
        s = dict(res.summary)
        s["week_static_cost_usd"] = round(pool_cost(week_static, planner.prices(), part.duration_s), 4)
        s["cost_vs_week_static"] = round(s["cost_usd"] / s["week_static_cost_usd"], 4)
        s["simulated_qps_per_wall_s"] = round(s["queries"] / max(s["elapsed_s"], 1e-9))
        out["runs"][name] = s
        print(
            f"  {name:14s} cost ${s['cost_usd']:.2f}  vs static {s['cost_vs_static']:.3f}  vs week static "
            f"{s['cost_vs_week_static']:.3f}  vs oracle {s['cost_vs_oracle']:.3f}  qos met {s['qos_met_fraction']:.4f}  "
            f"hours ok {s['hours_meeting_qos_fraction']:.3f}  worst hour {s['worst_hour_qos_met']:.4f}  "
            f"lost {s['lost']}  events {s['scale_events']}  {s['queries']:,} queries in {s['elapsed_s']:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return out


def table(results: list[dict]) -> str:
    head = (
        "| model | slice | scheme | cost $ | / static | / week static | / oracle | qos_met | hours >= 99% "
        "| worst hour | scale events | lost |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        where = f"{r['start_minute']}-{r['start_minute'] + r['minutes']} ({r['minutes'] / 60:g} h)"
        for name, s in r["runs"].items():
            label = name if not name.startswith("ray-serve") else f"{name} ({r['ray_type']})"
            lines.append(
                f"| {r['model']} | {where} | {label} | {s['cost_usd']:.2f} | {s['cost_vs_static']:.3f} | "
                f"{s['cost_vs_week_static']:.3f} | {s['cost_vs_oracle']:.3f} | {s['qos_met_fraction']:.4f} | "
                f"{s['hours_meeting_qos_fraction']:.3f} | {s['worst_hour_qos_met']:.4f} | "
                f"{s['scale_events']} | {s['lost']} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    ap.add_argument(
        "--start-minute",
        type=int,
        default=5040,
        help="first minute of the week replayed "
        "(minute 0 is Tuesday 12:00 UTC; default 5040: Saturday 00:00 UTC, the load falls by half "
        "from the third hour)",
    )
    ap.add_argument("--hours", type=float, default=None, help="hours replayed (default: by --max-queries)")
    ap.add_argument(
        "--max-queries",
        type=float,
        default=2e6,
        help="without --hours: replay the longest stretch (at most a day) expected to hold at most this many queries",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--static", action="store_true", help="also simulate the static week-peak pool")
    ap.add_argument(
        "--ray-policy",
        default=RAY_POLICY,
        choices=sorted(POLICIES),
        help="dispatch policy of the ray-serve baseline (default p2c: Ray Serve's router)",
    )
    ap.add_argument(
        "--ray-target",
        type=float,
        default=None,
        help="target_ongoing_requests of the ray-serve baseline (default Ray's 2)",
    )
    ap.add_argument(
        "--data",
        default=str(HERE.parent.parent / "shared" / "data"),
        help="folder of the rate file (default ../shared/data beside the checkout)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    ap.add_argument("--out", default=None, help="also write the JSON results to this file")
    args = ap.parse_args(argv)
    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        bad = [m for m in models if m not in MODELS]
        if bad or not models:
            raise KairosInputError(
                f"--models: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(MODELS)}"
            )
        if not 0 <= args.start_minute < WEEK_MINUTES:
            raise KairosInputError(f"--start-minute must be in 0..{WEEK_MINUTES - 1}, got {args.start_minute}")
        if not args.max_queries > 0:
            raise KairosInputError(f"--max-queries must be > 0, got {args.max_queries:g}")
        data = Path(args.data)
        if not (data / RATES).is_file():
            raise KairosInputError(f"--data {data}: no {RATES} there; give the folder of the shared data")
        peaks = json.loads(PEAKS.read_text()) if PEAKS.is_file() else {}
        if args.ray_target is not None and not (math.isfinite(args.ray_target) and args.ray_target > 0):
            raise KairosInputError(f"--ray-target must be a number > 0, got {args.ray_target:g}")
        results = [
            run_model(
                m,
                data,
                args.start_minute,
                args.hours,
                args.max_queries,
                args.seed,
                args.static,
                peaks,
                args.ray_policy,
                args.ray_target,
            )
            for m in models
        ]
    except KairosInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
