"""``kairos serve``: the HTTP inference gateway and one worker per instance of a configuration,
or, with ``--autoscale``, of a pool that the elastic controller resizes (docs/elastic.md)."""

from __future__ import annotations

import click

from kairos.cli.common import (
    CONTROLLER_OPTIONS,
    controller_settings,
    get_catalogue,
    given_options,
    profile_options,
    resolve_qos,
)
from kairos.dispatch.registry import POLICIES, parse_policy_options, policy_option_names
from kairos.elastic.simulate import DEFAULT_STARTUP_S
from kairos.errors import KairosInputError, require_non_negative, require_positive
from kairos.profiles.loader import parse_config
from kairos.serve import KEEP_ALIVE_S

SERVE_EXTRA = "pip install -e '.[serve]'"
# kairos serve's ahead_ms for the policies that have it: a few times one gateway round trip
# (docs/serving.md), so that a worker usually has its next query
# before it finishes, and small against the QoS targets the gateway is meant for
SERVE_AHEAD_MS = 1.0
# the planner's verification simulations, per new rate: fewer queries than `kairos plan`'s
# (the controller asks for a new plan whenever the load moves to a new 2% cell)
AUTOSCALE_PLAN_QUERIES = 1000
# options that apply only with --autoscale (by parameter name)
_AUTOSCALE_ONLY = (
    "initial_qps",
    "max_cost_per_hour",
    "startup_s",
    "interval_s",
    "window_s",
    "headroom",
    "scale_down_after_s",
    "down_margin",
    "min_rate_qps",
    "types_text",
    "plan_queries",
    "cache_path",
)


def autoscale_options(f):
    """--autoscale and the elastic controller's options (defaults from ControllerSettings)."""
    opts = [
        click.option(
            "--autoscale",
            is_flag=True,
            help="Resize the pool with the elastic controller (docs/elastic.md): it starts with the "
            "cheapest pool for --initial-qps and, every --interval-s from the first query, adds "
            "instances (a worker started, serving after --startup-s) or drains them (no query "
            "lost). Replaces --config/--plan; /metrics and /v1/info show the pool and its cost.",
        ),
        click.option(
            "--initial-qps",
            type=float,
            default=1.0,
            show_default=True,
            help="With --autoscale: the rate the starting pool is planned for.",
        ),
        click.option(
            "--max-cost-per-hour",
            type=float,
            default=None,
            help="With --autoscale: a cap in $/hour on any pool the controller plans (beyond it, the best "
            "pool the cap buys); default: none.",
        ),
        click.option(
            "--startup-s",
            type=float,
            default=DEFAULT_STARTUP_S,
            show_default=True,
            help="With --autoscale: seconds from launching an instance to its first query, every type "
            "(emulated: the new worker waits that long before it says HELLO; billed from launch).",
        ),
        *CONTROLLER_OPTIONS,
        click.option(
            "--plan-queries",
            type=click.IntRange(min=0),
            default=AUTOSCALE_PLAN_QUERIES,
            show_default=True,
            help="With --autoscale: queries per simulation with which the planner checks a pool's "
            "QoS-throughput (in a helper process, off the event loop); 0: the planner's queueing "
            "model alone (faster, rougher).",
        ),
        click.option(
            "--cache",
            "cache_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="With --autoscale: JSON-lines file caching the planner's simulations (as `kairos plan "
            "--cache` and `kairos simulate --autoscale --cache`).",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _need_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise KairosInputError(f"kairos serve needs the serve extra ({exc.name} is missing): {SERVE_EXTRA}") from None


def _need_torch_models() -> None:
    try:
        import torch  # noqa: F401

        import kairos.models  # noqa: F401
    except ImportError:
        raise KairosInputError("--workers torch needs PyTorch and kairos.models: pip install -e '.[models]'") from None


def serve_policy_options(policy: str, items, ahead_ms: float | None) -> dict:
    """--policy-option values, plus ahead_ms from --ahead-ms (or its default) where the policy has it."""
    if ahead_ms is not None:
        require_non_negative("--ahead-ms", ahead_ms)
    has_ahead = "ahead_ms" in policy_option_names(policy)
    given = any(i.partition("=")[0].strip() == "ahead_ms" for i in items)
    if ahead_ms is not None and not has_ahead:
        raise KairosInputError(
            f"--ahead-ms: policy {policy!r} only ever gives queries to idle instances; "
            "use --policy kairos or kairos-online, or leave --ahead-ms out"
        )
    if ahead_ms is not None and given:
        raise KairosInputError("give --ahead-ms or --policy-option ahead_ms=..., not both")
    if has_ahead and not given:
        items = [*items, f"ahead_ms={SERVE_AHEAD_MS if ahead_ms is None else ahead_ms!r}"]
    return parse_policy_options(policy, items)


@click.command()
@profile_options
@click.option("--config", "config_text", default=None, help="Pool as TYPE=COUNT,... e.g. g4dn.xlarge=2,r5n.large=9.")
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A plan file (kairos plan --emit) giving model, QoS and configuration (an explicit --qos-ms "
    "overrides the plan's; --model and --config conflict with it).",
)
@click.option(
    "--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the plan's or the paper's)."
)
@click.option(
    "--policy",
    type=click.Choice(sorted(POLICIES)),
    default="kairos",
    show_default=True,
    help="Dispatch policy (the simulator's; kairos-online learns service times from the workers).",
)
@click.option(
    "--policy-option",
    "policy_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the policy's constructor, repeatable, e.g. --policy-option urgency=1.",
)
@click.option(
    "--ahead-ms",
    type=float,
    default=None,
    help=f"Give a busy instance that the policy expects to finish within this many ms its next query "
    f"now: its worker starts it the moment it is done, without idling for a gateway round trip "
    f"(policies kairos and kairos-online; their option ahead_ms). Default {SERVE_AHEAD_MS:g} for "
    f"those policies; 0 = only idle instances get queries, as in `kairos simulate` by default.",
)
@click.option(
    "--workers",
    "mode",
    type=click.Choice(["emulated", "torch"]),
    default="emulated",
    show_default=True,
    help="emulated: each worker sleeps a service time sampled from its type's profile; torch: real model.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP gateway listens on (0.0.0.0: every interface).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port of the HTTP gateway (1-65535).")
@click.option(
    "--max-queue",
    default=2000,
    show_default=True,
    type=int,
    help="Queries allowed to wait; beyond that the gateway answers 503.",
)
@click.option(
    "--hang-factor",
    default=3.0,
    show_default=True,
    type=float,
    help="A worker is hung after this x the slowest profiled service time of the query (+ grace).",
)
@click.option(
    "--hang-grace-ms",
    default=None,
    type=float,
    help="Added to the hang deadline (default 250 ms emulated, 10000 ms torch).",
)
@click.option(
    "--keep-alive-s",
    default=KEEP_ALIVE_S,
    show_default=True,
    type=float,
    help="Close an HTTP keep-alive connection after it has been idle this many seconds. Keep it "
    "longer than the idle timeout of a load balancer in front of the gateway (60 s on the usual "
    "cloud ones), or the balancer may send a request on a connection as it is being closed.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed of the emulated workers' service times, the torch workers' inputs for size-only "
    "queries and the policies that randomise (same seed, same draws).",
)
@click.option("--quiet", is_flag=True, help="Only warnings and errors in the logs.")
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one worker process per instance on this machine; ray: one Ray actor per instance, "
    "placed on a node with the custom resource kairos/TYPE (needs the ray extra).",
)
@click.option(
    "--address",
    "ray_address",
    default=None,
    help="--backend ray: the Ray cluster to join ('auto': the one this machine belongs to); "
    "default: start a one-node Ray here offering every instance type.",
)
@click.option(
    "--listen-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the workers connect back to (--backend ray on several machines: this node's IP, or "
    "0.0.0.0 to listen everywhere and advertise this node's IP).",
)
@click.option(
    "--worker-transport",
    type=click.Choice(["unix", "tcp"]),
    default="unix",
    show_default=True,
    help="How the local worker processes talk to the gateway: unix (a Unix domain socket in a private "
    "temporary directory, only this user can connect: the same frames without the loopback TCP/IP "
    "stack, less CPU per message; falls back to TCP where it cannot be created) or tcp (loopback). "
    "--backend ray always uses TCP.",
)
@click.option(
    "--workload",
    default="deeprecsys",
    show_default=True,
    help="Query-size mix the dispatcher should expect (deeprecsys, ribbon, fixed:N or a file of sizes); "
    "the kairos policy derives its coefficients from it. 'unknown' uses the paper's coefficients.",
)
@click.option(
    "--qos-margin-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="Dispatch as if the QoS target were this much tighter (room for what the gateway cannot "
    "see: the client's HTTP and network time); answers and metrics still use --qos-ms.",
)
@click.option(
    "--http-fast-path/--no-http-fast-path",
    "fast_path",
    default=True,
    show_default=True,
    help="Serve POST /v1/infer straight from the HTTP parser, without an ASGI task per request (same "
    "validation and answers; less gateway CPU per query, docs/serving.md). Every other route goes "
    "through FastAPI either way. Needs httptools; without it everything goes through FastAPI.",
)
@click.option(
    "--coalesce-dispatch/--dispatch-per-event",
    "coalesce",
    default=True,
    show_default=True,
    help="Coalesce: the arrivals and worker results that the event loop takes in one turn share one "
    "dispatch call, made right after them (in a burst: fewer calls, each seeing every waiting "
    "query). Per event: one call per arrival and per result, as the simulator does.",
)
@autoscale_options
def serve(
    model,
    profile_path,
    prices,
    config_text,
    plan_path,
    qos_ms,
    policy,
    policy_options,
    ahead_ms,
    mode,
    host,
    port,
    max_queue,
    hang_factor,
    hang_grace_ms,
    keep_alive_s,
    seed,
    quiet,
    backend,
    ray_address,
    listen_host,
    worker_transport,
    workload,
    qos_margin_ms,
    fast_path,
    coalesce,
    autoscale,
    **elastic,
):
    """Start the inference gateway and its workers (until SIGTERM or Ctrl-C).

    POST /v1/infer with {"size": N} or {"samples": [...]}; GET /healthz, /metrics, /v1/info, /docs.
    With --autoscale the elastic controller sizes the pool (docs/elastic.md).
    """
    # plain values first: a bad one is reported before anything is loaded or started
    require_positive("--hang-factor", hang_factor)
    if hang_grace_ms is not None:
        require_non_negative("--hang-grace-ms", hang_grace_ms)
    policy_opts = serve_policy_options(policy, policy_options, ahead_ms)  # checks --ahead-ms too
    _check_autoscale_options(autoscale, elastic, config_text, plan_path, backend, workload)
    _need_serve_extra()
    if not autoscale and (config_text is None) == (plan_path is None):
        raise KairosInputError("give exactly one of --config TYPE=N,... or --plan FILE (or --autoscale)")
    config: dict[str, int] = {}  # --autoscale: the controller's starting pool, planned below
    if plan_path is not None:
        if "model" in given_options():
            raise KairosInputError("the plan sets --model; give either --plan or --model, not both")
        from kairos.plan.planfile import load_plan

        plan = load_plan(plan_path)
        model, config = plan.model, dict(plan.config)
        qos_ms = qos_ms if qos_ms is not None else plan.qos_ms
    elif config_text is not None:
        config = parse_config(config_text)
    cat = get_catalogue(profile_path, prices)
    profile = cat.profile(model)
    qos = resolve_qos(model, qos_ms)
    from kairos.sim.experiment import validate_config

    if not autoscale:
        validate_config(profile, config, qos)
        config = {t: k for t, k in config.items() if k > 0}
    if mode == "torch":
        _need_torch_models()
    if max_queue < 1:
        raise KairosInputError(f"--max-queue must be >= 1, got {max_queue}")
    if not 0 < port < 65536:
        raise KairosInputError(f"--port must be in 1..65535, got {port}")
    if not 0 <= qos_margin_ms < qos:
        raise KairosInputError(
            f"--qos-margin-ms must be >= 0 and below the QoS target ({qos:g} ms), got {qos_margin_ms:g}"
        )
    if not 0 < keep_alive_s < float("inf"):
        raise KairosInputError(f"--keep-alive-s must be a number of seconds > 0, got {keep_alive_s:g}")
    if hang_grace_ms is None:
        hang_grace_ms = 250.0 if mode == "emulated" else 10_000.0

    if workload != "unknown":
        from kairos.workload import parse_size_mix

        parse_size_mix(workload).bucket_probabilities(profile.batches)  # bad mix: one line now
    if backend != "ray" and ray_address is not None:
        raise KairosInputError("--address is for --backend ray")
    if backend == "ray":
        from kairos.serve.ray_backend import import_ray

        import_ray()  # a one-line error now if the ray extra is missing

    spec = None
    if autoscale:  # plans (simulates): after every other check
        config, spec = autoscale_spec(cat, model, qos, workload, seed, **elastic)
        validate_config(profile, config, qos)

    from kairos.serve.gateway import GatewayConfig
    from kairos.serve.server import ServeConfig, run_server

    gateway = GatewayConfig(
        model=model,
        config=config,
        qos_ms=qos,
        policy=policy,
        policy_options=policy_opts,
        mode=mode,
        seed=seed,
        max_queue=max_queue,
        hang_factor=hang_factor,
        hang_grace_ms=hang_grace_ms,
        profile_path=profile_path,
        prices_path=prices,
        workload=None if workload == "unknown" else workload,
        qos_margin_ms=qos_margin_ms,
        coalesce_dispatch=coalesce,
        autoscale=spec,
        start_timeout_s=300.0 if backend == "ray" else GatewayConfig.start_timeout_s,
    )  # Ray actors wait for Ray to place them
    run_server(
        profile,
        ServeConfig(
            gateway=gateway,
            host=host,
            port=port,
            quiet=quiet,
            fast_path=fast_path,
            keep_alive_s=keep_alive_s,
            backend=backend,
            ray_address=ray_address,
            listen_host=listen_host,
            worker_transport=worker_transport,
        ),
    )


def _check_autoscale_options(
    autoscale: bool, elastic: dict, config_text, plan_path, backend: str, workload: str
) -> None:
    """--autoscale against --config/--plan/--backend ray/--workload unknown, and its own options without it."""
    given = given_options()
    if not autoscale:
        for name in _AUTOSCALE_ONLY:
            if name in given:
                flag = _flag(name)
                raise KairosInputError(f"{flag} applies only with --autoscale; add --autoscale or drop {flag}")
        return
    require_positive("--initial-qps", elastic["initial_qps"])
    if elastic["max_cost_per_hour"] is not None:
        require_positive("--max-cost-per-hour", elastic["max_cost_per_hour"])
    require_non_negative("--startup-s", elastic["startup_s"])

    controller_settings(
        **{
            k: elastic[k]
            for k in ("interval_s", "window_s", "headroom", "scale_down_after_s", "down_margin", "min_rate_qps")
        }
    )
    for text, flag in ((config_text, "--config"), (plan_path, "--plan")):
        if text is not None:
            raise KairosInputError(
                f"{flag} does not apply with --autoscale (the controller plans the pool); drop {flag} or --autoscale"
            )
    if backend != "local":
        raise KairosInputError(
            "--autoscale runs on --backend local (worker processes on this machine); drop --backend ray or --autoscale"
        )
    if workload == "unknown":
        raise KairosInputError(
            "--autoscale plans for a query-size mix; give --workload (deeprecsys, ribbon, "
            "fixed:N or a file of sizes), not 'unknown'"
        )


def _flag(name: str) -> str:
    """The command-line spelling of the serve command's parameter ``name``."""
    ctx = click.get_current_context()
    return next(p.opts[0] for p in ctx.command.params if p.name == name)


def autoscale_spec(
    cat,
    model: str,
    qos: float,
    workload: str,
    seed: int,
    initial_qps: float,
    max_cost_per_hour: float | None,
    startup_s: float,
    interval_s: float,
    window_s: float,
    headroom: float,
    scale_down_after_s: float,
    down_margin: float,
    min_rate_qps: float,
    types_text: str | None,
    plan_queries: int,
    cache_path: str | None,
):
    """(the starting pool, the AutoscaleSpec) of ``kairos serve --autoscale``: the controller
    over a TargetPlanner, as ``kairos simulate --autoscale`` builds it, with the cap as budget."""
    from kairos.elastic.controller import Controller
    from kairos.elastic.simulate import TargetPlanner
    from kairos.serve.autoscale import AutoscaleSpec
    from kairos.workload.sizes import parse_size_mix

    require_positive("--initial-qps", initial_qps)
    if max_cost_per_hour is not None:
        require_positive("--max-cost-per-hour", max_cost_per_hour)
    startup_s = require_non_negative("--startup-s", startup_s)
    settings = controller_settings(
        interval_s=interval_s,
        window_s=window_s,
        headroom=headroom,
        scale_down_after_s=scale_down_after_s,
        down_margin=down_margin,
        min_rate_qps=min_rate_qps,
    )
    mix = parse_size_mix(workload)
    planner = TargetPlanner.for_model(
        cat, model, qos, mix, max_cost_per_hour, types_text, plan_queries, seed, cache_path
    )
    problem = planner.problem
    startup = {t: startup_s for t in problem.types}
    controller = Controller(planner, startup, settings)
    try:
        initial = controller.initial_pool(initial_qps)
    except KairosInputError as exc:
        raise KairosInputError(f"--initial-qps {initial_qps:g}: no pool to start with ({exc})") from None
    from dataclasses import asdict

    report = {
        "initial_qps": initial_qps,
        "initial_pool": initial,
        "max_cost_per_hour": max_cost_per_hour,
        "types": list(problem.types),
        "plan_queries": plan_queries,
        "controller": asdict(settings),
    }
    return initial, AutoscaleSpec(controller, startup, planner.prices(), settings=report)
