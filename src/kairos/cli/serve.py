"""``kairos serve``: the HTTP inference gateway and one worker per instance of a configuration."""

from __future__ import annotations

import click

from kairos.cli.common import get_catalogue, given_options, profile_options, resolve_qos
from kairos.dispatch.registry import POLICIES, parse_policy_options, policy_option_names
from kairos.errors import KairosInputError, require_non_negative, require_positive
from kairos.profiles.loader import parse_config
from kairos.serve import KEEP_ALIVE_S

SERVE_EXTRA = "pip install -e '.[serve]'"
# kairos serve's ahead_ms for the policies that have it: a few times one gateway round trip
# (docs/serving.md), so that a worker usually has its next query
# before it finishes, and small against the QoS targets the gateway is meant for
SERVE_AHEAD_MS = 1.0


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
        raise KairosInputError(f"--ahead-ms: policy {policy!r} only ever gives queries to idle instances; "
                               "use --policy kairos or kairos-online, or leave --ahead-ms out")
    if ahead_ms is not None and given:
        raise KairosInputError("give --ahead-ms or --policy-option ahead_ms=..., not both")
    if has_ahead and not given:
        items = [*items, f"ahead_ms={SERVE_AHEAD_MS if ahead_ms is None else ahead_ms!r}"]
    return parse_policy_options(policy, items)


@click.command()
@profile_options
@click.option("--config", "config_text", default=None, help="Pool as TYPE=COUNT,... e.g. g4dn.xlarge=2,r5n.large=9.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), default=None,
              help="A plan file (kairos plan --emit) giving model, QoS and configuration (an explicit --qos-ms "
                   "overrides the plan's; --model and --config conflict with it).")
@click.option("--qos-ms", type=float, default=None, help="p99 latency target in ms (default: the plan's or the paper's).")
@click.option("--policy", type=click.Choice(sorted(POLICIES)), default="kairos", show_default=True,
              help="Dispatch policy (the simulator's; kairos-online learns service times from the workers).")
@click.option("--policy-option", "policy_options", multiple=True, metavar="KEY=VALUE",
              help="An option of the policy's constructor, repeatable, e.g. --policy-option urgency=1.")
@click.option("--ahead-ms", type=float, default=None,
              help=f"Give a busy instance that the policy expects to finish within this many ms its next query "
                   f"now: its worker starts it the moment it is done, without idling for a gateway round trip "
                   f"(policies kairos and kairos-online; their option ahead_ms). Default {SERVE_AHEAD_MS:g} for "
                   f"those policies; 0 = only idle instances get queries, as in `kairos simulate` by default.")
@click.option("--workers", "mode", type=click.Choice(["emulated", "torch"]), default="emulated", show_default=True,
              help="emulated: each worker sleeps a service time sampled from its type's profile; torch: real model.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the HTTP gateway listens on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port of the HTTP gateway (1-65535).")
@click.option("--max-queue", default=2000, show_default=True, type=int,
              help="Queries allowed to wait; beyond that the gateway answers 503.")
@click.option("--hang-factor", default=3.0, show_default=True, type=float,
              help="A worker is hung after this x the slowest profiled service time of the query (+ grace).")
@click.option("--hang-grace-ms", default=None, type=float,
              help="Added to the hang deadline (default 250 ms emulated, 10000 ms torch).")
@click.option("--keep-alive-s", default=KEEP_ALIVE_S, show_default=True, type=float,
              help="Close an HTTP keep-alive connection after it has been idle this many seconds. Keep it "
                   "longer than the idle timeout of a load balancer in front of the gateway (60 s on the usual "
                   "cloud ones), or the balancer may send a request on a connection as it is being closed.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Random seed of the emulated workers' service times, the torch workers' inputs for size-only "
                   "queries and the policies that randomise (same seed, same draws).")
@click.option("--quiet", is_flag=True, help="Only warnings and errors in the logs.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one worker process per instance on this machine; ray: one Ray actor per instance, "
                   "placed on a node with the custom resource kairos/TYPE (needs the ray extra).")
@click.option("--address", "ray_address", default=None,
              help="--backend ray: the Ray cluster to join ('auto': the one this machine belongs to); "
                   "default: start a one-node Ray here offering every instance type.")
@click.option("--listen-host", default="127.0.0.1", show_default=True,
              help="Address the workers connect back to (--backend ray on several machines: this node's IP, or "
                   "0.0.0.0 to listen everywhere and advertise this node's IP).")
@click.option("--worker-transport", type=click.Choice(["unix", "tcp"]), default="unix", show_default=True,
              help="How the local worker processes talk to the gateway: unix (a Unix domain socket in a private "
                   "temporary directory, only this user can connect: the same frames without the loopback TCP/IP "
                   "stack, less CPU per message; falls back to TCP where it cannot be created) or tcp (loopback). "
                   "--backend ray always uses TCP.")
@click.option("--workload", default="deeprecsys", show_default=True,
              help="Query-size mix the dispatcher should expect (deeprecsys, ribbon, fixed:N or a file of sizes); "
                   "the kairos policy derives its coefficients from it. 'unknown' uses the paper's coefficients.")
@click.option("--qos-margin-ms", type=float, default=0.0, show_default=True,
              help="Dispatch as if the QoS target were this much tighter (room for what the gateway cannot "
                   "see: the client's HTTP and network time); answers and metrics still use --qos-ms.")
@click.option("--http-fast-path/--no-http-fast-path", "fast_path", default=True, show_default=True,
              help="Serve POST /v1/infer straight from the HTTP parser, without an ASGI task per request (same "
                   "validation and answers; less gateway CPU per query, docs/serving.md). Every other route goes "
                   "through FastAPI either way. Needs httptools; without it everything goes through FastAPI.")
@click.option("--coalesce-dispatch/--dispatch-per-event", "coalesce", default=True, show_default=True,
              help="Coalesce: the arrivals and worker results that the event loop takes in one turn share one "
                   "dispatch call, made right after them (in a burst: fewer calls, each seeing every waiting "
                   "query). Per event: one call per arrival and per result, as the simulator does.")
def serve(model, profile_path, prices, config_text, plan_path, qos_ms, policy, policy_options, ahead_ms, mode, host, port,
          max_queue, hang_factor, hang_grace_ms, keep_alive_s, seed, quiet, backend, ray_address, listen_host,
          worker_transport, workload, qos_margin_ms, fast_path, coalesce):
    """Start the inference gateway and its workers (until SIGTERM or Ctrl-C).

    POST /v1/infer with {"size": N} or {"samples": [...]}; GET /healthz, /metrics, /v1/info, /docs.
    """
    # plain values first: a bad one is reported before anything is loaded or started
    require_positive("--hang-factor", hang_factor)
    if hang_grace_ms is not None:
        require_non_negative("--hang-grace-ms", hang_grace_ms)
    policy_opts = serve_policy_options(policy, policy_options, ahead_ms)  # checks --ahead-ms too
    _need_serve_extra()
    if (config_text is None) == (plan_path is None):
        raise KairosInputError("give exactly one of --config TYPE=N,... or --plan FILE")
    if plan_path is not None:
        if "model" in given_options():
            raise KairosInputError("the plan sets --model; give either --plan or --model, not both")
        from kairos.plan.planfile import load_plan

        plan = load_plan(plan_path)
        model, config = plan.model, dict(plan.config)
        qos_ms = qos_ms if qos_ms is not None else plan.qos_ms
    else:
        config = parse_config(config_text)
    cat = get_catalogue(profile_path, prices)
    profile = cat.profile(model)
    qos = resolve_qos(model, qos_ms)
    from kairos.sim.experiment import validate_config

    validate_config(profile, config, qos)
    config = {t: k for t, k in config.items() if k > 0}
    if mode == "torch":
        _need_torch_models()
    if max_queue < 1:
        raise KairosInputError(f"--max-queue must be >= 1, got {max_queue}")
    if not 0 < port < 65536:
        raise KairosInputError(f"--port must be in 1..65535, got {port}")
    if not 0 <= qos_margin_ms < qos:
        raise KairosInputError(f"--qos-margin-ms must be >= 0 and below the QoS target ({qos:g} ms), got {qos_margin_ms:g}")
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

    from kairos.serve.gateway import GatewayConfig
    from kairos.serve.server import ServeConfig, run_server

    gateway = GatewayConfig(
        model=model, config=config, qos_ms=qos, policy=policy, policy_options=policy_opts, mode=mode, seed=seed,
        max_queue=max_queue, hang_factor=hang_factor, hang_grace_ms=hang_grace_ms, profile_path=profile_path,
        prices_path=prices, workload=None if workload == "unknown" else workload, qos_margin_ms=qos_margin_ms,
        coalesce_dispatch=coalesce,
        start_timeout_s=300.0 if backend == "ray" else GatewayConfig.start_timeout_s)  # Ray actors wait for Ray to place them
    run_server(profile, ServeConfig(
        gateway=gateway, host=host, port=port, quiet=quiet, fast_path=fast_path, keep_alive_s=keep_alive_s,
        backend=backend, ray_address=ray_address, listen_host=listen_host, worker_transport=worker_transport))
