"""Build the gateway and run it under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from dataclasses import dataclass

from kairos.profiles.profile import Profile
from kairos.serve import KEEP_ALIVE_S
from kairos.serve.app import create_app
from kairos.serve.gateway import Gateway, GatewayConfig
from kairos.serve.logs import EventLog
from kairos.serve.workers import LocalSupervisor, Supervisor


@dataclass
class ServeConfig:
    """Everything ``kairos serve`` runs with, built once by the CLI: the gateway's own
    configuration, where it listens for HTTP, and how its workers are started."""

    gateway: GatewayConfig
    host: str = "127.0.0.1"  # the HTTP listener
    port: int = 8000
    quiet: bool = False  # only warnings and errors in the log
    fast_path: bool = True  # POST /v1/infer straight from the HTTP parser (kairos.serve.fastpath)
    keep_alive_s: float = KEEP_ALIVE_S  # idle HTTP keep-alive connections are closed after this
    backend: str = "local"  # local: worker processes here; ray: Ray actors (kairos.serve.ray_backend)
    ray_address: str | None = None  # ray: the cluster to join (None: start a one-node Ray here)
    listen_host: str = "127.0.0.1"  # where workers connect to the gateway (ray: reachable from every node)
    # how local worker processes reach the gateway: "unix" (a Unix domain socket, where the
    # platform has them) or "tcp" (loopback); Ray actors always use TCP (transport.py)
    worker_transport: str = "unix"


def make_supervisor(cfg: ServeConfig) -> Supervisor:
    """The supervisor of the workers ``cfg.backend`` names."""
    if cfg.backend == "ray":  # the same gateway; only how workers are started differs
        from kairos.serve.ray_backend import RaySupervisor

        return RaySupervisor(cfg.gateway, cfg.ray_address, cfg.listen_host)
    return LocalSupervisor.for_gateway(cfg.gateway, cfg.worker_transport, cfg.listen_host)


def server_info(profile: Profile, gw: Gateway) -> dict:
    from kairos.plan.fluid import config_fluid_bound
    from kairos.workload.sizes import parse_size_mix

    probs = parse_size_mix("deeprecsys").bucket_probabilities(profile.batches)
    bound = config_fluid_bound(profile, gw.cfg.config, probs, gw.qos).qps
    return {
        "model": gw.cfg.model,
        "config": gw.cfg.config,
        "qos_ms": gw.qos,
        "policy": gw.cfg.policy,
        "mode": gw.cfg.mode,
        "max_size": gw.max_size,
        "instances": gw.instance_names,
        "fluid_bound_qps_deeprecsys": round(bound, 3),
    }


def run_server(profile: Profile, cfg: ServeConfig) -> None:
    """Serve until SIGTERM or Ctrl-C (exit 3 if uvicorn could not start)."""
    import uvicorn

    log = EventLog(quiet=cfg.quiet)
    gw = Gateway(profile, cfg.gateway, make_supervisor(cfg), log)
    app = create_app(gw, server_info(profile, gw))
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    http_impl: str | type[asyncio.Protocol] = http  # uvicorn.Config's http: a name or a protocol class
    if http == "httptools" and cfg.fast_path:  # POST /v1/infer without an ASGI task (kairos.serve.fastpath)
        from kairos.serve.fastpath import FastInferProtocol

        http_impl, http = FastInferProtocol, "httptools+fastpath"
    host, port = cfg.host, cfg.port
    # bind here so a busy port is a one-line error before any worker starts
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from kairos.errors import KairosInputError

        raise KairosInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    ucfg = uvicorn.Config(
        app,
        loop=loop,
        http=http_impl,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=60,
        backlog=4096,
        timeout_keep_alive=cfg.keep_alive_s,  # type: ignore[arg-type]  # any seconds (call_later)
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )
    open_files = raise_open_files_limit()  # before any connection or worker
    log.event(
        "gateway_listen",
        host=host,
        port=port,
        loop=loop,
        http=http,
        keep_alive_s=cfg.keep_alive_s,
        open_files_limit=open_files,
    )
    server = uvicorn.Server(ucfg)
    with _graceful_sigterm():
        server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)


@contextlib.contextmanager
def _graceful_sigterm():
    """SIGTERM is the orderly stop (in-flight queries finished, workers shut down), so the
    process then exits 0, as process managers expect of a clean stop. uvicorn catches the
    signal, shuts down, restores the handler it found and raises the signal again; the one
    it finds is this no-op instead of the default (which would end the process as killed
    by SIGTERM, status 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_open_files_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit (as Go's runtime does
    at start), and return the soft limit now in force (None where there is no such limit).
    Every client connection is a file descriptor, kept open for up to ``--keep-alive-s``
    while idle, and the distributions' soft default (often 1024) is far below what the
    kernel allows; at the limit the gateway could neither accept a connection nor start a
    worker."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _has(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False
