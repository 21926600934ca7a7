"""``kairos simulate``: one configuration, one policy; a fixed rate or the max-QPS search;
or, with ``--autoscale``, a rate file replayed on a pool that the elastic controller resizes."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from kairos.cli.common import (
    CONTROLLER_OPTIONS,
    console,
    controller_settings,
    emit_json,
    err_console,
    get_catalogue,
    given_options,
    json_option,
    profile_options,
    resolve_qos,
    workload_options,
)
from kairos.dispatch.registry import POLICIES, parse_policy_options
from kairos.elastic.controller import ControllerSettings
from kairos.elastic.rates import RateTrace, load_rates, replayed_part
from kairos.elastic.simulate import DEFAULT_STARTUP_S, TargetPlanner, simulate_elastic
from kairos.errors import KairosInputError, require_non_negative, require_positive
from kairos.paper import PAPER_CONFIGS
from kairos.profiles.loader import parse_config
from kairos.sim.experiment import Experiment, report
from kairos.workload.arrivals import load_trace, parse_schedule
from kairos.workload.sizes import parse_size_mix

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_STARTUP_S = DEFAULT_STARTUP_S
# options of the fixed pool that --autoscale replaces (by parameter name), and those that only --autoscale uses
_FIXED_POOL_ONLY = (
    "qps",
    "find_max",
    "config_text",
    "plan_path",
    "schedule",
    "trace",
    "ramp",
    "duration",
    "want_window",
    "handoff_ms",
    "queries",
)
_AUTOSCALE_ONLY = (
    "rates_path",
    "peak_qps",
    "start_minute",
    "minutes",
    "startup_s",
    "interval_s",
    "window_s",
    "headroom",
    "scale_down_after_s",
    "down_margin",
    "min_rate_qps",
    "types_text",
    "budget",
    "plan_queries",
    "cache_path",
    "plot_path",
)


def autoscale_options(f):
    """--autoscale and the options of an elastic replay (the controller's defaults from ControllerSettings)."""
    opts = [
        click.option(
            "--autoscale",
            is_flag=True,
            help="Replay the load of a --rates file on a pool that the elastic controller resizes "
            "(docs/elastic.md) instead of simulating a fixed pool.",
        ),
        click.option(
            "--rates",
            "rates_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="With --autoscale: the load, a CSV 'minute,requests' or 'second,requests' (one row per "
            "step, steps 0, 1, 2, ...); arrivals Poisson within each step.",
        ),
        click.option(
            "--peak-qps",
            type=float,
            default=None,
            help="With --autoscale: scale the whole rate file so that its busiest step runs at this many "
            "queries/s (default: the file's own rates).",
        ),
        click.option(
            "--start-minute",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="With --autoscale: replay from this minute of the rate file (after --peak-qps scaling).",
        ),
        click.option(
            "--minutes",
            type=click.IntRange(min=1),
            default=None,
            help="With --autoscale: replay this many minutes (default: to the end of the file).",
        ),
        click.option(
            "--startup-s",
            type=float,
            default=_STARTUP_S,
            show_default=True,
            help="With --autoscale: seconds from launching an instance to its first query (billed "
            "from launch), every type.",
        ),
        *CONTROLLER_OPTIONS,
        click.option(
            "--budget",
            type=float,
            default=None,
            help="With --autoscale: a cap in $/hour on the pool the controller plans (default: none).",
        ),
        click.option(
            "--plan-queries",
            type=click.IntRange(min=0),
            default=4000,
            show_default=True,
            help="With --autoscale: queries per simulation with which the planner checks a pool's "
            "QoS-throughput; 0: the planner's queueing model alone, not simulated (faster, rougher).",
        ),
        click.option(
            "--cache",
            "cache_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="With --autoscale: JSON-lines file caching the planner's simulations (as `kairos plan --cache`).",
        ),
        click.option(
            "--plot",
            "plot_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="With --autoscale: write a PNG of the load and the instances of each type over time "
            "(needs matplotlib: pip install 'kairos-serve[reproduce]').",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command()
@profile_options
@click.option(
    "--config",
    "config_text",
    default=None,
    help="Pool as TYPE=COUNT,... e.g. g4dn.xlarge=2,r5n.large=9 (default: the paper's pool for the model).",
)
@click.option(
    "--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the paper's for the model)."
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Plan file from `kairos plan --emit` (JSON/YAML): sets --model, --config, --qos-ms and "
    "--workload (an explicit --qos-ms or --workload overrides the plan's; --model and --config "
    "conflict with it).",
)
@click.option(
    "--policy", type=click.Choice(sorted(POLICIES)), default="kairos", show_default=True, help="Dispatch policy."
)
@click.option(
    "--policy-option",
    "policy_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the policy's constructor, repeatable, e.g. --policy-option risk_penalty=none "
    "turns kairos's risky pairs off (docs/dispatch.md lists the options and defaults).",
)
@click.option(
    "--handoff-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="Time from a dispatch decision to the start of a query on an idle instance, the instance held "
    "meanwhile: a live gateway's round trip (result back, dispatch, query out, worker wake-up). "
    "Queries queued on a busy instance (--policy-option ahead_ms=...) start without it. 0: none.",
)
@click.option("--qps", type=float, default=None, help="Simulate this Poisson arrival rate (queries/s).")
@click.option(
    "--max-qps",
    "find_max",
    is_flag=True,
    help="Search the highest rate with >= 99% of queries within QoS (default when --qps is not given).",
)
@click.option(
    "--window-bound",
    "want_window",
    is_flag=True,
    help="Also solve the window bound at the simulated rate (at --max-qps: at the rate found): an LP "
    "over the same queries, keeping each one's deadline window, that bounds how many of them any "
    "dispatcher -- even one that knew the future -- finishes within QoS. 10-40 s for 20,000 queries.",
)
@click.option(
    "--trace",
    type=click.Path(dir_okay=False),
    default=None,
    help="Replay arrival timestamps (seconds, one per line; sorted, times relative to the first) "
    "instead of a Poisson process: one query per timestamp. With --qps or --max-qps the trace's "
    "times are scaled to that mean rate (its bursts kept).",
)
@click.option(
    "--schedule",
    default=None,
    help="Piecewise arrival rate SECONDS:QPS,... (load changes), e.g. 0:60,30:110,60:80; needs --duration.",
)
@click.option("--ramp", is_flag=True, help="With --schedule: ramp linearly between points instead of steps.")
@click.option("--duration", type=float, default=None, help="Seconds of arrivals for --schedule (required with it).")
@workload_options
@autoscale_options
@json_option
def simulate(
    model,
    profile_path,
    prices,
    config_text,
    qos_ms,
    plan_path,
    policy,
    policy_options,
    handoff_ms,
    qps,
    find_max,
    want_window,
    trace,
    schedule,
    ramp,
    duration,
    workload,
    queries,
    seed,
    as_json,
    autoscale,
    **elastic,
):
    """Simulate a pool of instances serving a model under a dispatch policy.

    Reports latency percentiles, the QoS-met fraction, per-instance utilisation and the
    configuration's fluid bound (the LP limit no dispatcher can pass).

    With --autoscale --rates FILE: replay a changing load on a pool that the elastic
    controller resizes (plans the cheapest pool for the forecast rate, adds instances,
    drains surplus ones), and report its cost beside the static peak pool's and a
    clairvoyant oracle's, and the QoS met overall and per hour.
    """
    t0 = time.perf_counter()
    given = given_options()
    _check_mode(given, autoscale)
    if autoscale:
        _autoscale(model, profile_path, prices, qos_ms, policy, policy_options, workload, seed, as_json, t0, **elastic)
        return
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
    if (
        pf is not None
        and "cost_per_hour" in out
        and isinstance(pf.meta.get("cost_per_hour"), (int, float))
        and abs(pf.meta["cost_per_hour"] - out["cost_per_hour"]) > 1e-3
    ):
        err_console.print(
            f"note: the plan's cost was ${pf.meta['cost_per_hour']:g}/h; with these prices it is "
            f"${out['cost_per_hour']:g}/h (pass the --prices the plan was made with)",
            highlight=False,
        )
    if as_json:
        emit_json(out)
        return
    _print_table(out)


def _flag(name: str) -> str:
    """The command-line spelling of the simulate command's parameter ``name``."""
    ctx = click.get_current_context()
    return next(p.opts[0] for p in ctx.command.params if p.name == name)


def _check_mode(given: set[str], autoscale: bool) -> None:
    """Options of a fixed pool refused with --autoscale, and --autoscale's refused without it."""
    if autoscale:
        for name in _FIXED_POOL_ONLY:
            if name in given:
                what = (
                    "the queries come from the --rates file"
                    if name == "queries"
                    else "the pool and its load come from the controller and the --rates file"
                )
                raise KairosInputError(f"{_flag(name)} does not apply with --autoscale ({what}); drop {_flag(name)}")
        return
    for name in _AUTOSCALE_ONLY:
        if name in given:
            raise KairosInputError(
                f"{_flag(name)} applies only with --autoscale; add --autoscale or drop {_flag(name)}"
            )


def _check_peak(planner: TargetPlanner, trace: RateTrace, settings: ControllerSettings, budget: float | None) -> None:
    """The busiest step replayed, with headroom, must be plannable (within --budget if one is given)."""
    peak = float(trace.rates.max())
    need = max(peak * (1.0 + settings.headroom), settings.min_rate_qps)
    try:
        planner.cheapest_for(need)
    except KairosInputError:
        if budget is not None:
            raise KairosInputError(
                f"--budget {budget:g}: no pool within ${budget:g}/h serves the busiest step replayed ({peak:g} q/s, "
                f"{need:g} with --headroom {settings.headroom:g}); raise --budget or lower --peak-qps"
            ) from None
        raise KairosInputError(
            f"--peak-qps: the busiest step replayed ({peak:g} q/s, {need:g} with --headroom {settings.headroom:g}) "
            f"is beyond what the planner reaches (`kairos plan --target-qps {need:g}` says why); lower --peak-qps"
        ) from None


class _ReplayProgress:
    """A progress bar on stderr for a replay, shown only on a terminal and only once the run
    has taken ``delay_s``; transient (gone when the run ends)."""

    def __init__(self, total_s: float, enabled: bool, delay_s: float = 2.0, console=None):
        self.total_s = total_s
        self.enabled = enabled
        self.delay_s = delay_s
        self.console = console if console is not None else err_console
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __call__(self, now_s: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.t0 < self.delay_s:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            bar.start()
            self.task = bar.add_task("replaying the rates", total=self.total_s)
        assert self.task is not None
        done = min(now_s, self.total_s)
        what = "replaying the rates" if done < self.total_s else "pricing the static pool and the oracle"
        self.bar.update(self.task, completed=done, description=what)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _autoscale(
    model,
    profile_path,
    prices,
    qos_ms,
    policy,
    policy_options,
    workload,
    seed,
    as_json,
    t0,
    rates_path,
    peak_qps,
    start_minute,
    minutes,
    startup_s,
    interval_s,
    window_s,
    headroom,
    scale_down_after_s,
    down_margin,
    min_rate_qps,
    types_text,
    budget,
    plan_queries,
    cache_path,
    plot_path,
) -> None:
    """``kairos simulate --autoscale``: check the options, replay the rates, print or write the outcome."""

    if rates_path is None:
        raise KairosInputError("--autoscale needs --rates FILE (a CSV 'minute,requests' or 'second,requests')")
    if peak_qps is not None:
        require_positive("--peak-qps", peak_qps)
    startup_s = require_non_negative("--startup-s", startup_s)
    if budget is not None:
        require_positive("--budget", budget)
    settings = controller_settings(
        interval_s=interval_s,
        window_s=window_s,
        headroom=headroom,
        scale_down_after_s=scale_down_after_s,
        down_margin=down_margin,
        min_rate_qps=min_rate_qps,
    )
    if plot_path is not None:
        from kairos.elastic.plot import require_matplotlib

        require_matplotlib()
        folder = Path(plot_path).resolve().parent
        if not folder.is_dir():
            raise KairosInputError(
                f"--plot {plot_path}: the folder {folder} does not exist; create it or give another path"
            )
    cat = get_catalogue(profile_path, prices)
    cat.profile(model)
    qos = resolve_qos(model, qos_ms)
    mix = parse_size_mix(workload)
    opts = parse_policy_options(policy, policy_options)
    trace = replayed_part(load_rates(rates_path), rates_path, peak_qps, start_minute, minutes)
    planner = TargetPlanner.for_model(cat, model, qos, mix, budget, types_text, plan_queries, seed, cache_path)
    problem = planner.problem
    _check_peak(planner, trace, settings, budget)
    progress = _ReplayProgress(trace.duration_s, enabled=not as_json and err_console.is_terminal)
    try:
        res = simulate_elastic(problem, planner, trace, policy, opts, startup_s, settings, seed, progress=progress)
    finally:
        progress.close()
    out = {
        "model": model,
        "qos_ms": qos,
        "workload": mix.name,
        "types": list(problem.types),
        "policy": policy,
        "policy_params": opts,
        "rates": str(rates_path),
        "step_s": trace.step_s,
        "peak_qps": peak_qps,
        "start_minute": start_minute,
        "minutes": trace.duration_s / 60.0,
        "replayed_peak_qps": round(float(trace.rates.max()), 4),
        "budget": budget,
        "plan_queries": plan_queries,
        "controller": asdict(settings),
        **res.summary,
        "events": res.scale_events,
    }
    if plot_path is not None:
        from kairos.elastic.plot import plot_timeline

        title = f"{model}: {Path(rates_path).name}, minutes {start_minute}-{start_minute + out['minutes']:g}"
        out["plot"] = str(plot_timeline(res.timeline, plot_path, title, start_s=start_minute * 60.0))
    out["elapsed_s"] = round(time.perf_counter() - t0, 3)
    if as_json:
        emit_json(out)
        return
    _print_autoscale(out)


def _clock(t_s: float) -> str:
    t = int(round(t_s))
    return f"{t // 3600}:{t % 3600 // 60:02d}:{t % 60:02d}"


def _fmt_config(config: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "none"


def _print_autoscale(out: dict, max_events: int = 30) -> None:
    t = Table(
        title=f"kairos simulate --autoscale: {out['model']}, {Path(out['rates']).name} (minutes {out['start_minute']}-"
        f"{out['start_minute'] + out['minutes']:g})"
    )
    t.add_column("metric")
    t.add_column("value", justify="right")
    c = out["controller"]
    startup = sorted(set(out["startup_s"].values()))
    rows = [
        ("policy", out["policy"] + (f" {out['policy_params']}" if out["policy_params"] else "")),
        ("QoS target (p99)", f"{out['qos_ms']:g} ms"),
        (
            "load",
            f"busiest step {out['replayed_peak_qps']:g} q/s"
            + (f" (file scaled to a peak of {out['peak_qps']:g} q/s)" if out["peak_qps"] is not None else ""),
        ),
        ("queries", str(out["queries"])),
        (
            "controller",
            f"every {c['interval_s']:g} s, window {c['window_s']:g} s, headroom {c['headroom']:g}, "
            f"scale down after {c['scale_down_after_s']:g} s and {100 * c['down_margin']:g}% cheaper",
        ),
        ("start-up delay", ", ".join(f"{s:g} s" for s in startup)),
        ("cost", f"${out['cost_usd']:.4f}"),
        ("static peak pool", f"${out['static_cost_usd']:.4f} ({_fmt_config(out['static_config'])})"),
        ("oracle (10-min windows)", f"${out['oracle_cost_usd']:.4f}"),
        ("cost / static, / oracle", f"{_ratio(out['cost_vs_static'])}, {_ratio(out['cost_vs_oracle'])}"),
        ("QoS met", f"{100 * out['qos_met_fraction']:.2f}%"),
        (
            "hours with >= 99% met",
            f"{100 * out['hours_meeting_qos_fraction']:.1f}% (worst hour {100 * out['worst_hour_qos_met']:.2f}%)",
        ),
        ("lost", str(out["lost"])),
        ("scale events", f"{out['scale_events']} ({out['scale_ups']} up, {out['scale_downs']} down)"),
        ("instances launched", f"{out['instances_launched']} ({out['instance_seconds'] / 3600:.2f} instance-hours)"),
    ]
    if out.get("plot"):
        rows.append(("plot", out["plot"]))
    rows.append(("elapsed", f"{out['elapsed_s']:.2f} s"))
    for r in rows:
        t.add_row(*r)
    console.print(t)
    if out["events"]:
        e = Table(
            title="scale events"
            + (
                f" (the first {max_events} of {len(out['events'])}; --json lists all)"
                if len(out["events"]) > max_events
                else ""
            )
        )
        e.add_column("time (from the slice's start)")
        e.add_column("action")
        e.add_column("type")
        e.add_column("count", justify="right")
        for ev in out["events"][:max_events]:
            e.add_row(_clock(ev["t_s"]), ev["action"], ev["type"], str(ev["count"]))
        console.print(e)


def _ratio(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


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
            f"queries within it (at most {100 * cover:.1f}% can meet it); raise --qos-ms or add faster types"
        )


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
        rows.append(
            (
                "max QPS (>=99% within QoS)",
                f"{out['max_qps']:.1f}"
                if out["max_qps"] > 0
                else f"0: no rate passed (more than 1% missed QoS at each of {out['probes']} rates tried, "
                f"down to a millionth of the fluid bound)",
            )
        )
    else:
        rows.append(("arrival rate", "trace/schedule" if out["qps"] is None else f"{out['qps']:g} q/s"))
    rows.append(("fluid bound", f"{out['fluid_bound_qps']:.1f} q/s"))
    if out.get("fraction_of_bound") is not None:
        rows.append(("fraction of bound", f"{out['fraction_of_bound']:.3f}"))
    if out.get("window_bound_within_qos") is not None:
        rows.append(
            (
                "window bound (any dispatcher)",
                f"<= {out['window_bound_within_qos']:.1f} within QoS, >= {out['window_bound_misses']:.1f} misses",
            )
        )
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
        rows.append(
            (
                "after the last arrival",
                f"{out['unfinished_at_last_arrival']} unfinished, drained in {out['drain_ms']:.1f} ms",
            )
        )
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
