"""``kairos loadgen``: open-loop Poisson load against a running gateway, a max-QPS search, or a
rate file replayed live (time compressed by ``--step-s``)."""

from __future__ import annotations

import asyncio

import click

from kairos.cli.common import console, emit_json, given_options, json_option
from kairos.errors import KairosInputError, require_non_negative, require_positive
from kairos.workload.sizes import parse_size_mix

# options of a constant-rate run, and those of a rate-file replay (by parameter name)
_RATE_ONLY = ("qps", "duration", "find_max", "tolerance", "max_probes")
_RATES_ONLY = ("peak_qps", "step_s", "start_minute", "minutes")
STEP_KEYS = ("steps", "steps_meeting_qos_fraction", "worst_step_qos_met")
KEYS = (
    "offered_qps",
    "sent",
    "completed",
    "errors",
    "lost",
    "achieved_qps",
    "p50_ms",
    "p99_ms",
    "qos_met_fraction",
    "passed",
    "max_send_lag_ms",
    "client_overhead_p50_ms",
    "client_overhead_p99_ms",
    "read_lag_p99_ms",
)


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="The gateway (kairos serve).")
@click.option(
    "--qps", type=float, default=None, help="Poisson arrival rate (queries/s); with --max-qps, the first probe."
)
@click.option(
    "--duration", type=float, default=10.0, show_default=True, help="Seconds of arrivals (per probe with --max-qps)."
)
@click.option(
    "--workload",
    default="deeprecsys",
    show_default=True,
    help="Query-size mix: deeprecsys, ribbon, fixed:N, or a file of sizes.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed of the arrival times and query sizes: same seed, same queries.",
)
@click.option("--qos-ms", type=float, default=None, help="QoS target in ms (default: the gateway's).")
@click.option(
    "--max-qps",
    "find_max",
    is_flag=True,
    help="Search the highest rate at which >= 99% of queries meet QoS with nothing lost.",
)
@click.option(
    "--tolerance",
    default=0.02,
    show_default=True,
    type=float,
    help="--max-qps: relative precision (> 0) at which the search stops.",
)
@click.option("--max-probes", default=10, show_default=True, type=int, help="--max-qps: at most this many runs (>= 1).")
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds to wait for answers after the last send (of each probe with --max-qps); "
    "unanswered queries count as lost.",
)
@click.option(
    "--rates",
    "rates_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Replay a rate file instead of a constant rate: a CSV 'minute,requests' or 'second,requests' "
    "(one row per step), Poisson arrivals within each step (as `kairos simulate --autoscale`).",
)
@click.option(
    "--peak-qps",
    type=float,
    default=None,
    help="With --rates: scale the whole file so that its busiest step runs at this many queries/s "
    "(default: the file's own rates).",
)
@click.option(
    "--step-s",
    type=float,
    default=None,
    help="With --rates: seconds of real time each step of the file lasts, at its (scaled) rate "
    "(default: the file's own step, 60 s for 'minute'); e.g. 5 replays an hour of a per-minute "
    "file in 5 minutes.",
)
@click.option(
    "--start-minute",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --rates: replay from this minute of the file (after --peak-qps scaling).",
)
@click.option(
    "--minutes",
    type=click.IntRange(min=1),
    default=None,
    help="With --rates: replay this many minutes of the file (default: to its end).",
)
@json_option
def loadgen(
    url,
    qps,
    duration,
    workload,
    seed,
    qos_ms,
    find_max,
    tolerance,
    max_probes,
    drain_timeout,
    rates_path,
    peak_qps,
    step_s,
    start_minute,
    minutes,
    as_json,
):
    """Send an open-loop Poisson stream of queries to a gateway and report what came back.

    Reports sent, completed, errors, lost (= sent - completed - errors), achieved QPS,
    latency percentiles (from each query's scheduled send time) and the QoS-met fraction;
    with --rates also, per step of the file, the share of its queries within QoS.
    """
    from kairos.serve.loadgen import max_qps_search, run_load, use_uvloop

    # every value checked before the gateway is contacted
    mix = parse_size_mix(workload)
    if rates_path is not None:
        _rates(url, mix, seed, qos_ms, drain_timeout, rates_path, peak_qps, step_s, start_minute, minutes, as_json)
        return
    for name in _RATES_ONLY:
        if name in given_options():
            flag = _flag(name)
            raise KairosInputError(f"{flag} applies only with --rates; add --rates FILE or drop {flag}")
    require_positive("--duration", duration)
    if qps is not None:
        require_positive("--qps", qps)
    if qps is None and not find_max:
        raise KairosInputError("give --qps RATE, or --max-qps to search the highest passing rate")
    if qos_ms is not None:
        require_positive("--qos-ms", qos_ms)
    require_non_negative("--drain-timeout", drain_timeout)
    if find_max:
        require_positive("--tolerance", tolerance)
        if max_probes < 1:
            raise KairosInputError(f"--max-probes must be >= 1, got {max_probes}")
    else:
        given = given_options()
        for name in ("tolerance", "max_probes"):
            if name in given:
                opt = "--" + name.replace("_", "-")
                raise KairosInputError(f"{opt} only applies with --max-qps; add --max-qps or leave {opt} out")

    use_uvloop()
    try:
        if find_max:

            def show(p):
                if not as_json:
                    console.print(
                        f"probe {p['offered_qps']:.1f} q/s: {'pass' if p['passed'] else 'FAIL'} "
                        f"qos_met={p['qos_met_fraction']:.4f} p99={p['p99_ms']} ms lost={p['lost']} "
                        f"errors={p['errors']}"
                    )

            s = asyncio.run(
                max_qps_search(url, duration, mix, seed, qps, tolerance, max_probes, qos_ms, show, drain_timeout)
            )
            out = {
                "url": url,
                "max_qps": round(s.max_qps, 3),
                "probes": s.probes,
                "at_max": s.best,
                "lost": sum(p["lost"] for p in s.probes),
            }
            if as_json:
                emit_json(out)
            else:
                console.print(
                    f"max QPS (>= 99% within QoS, lost = 0): {s.max_qps:.1f} "
                    f"({len(s.probes)} probes of {duration:g} s; lost over all probes: {out['lost']})"
                )
            return
        r = asyncio.run(run_load(url, qps, duration, mix, seed, qos_ms, drain_timeout))
    except KairosInputError:  # a ValueError, but the user's input, not the connection (e.g. sizes too large)
        raise
    except (OSError, ValueError) as exc:  # refused, reset, bad URL
        raise KairosInputError(f"cannot reach the gateway at {url}: {exc}") from None
    s = r.summary()
    if as_json:
        emit_json(s)
        return
    for k in ("url", "qos_ms", *KEYS, "error_kinds", "served_by"):
        console.print(f"{k:24s} {s[k]}")


def _flag(name: str) -> str:
    """The command-line spelling of the loadgen command's parameter ``name``."""
    ctx = click.get_current_context()
    return next(p.opts[0] for p in ctx.command.params if p.name == name)


def _rates(url, mix, seed, qos_ms, drain_timeout, rates_path, peak_qps, step_s, start_minute, minutes, as_json) -> None:
    """``kairos loadgen --rates FILE``: the (scaled, sliced) file replayed live, each step in --step-s seconds."""
    from kairos.elastic.rates import load_rates, replayed_part
    from kairos.serve.loadgen import run_rates, step_summary, use_uvloop

    given = given_options()
    for name in _RATE_ONLY:
        if name in given:
            flag = _flag(name)
            raise KairosInputError(f"{flag} does not apply with --rates (the rate file sets the load); drop {flag}")
    if peak_qps is not None:
        require_positive("--peak-qps", peak_qps)
    if step_s is not None:
        require_positive("--step-s", step_s)
    if qos_ms is not None:
        require_positive("--qos-ms", qos_ms)
    require_non_negative("--drain-timeout", drain_timeout)
    file_trace = load_rates(rates_path)
    part = replayed_part(file_trace, rates_path, peak_qps, start_minute, minutes)
    live = part.compressed(step_s if step_s is not None else part.step_s)
    use_uvloop()
    try:
        r, steps = asyncio.run(run_rates(url, live, mix, seed, qos_ms, drain_timeout))
    except KairosInputError:
        raise
    except (OSError, ValueError) as exc:  # refused, reset, bad URL
        raise KairosInputError(f"cannot reach the gateway at {url}: {exc}") from None
    for row in steps:  # where each step is in the file
        row["file_s"] = start_minute * 60.0 + row["step"] * part.step_s
    s = {
        **r.summary(),
        "rates": str(rates_path),
        "peak_qps": peak_qps,
        "step_s": live.step_s,
        "file_step_s": part.step_s,
        "start_minute": start_minute,
        "minutes": part.duration_s / 60.0,
        "replayed_peak_qps": round(float(live.rates.max()), 4),
        **step_summary(steps),
        "per_step": steps,
    }
    if as_json:
        emit_json(s)
        return
    for k in ("url", "rates", "step_s", "replayed_peak_qps", "qos_ms", *KEYS, *STEP_KEYS, "error_kinds", "served_by"):
        console.print(f"{k:27s} {s[k]}")
