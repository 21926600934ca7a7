"""``kairos plan``: choose the configuration to rent under a $/hour budget (flags and printing only)."""

from __future__ import annotations

import time
from dataclasses import replace

import click
from rich.table import Table

from kairos.cli.common import (
    console,
    emit_json,
    get_catalogue,
    given_options,
    json_option,
    profile_options,
    resolve_qos,
    workload_options,
)
from kairos.errors import KairosInputError
from kairos.paper import PAPER_BUDGET
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import DEFAULT_METHOD, METHODS, USES_EVALS, USES_MAX_EVALS, run_method
from kairos.plan.planfile import PlanFile, write_plan
from kairos.plan.space import PlanProblem
from kairos.plan.target import NO_CAP, run_for_rate
from kairos.workload.sizes import parse_size_mix


def _fmt(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def _check_options(ctx: click.Context, method: str) -> None:
    """Refuse an option the chosen method would ignore (one line, exit 2); the counts a method
    can use are checked by the method itself."""
    given = given_options(ctx)
    if "evals" in given and method not in USES_EVALS:
        raise KairosInputError(
            f"--evals applies only to --method {', '.join(USES_EVALS)}; drop it for --method {method}"
        )
    if "max_evals" in given and method not in USES_MAX_EVALS:
        raise KairosInputError(
            f"--max-evals applies only to --method {', '.join(USES_MAX_EVALS)}; drop it for --method {method}"
        )
    if "fmt" in given and "emit_path" not in given:
        raise KairosInputError("--format applies only to the file --emit writes; add --emit FILE or drop --format")


@click.command()
@profile_options
@click.option(
    "--budget",
    type=float,
    default=PAPER_BUDGET,
    show_default=True,
    help="Budget in $/hour (with --target-qps: a cap on the cost, default none).",
)
@click.option(
    "--target-qps",
    type=float,
    default=None,
    help="Plan for a rate instead: the cheapest configuration whose QoS-throughput is at least this "
    "many queries/s (--method milp or exhaustive).",
)
@click.option(
    "--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the paper's for the model)."
)
@click.option(
    "--types",
    "types_text",
    default=None,
    help="Comma-separated instance types allowed (default: every type with a profile and a price).",
)
@click.option(
    "--method",
    type=click.Choice(list(METHODS)),
    default=DEFAULT_METHOD,
    show_default=True,
    help="Planner: " + ", ".join(m.name + (f" ({m.summary})" if m.summary else "") for m in METHODS.values()) + ".",
)
@click.option(
    "--evals",
    type=int,
    default=None,
    help="Simulations allowed: milp tie-breaks (default 4, 0 = one-shot), ribbon, ribbon-kairos, random "
    "(default 15, at least 1). Only for those methods.",
)
@click.option(
    "--max-evals",
    type=int,
    default=None,
    help="Cap on kairos+ evaluations, at least 1 (default: none). Only for kairos+.",
)
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Simulate the chosen configuration and the best homogeneous pool at the same budget.",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON-lines file caching simulated evaluations (resumable).",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Parallel simulation processes.")
@click.option(
    "--emit",
    "emit_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the plan to FILE for `kairos simulate --plan` / `kairos serve --plan`.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True, help="Format of --emit."
)
@click.option(
    "--emit-ray-cluster",
    "ray_cluster_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a Ray cluster YAML renting the chosen configuration (for `ray up`, then "
    "`kairos serve --backend ray --address auto`).",
)
@workload_options
@json_option
@click.pass_context
def plan(
    ctx,
    model,
    profile_path,
    prices,
    budget,
    qos_ms,
    types_text,
    method,
    evals,
    max_evals,
    compare,
    cache_path,
    workers,
    emit_path,
    fmt,
    workload,
    queries,
    seed,
    as_json,
    ray_cluster_path=None,
    target_qps=None,
):
    """Choose how many instances of each type to rent within a $/hour budget.

    Maximises the QoS-throughput (the highest query rate with >= 99% of queries within
    the p99 target) without online exploration. The default method solves the fluid bound
    as a mixed-integer programme with a queueing correction, then breaks near-ties with
    at most a few simulations. With --target-qps R: the cheapest configuration whose
    QoS-throughput is at least R instead (simulated to check).
    """
    t0 = time.perf_counter()
    _check_options(ctx, method)
    cat = get_catalogue(profile_path, prices)
    cat.profile(model)
    qos = resolve_qos(model, qos_ms)
    if queries < 1:
        raise KairosInputError(f"--queries must be >= 1, got {queries}")
    if workers < 1:
        raise KairosInputError(f"--workers must be >= 1, got {workers}")
    types = None if types_text is None else types_text.split(",")
    mix = parse_size_mix(workload)
    capped = target_qps is None or "budget" in given_options(ctx)  # --target-qps: no cap unless --budget
    problem = PlanProblem.build(cat, model, budget if capped else NO_CAP, qos, mix, types)
    evaluator = Evaluator(cat, model, qos, mix, queries, seed, cache_path, workers)
    opts = {"seed": seed, "progress": not as_json}
    if max_evals is not None:
        opts["max_evals"] = max_evals
    if evals is not None:
        opts["evals"] = evals
    if target_qps is not None:
        res = run_for_rate(method, problem, target_qps, evaluator, evals)
    else:
        res = run_method(method, problem, evaluator if METHODS[method].simulates != "never" else None, **opts)
    out = {
        "model": model,
        "method": res.method,
        "budget": budget if capped else None,
        "qos_ms": qos,
        "workload": mix.name,
        "types": list(problem.types),
        **{k: v for k, v in res.to_dict().items() if k != "method"},
    }
    if target_qps is not None:
        out["target_qps"] = target_qps
    if compare:
        chosen = res.measured_qps if res.policy == "kairos" and res.measured_qps is not None else evaluator(res.config)
        # the best single-type pool at the chosen cost (with --target-qps) or at the budget
        same = problem if target_qps is None else replace(problem, budget=res.cost_per_hour)
        homo = run_method("homogeneous", same, evaluator)
        out["simulated_qps"] = round(chosen, 3)
        out["simulated_policy"] = "kairos"  # the comparison always dispatches with kairos
        out["homogeneous"] = {
            "config": homo.config,
            "cost_per_hour": round(homo.cost_per_hour, 4),
            "simulated_qps": round(homo.measured_qps, 3),
            "policy": homo.policy,
        }
        out["vs_homogeneous"] = round(chosen / homo.measured_qps, 3) if homo.measured_qps > 0 else None
        out["queries"] = queries
    out["elapsed_s"] = round(time.perf_counter() - t0, 3)
    out["planning_s"] = round(res.elapsed_s, 4)
    if emit_path:
        meta = {
            k: out[k]
            for k in ("method", "budget", "cost_per_hour", "predicted_qps", "predicted_kind", "evaluations", "workload")
        }
        if target_qps is not None:
            meta["target_qps"] = target_qps
        if out["predicted_kind"] == "measured_qps":
            meta["predicted_policy"] = out["policy"]  # the dispatch policy that measured predicted_qps
        if "simulated_qps" in out:
            meta["simulated_qps"] = out["simulated_qps"]
            meta["simulated_policy"] = out["simulated_policy"]
        write_plan(PlanFile(model, qos, res.config, meta), emit_path, fmt)
        out["emitted"] = str(emit_path)
    if ray_cluster_path:
        from kairos.serve.ray_cluster import write_ray_cluster

        write_ray_cluster(res.config, ray_cluster_path, model)
        out["emitted_ray_cluster"] = str(ray_cluster_path)
    if as_json:
        emit_json(out)
        return
    _print(out)


_KIND_HEADER = {
    "estimate": "queueing corrected estimate (q/s)",
    "paper_bound": "paper bound (q/s)",
    "fluid_bound": "fluid bound (q/s)",
}


def _print(out: dict) -> None:
    """The table: each number in a column that says what it is and which dispatch policy produced it."""
    goal = f"budget ${out['budget']:g}/h" if out["budget"] is not None else ""
    if "target_qps" in out:
        goal = f"target {out['target_qps']:g} q/s" + (f" within {goal}" if goal else "")
    t = Table(title=f"kairos plan: {out['model']}, {goal}, p99 QoS {out['qos_ms']:g} ms ({out['method']})")
    pol, kind = out["policy"], out["predicted_kind"]
    # the method's own figure for its candidates, when it is not a measurement
    est = kind if kind in _KIND_HEADER else next((k for c in out["candidates"] for k in _KIND_HEADER if k in c), None)
    cmp_pol = out.get("simulated_policy")
    meas_cols = [pol] if out["evaluations"] > 0 or kind == "measured_qps" else []  # the method's simulations
    if cmp_pol is not None and cmp_pol not in meas_cols:
        meas_cols.append(cmp_pol)  # the comparison's
    t.add_column("")
    t.add_column("configuration")
    t.add_column("$/hour", justify="right")
    if est:
        t.add_column(_KIND_HEADER[est], justify="right")
    for p in meas_cols:
        t.add_column(f"simulated max QPS, {p} dispatch", justify="right")

    def row(label, config, cost, est_value, measured: dict):
        cells = [label, _fmt(config), "" if cost is None else f"{cost:.3f}"]
        if est:
            cells.append("" if est_value is None else f"{est_value:.1f}")
        cells += ["" if measured.get(p) is None else f"{measured[p]:.1f}" for p in meas_cols]
        t.add_row(*cells)

    key = tuple(sorted(out["config"].items()))
    own: dict = next((c for c in out["candidates"] if tuple(sorted(c["config"].items())) == key), {})
    chosen = {pol: out["predicted_qps"] if kind == "measured_qps" else out.get("measured_qps")}
    if cmp_pol is not None:
        chosen[cmp_pol] = out["simulated_qps"]
    row(
        "[bold]chosen[/bold]",
        out["config"],
        out["cost_per_hour"],
        out["predicted_qps"] if kind == est else own.get(est),
        chosen,
    )
    shown = {key}
    for c in out["candidates"]:
        k = tuple(sorted(c["config"].items()))
        if k in shown:
            continue
        shown.add(k)
        row("candidate", c["config"], c.get("cost_per_hour"), c.get(est), {c.get("policy", pol): c.get("measured_qps")})
    if "homogeneous" in out:
        h = out["homogeneous"]
        row("best homogeneous", h["config"], h["cost_per_hour"], None, {h["policy"]: h["simulated_qps"]})
    console.print(t)
    lines = [
        f"evaluations (simulations the {out['method']} method used): {out['evaluations']}; "
        f"planning {out['planning_s']:.3f} s; total {out['elapsed_s']:.1f} s"
    ]
    if out.get("vs_homogeneous") is not None:
        lines.append(
            f"chosen: {out['simulated_qps']:.1f} q/s vs best homogeneous {out['homogeneous']['simulated_qps']:.1f}"
            f" q/s at the same {'cost' if 'target_qps' in out else 'budget'}: "
            f"[bold]{out['vs_homogeneous']:.2f}x[/bold] "
            f"({out['simulated_policy']} dispatch, {out['queries']} queries)"
        )
    for n in out.get("notes", []):
        lines.append(n)
    if out.get("emitted"):
        lines.append(f"plan written to {out['emitted']}")
    if out.get("emitted_ray_cluster"):
        lines.append(f"Ray cluster YAML written to {out['emitted_ray_cluster']} (ray up it; see docs/ray.md)")
    for line in lines:
        console.print(line)
