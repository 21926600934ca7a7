"""``kairos simulate``: one configuration, one policy; a fixed rate or the max-QPS search."""

from __future__ import annotations

import time

import click
from rich.table import Table

from kairos.cli.common import console, emit_json, err_console, get_catalogue, given_options, json_option, profile_options, resolve_qos, workload_options
from kairos.dispatch.registry import POLICIES, parse_policy_options
from kairos.errors import KairosInputError, require_non_negative, require_positive
from kairos.paper import PAPER_CONFIGS
from kairos.profiles.loader import parse_config
from kairos.sim.experiment import Experiment, report
from kairos.workload.arrivals import load_trace, parse_schedule
from kairos.workload.sizes import parse_size_mix


@click.command()
@profile_options
@click.option("--config", "config_text", default=None,
              help="Pool as TYPE=COUNT,... e.g. g4dn.xlarge=2,r5n.large=9 (default: the paper's pool for the model).")
@click.option("--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the paper's for the model).")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), default=None,
              help="Plan file from `kairos plan --emit` (JSON/YAML): sets --model, --config, --qos-ms and "
                   "--workload (an explicit --qos-ms or --workload overrides the plan's; --model and --config "
                   "conflict with it).")
@click.option("--policy", type=click.Choice(sorted(POLICIES)), default="kairos", show_default=True,
              help="Dispatch policy.")
@click.option("--policy-option", "policy_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the policy's constructor, repeatable, e.g. --policy-option risk_penalty=none "
                   "turns kairos's risky pairs off (docs/dispatch.md lists the options and defaults).")
@click.option("--handoff-ms", type=float, default=0.0, show_default=True,
              help="Time from a dispatch decision to the start of a query on an idle instance, the instance held "
                   "meanwhile: a live gateway's round trip (result back, dispatch, query out, worker wake-up). "
                   "Queries queued on a busy instance (--policy-option ahead_ms=...) start without it. 0: none.")
@click.option("--qps", type=float, default=None, help="Simulate this Poisson arrival rate (queries/s).")
@click.option("--max-qps", "find_max", is_flag=True,
              help="Search the highest rate with >= 99% of queries within QoS (default when --qps is not given).")
@click.option("--window-bound", "want_window", is_flag=True,
              help="Also solve the window bound at the simulated rate (at --max-qps: at the rate found): an LP "
                   "over the same queries, keeping each one's deadline window, that bounds how many of them any "
                   "dispatcher -- even one that knew the future -- finishes within QoS. 10-40 s for 20,000 queries.")
@click.option("--trace", type=click.Path(dir_okay=False), default=None,
              help="Replay arrival timestamps (seconds, one per line; sorted, times relative to the first) "
                   "instead of a Poisson process: one query per timestamp. With --qps or --max-qps the trace's "
                   "times are scaled to that mean rate (its bursts kept).")
@click.option("--schedule", default=None,
              help="Piecewise arrival rate SECONDS:QPS,... (load changes), e.g. 0:60,30:110,60:80; needs --duration.")
@click.option("--ramp", is_flag=True, help="With --schedule: ramp linearly between points instead of steps.")
@click.option("--duration", type=float, default=None, help="Seconds of arrivals for --schedule (required with it).")
@workload_options
@json_option
def simulate(model, profile_path, prices, config_text, qos_ms, plan_path, policy, policy_options, handoff_ms, qps, find_max,
             want_window, trace, schedule, ramp, duration, workload, queries, seed, as_json):
    """Simulate a pool of instances serving a model under a dispatch policy.

    Reports latency percentiles, the QoS-met fraction, per-instance utilisation and the
    configuration's fluid bound (the LP limit no dispatcher can pass).
    """
    t0 = time.perf_counter()
    given = given_options()
    pf = None
    workload_from = None  # the plan file, when --workload is the plan's
    if plan_path is not None:
        for opt in ("config_text", "model"):
            if opt in given:
                flag = "--config" if opt == "config_text" else "--model"
                raise KairosInputError(f"the plan sets {flag}; give either --plan or {flag}, not both")
        from kairos.plan.planfile import load_plan

        pf = load_plan(plan_path)
        model, config_text = pf.model, ",".join(f"{k}={v}" for k, v in pf.config.items())
        if qos_ms is None:
            qos_ms = pf.qos_ms
        if "workload" not in given and pf.meta.get("workload") is not None:
            workload, workload_from = str(pf.meta["workload"]), plan_path
    cat = get_catalogue(profile_path, prices)
    cat.profile(model)  # unknown model: say so first
    qos = resolve_qos(model, qos_ms)
    if config_text is None:
        if model not in PAPER_CONFIGS:
            raise KairosInputError(f"--config is required for model {model!r}")
        config = dict(PAPER_CONFIGS[model])
    else:
        config = parse_config(config_text)
    if qps is not None and find_max:
        raise KairosInputError("give either --qps or --max-qps, not both")
    if qps is not None:
        require_positive("--qps", qps)
    if queries < 1:
        raise KairosInputError(f"--queries must be >= 1, got {queries}")
    require_non_negative("--handoff-ms", handoff_ms)
    if trace is not None and schedule is not None:
        raise KairosInputError("give either --trace or --schedule, not both")
    if schedule is None:
        for opt, flag in (("duration", "--duration"), ("ramp", "--ramp")):
            if opt in given:
                raise KairosInputError(f"{flag} applies only with --schedule; drop it or add --schedule")
    if "queries" in given and (trace is not None or schedule is not None):
        raise KairosInputError("--queries: the number of queries comes from the --trace or --schedule; drop --queries")
    trace_ms = load_trace(trace) if trace is not None else None
    sched = parse_schedule(schedule, ramp) if schedule is not None else None
    if sched is not None and (qps is not None or find_max):
        raise KairosInputError("--schedule sets the arrival rates itself; drop --qps/--max-qps")
    mix = _size_mix(workload, workload_from)
    exp = Experiment.build(cat, model, config, qos, mix, queries, seed, trace_ms, sched, duration)
    opts = parse_policy_options(policy, policy_options)
    bound = exp.fluid_bound()
    searching = sched is None and qps is None and (trace_ms is None or find_max)
    if searching:
        _check_servable(exp)
    search = None
    if not searching and qps is None:  # a schedule, or a trace at its own times
        res = exp.run(policy, None, opts, handoff_ms)
        params = opts
    elif qps is not None:
        res = exp.run(policy, qps, opts, handoff_ms)
        params = opts
    else:
        search = exp.max_qps(policy, opts, handoff_ms)
        res, params = search.result, {**opts, **search.params}
    out = report(exp, policy, res, bound, cat.prices, time.perf_counter() - t0, search, params)
    if sched is not None:  # what set the arrival rates ("qps" is null)
        out["schedule"], out["duration_s"], out["ramp"] = schedule, duration, ramp
    elif trace is not None:
        out["trace"] = str(trace)
    if want_window:
        rate = qps if qps is not None else (search.max_qps if search is not None else None)
        out["window_bound_within_qos"] = out["window_bound_misses"] = None  # no rate passed: nothing to bound
        if rate is None or rate > 0:
            with err_console.status("solving the window bound (an LP over the same queries) ..."):
                within = exp.window_bound(rate)
            out["window_bound_within_qos"] = round(within, 1)
            out["window_bound_misses"] = round(exp.workload.n - within, 1)
        out["elapsed_s"] = round(time.perf_counter() - t0, 3)
    if handoff_ms:
        out["handoff_ms"] = handoff_ms
    if pf is not None and "cost_per_hour" in out and isinstance(pf.meta.get("cost_per_hour"), (int, float)) \
            and abs(pf.meta["cost_per_hour"] - out["cost_per_hour"]) > 1e-3:
        err_console.print(f"note: the plan's cost was ${pf.meta['cost_per_hour']:g}/h; with these prices it is "
                          f"${out['cost_per_hour']:g}/h (pass the --prices the plan was made with)", highlight=False)
    if as_json:
        emit_json(out)
        return
    _print_table(out)


def _size_mix(workload: str, plan_path):
    """--workload, or the workload of the plan file ``plan_path`` (named as such in an error)."""
    try:
        return parse_size_mix(workload)
    except KairosInputError as exc:
        if plan_path is None:
            raise
        raise KairosInputError(f"{plan_path}: plan workload: {exc}") from None


def _check_servable(exp) -> None:
    """A max-QPS search needs 99% of the queries servable within QoS by some type of the pool."""
    from kairos.plan.fluid import servable_fraction
    from kairos.sim.search import QOS_TARGET_FRACTION

    types = [exp.profile.type_index(t) for t, k in exp.config.items() if k > 0]
    cover = servable_fraction(exp.profile.mean_ms[types], exp.probs, exp.qos_ms)
    if cover < QOS_TARGET_FRACTION - 1e-6:
        raise KairosInputError(
            f"--qos-ms {exp.qos_ms:g}: no instance type of this configuration serves 99% of the {exp.mix.name} "
            f"queries within it (at most {100 * cover:.1f}% can meet it); raise --qos-ms or add faster types")


def _print_table(out: dict) -> None:
    t = Table(title=f"kairos simulate: {out['model']} on {', '.join(f'{k}={v}' for k, v in out['config'].items())}")
    t.add_column("metric")
    t.add_column("value", justify="right")
    rows = [
        ("policy", out["policy"] + (f" {out['policy_params']}" if out["policy_params"] else "")),
        ("QoS target (p99)", f"{out['qos_ms']:g} ms"),
        ("queries", str(out["queries"])),
    ]
    if out.get("handoff_ms"):
        rows.append(("handoff (idle starts)", f"{out['handoff_ms']:g} ms"))
    if "max_qps" in out:
        rows.append(("max QPS (>=99% within QoS)", f"{out['max_qps']:.1f}" if out["max_qps"] > 0 else
                     f"0: no rate passed (more than 1% missed QoS at each of {out['probes']} rates tried, "
                     f"down to a millionth of the fluid bound)"))
    else:
        rows.append(("arrival rate", "trace/schedule" if out["qps"] is None else f"{out['qps']:g} q/s"))
    rows.append(("fluid bound", f"{out['fluid_bound_qps']:.1f} q/s"))
    if out.get("fraction_of_bound") is not None:
        rows.append(("fraction of bound", f"{out['fraction_of_bound']:.3f}"))
    if out.get("window_bound_within_qos") is not None:
        rows.append(("window bound (any dispatcher)", f"<= {out['window_bound_within_qos']:.1f} within QoS, "
                                                       f">= {out['window_bound_misses']:.1f} misses"))
    elif "window_bound_within_qos" in out:
        rows.append(("window bound (any dispatcher)", "not solved: no rate passed"))
    if "cost_per_hour" in out:
        rows.append(("cost", f"${out['cost_per_hour']:.3f}/h"))
    for k in ("p50_ms", "p99_ms", "p999_ms", "mean_wait_ms"):
        if out.get(k) is not None:
            rows.append((k.replace("_ms", " (ms)"), f"{out[k]:.2f}"))
    if out.get("qos_met_fraction") is not None:
        rows.append(("QoS met", f"{100 * out['qos_met_fraction']:.2f}%"))
        rows.append(("queue mean / max", f"{out['mean_queue']:.2f} / {out['max_queue']}"))
    if out.get("drain_ms") is not None:
        rows.append(("after the last arrival", f"{out['unfinished_at_last_arrival']} unfinished, "
                                                 f"drained in {out['drain_ms']:.1f} ms"))
    rows.append(("elapsed", f"{out['elapsed_s']:.2f} s"))
    for r in rows:
        t.add_row(*r)
    console.print(t)
    if out.get("instances"):
        u = Table(title="instances")
        u.add_column("instance")
        u.add_column("utilisation", justify="right")
        u.add_column("served", justify="right")
        u.add_column("max held", justify="right")
        for row in out["instances"]:
            u.add_row(row["instance"], f"{100 * row['utilisation']:.1f}%", str(row["served"]), str(row["max_held"]))
        console.print(u)
