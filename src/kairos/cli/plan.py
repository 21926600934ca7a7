"""``kairos plan``: choose the configuration to rent under a $/hour budget (flags and printing only)."""

from __future__ import annotations

import time

import click
from rich.table import Table

from kairos.cli.common import console, emit_json, get_catalogue, json_option, profile_options, resolve_qos, workload_options
from kairos.errors import KairosInputError
from kairos.paper import PAPER_BUDGET
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import DEFAULT_METHOD, METHODS, SIMULATING, run_method
from kairos.plan.planfile import PlanFile, write_plan
from kairos.plan.space import PlanProblem
from kairos.workload.sizes import parse_size_mix


def _fmt(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


@click.command()
@profile_options
@click.option("--budget", type=float, default=PAPER_BUDGET, show_default=True, help="Budget in $/hour.")
@click.option("--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the paper's for the model).")
@click.option("--types", "types_text", default=None,
              help="Comma-separated instance types allowed (default: every type with a profile and a price).")
@click.option("--method", type=click.Choice(list(METHODS)), default=DEFAULT_METHOD, show_default=True,
              help="Planner: milp (queueing-corrected MILP), kairos, kairos+, exhaustive, homogeneous, ribbon, "
                   "ribbon-kairos, random.")
@click.option("--evals", type=int, default=None,
              help="Simulations allowed: milp tie-breaks (default 4, 0 = one-shot), ribbon/random (default 15).")
@click.option("--max-evals", type=int, default=None, help="Cap on kairos+ evaluations (default: none).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Simulate the chosen configuration and the best homogeneous pool at the same budget.")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
              help="JSON-lines file caching simulated evaluations (resumable).")
@click.option("--workers", type=int, default=1, show_default=True, help="Parallel simulation processes.")
@click.option("--emit", "emit_path", type=click.Path(dir_okay=False), default=None,
              help="Write the plan to FILE for `kairos simulate --plan` / `kairos serve --plan`.")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json", show_default=True,
              help="Format of --emit.")
@click.option("--emit-ray-cluster", "ray_cluster_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Ray cluster YAML renting the chosen configuration (for `ray up`, then "
                   "`kairos serve --backend ray --address auto`).")
@workload_options
@json_option
def plan(model, profile_path, prices, budget, qos_ms, types_text, method, evals, max_evals, compare, cache_path,
         workers, emit_path, fmt, workload, queries, seed, as_json, ray_cluster_path=None):
    """Choose how many instances of each type to rent within a $/hour budget.

    Maximises the QoS-throughput (the highest query rate with >= 99% of queries within
    the p99 target) without online exploration. The default method solves the fluid bound
    as a mixed-integer programme with a queueing correction, then breaks near-ties with
    at most a few simulations.
    """
    t0 = time.perf_counter()
    cat = get_catalogue(profile_path, prices)
    cat.profile(model)
    qos = resolve_qos(model, qos_ms)
    if queries < 1:
        raise KairosInputError(f"--queries must be >= 1, got {queries}")
    if evals is not None and evals < 0:
        raise KairosInputError(f"--evals must be >= 0, got {evals}")
    if workers < 1:
        raise KairosInputError(f"--workers must be >= 1, got {workers}")
    types = None if types_text is None else types_text.split(",")
    mix = parse_size_mix(workload)
    problem = PlanProblem.build(cat, model, budget, qos, mix, types)
    evaluator = Evaluator(cat, model, qos, mix, queries, seed, cache_path, workers)
    opts = {"seed": seed, "progress": not as_json, "max_evals": max_evals}
    if evals is not None:
        opts["evals"] = evals
    needs_eval = method in SIMULATING or method in ("milp", "homogeneous")
    res = run_method(method, problem, evaluator if needs_eval else None, **opts)
    out = {"model": model, "method": res.method, "budget": budget, "qos_ms": qos, "workload": mix.name,
           "types": list(problem.types), **{k: v for k, v in res.to_dict().items() if k != "method"}}
    if compare:
        chosen = res.measured_qps if res.policy == "kairos" and res.measured_qps is not None else evaluator(res.config)
        homo = run_method("homogeneous", problem, evaluator)
        out["simulated_qps"] = round(chosen, 3)
        out["homogeneous"] = {"config": homo.config, "cost_per_hour": round(homo.cost_per_hour, 4),
                              "simulated_qps": round(homo.measured_qps, 3)}
        out["vs_homogeneous"] = round(chosen / homo.measured_qps, 3) if homo.measured_qps > 0 else None
        out["queries"] = queries
    out["elapsed_s"] = round(time.perf_counter() - t0, 3)
    out["planning_s"] = round(res.elapsed_s, 4)
    if emit_path:
        meta = {k: out[k] for k in ("method", "budget", "cost_per_hour", "predicted_qps", "evaluations", "workload")}
        if "simulated_qps" in out:
            meta["simulated_qps"] = out["simulated_qps"]
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


def _print(out: dict) -> None:
    t = Table(title=f"kairos plan: {out['model']}, budget ${out['budget']:g}/h, p99 QoS {out['qos_ms']:g} ms "
                    f"({out['method']})")
    t.add_column("")
    t.add_column("configuration")
    t.add_column("$/hour", justify="right")
    t.add_column("estimate (q/s)", justify="right")
    t.add_column("simulated max QPS", justify="right")
    sim = out.get("simulated_qps")
    if sim is None and out.get("policy") == "kairos":
        sim = out.get("measured_qps")
    t.add_row("[bold]chosen[/bold]", _fmt(out["config"]), f"{out['cost_per_hour']:.3f}",
              f"{out['predicted_qps']:.1f}", "" if sim is None else f"{sim:.1f}")
    shown = {tuple(sorted(out["config"].items()))}
    for c in out["candidates"]:
        key = tuple(sorted(c["config"].items()))
        if key in shown:
            continue
        shown.add(key)
        m = c.get("measured_qps")
        t.add_row("candidate", _fmt(c["config"]), f"{c.get('cost_per_hour', 0):.3f}" if "cost_per_hour" in c else "",
                  f"{c['bound']:.1f}" if "bound" in c else "", "" if m is None else f"{m:.1f}")
    if "homogeneous" in out:
        h = out["homogeneous"]
        t.add_row("best homogeneous", _fmt(h["config"]), f"{h['cost_per_hour']:.3f}", "", f"{h['simulated_qps']:.1f}")
    console.print(t)
    lines = [f"evaluations (simulations the {out['method']} method used): {out['evaluations']}; "
             f"planning {out['planning_s']:.3f} s; total {out['elapsed_s']:.1f} s"]
    if out.get("vs_homogeneous") is not None:
        lines.append(f"chosen: {out['simulated_qps']:.1f} q/s vs best homogeneous {out['homogeneous']['simulated_qps']:.1f}"
                     f" q/s at the same budget: [bold]{out['vs_homogeneous']:.2f}x[/bold] "
                     f"(kairos dispatch, {out['queries']} queries)")
    for n in out.get("notes", []):
        lines.append(n)
    if out.get("emitted"):
        lines.append(f"plan written to {out['emitted']}")
    if out.get("emitted_ray_cluster"):
        lines.append(f"Ray cluster YAML written to {out['emitted_ray_cluster']} (ray up it; see docs/ray.md)")
    for line in lines:
        console.print(line)
