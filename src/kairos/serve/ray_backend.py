"""The Ray backend of ``kairos serve``: instances as Ray actors on a (multi-node) Ray cluster.

The Ray backend is a *transport*, not a second dispatcher. The gateway, its policy
objects, its pool state and its fault handling are those of the local backend; only
the supervisor changes. :class:`RaySupervisor` is a
:class:`kairos.serve.workers.Supervisor` (``listen``, ``spawn``, ``kill``,
``stop_all``), and where the local one starts a worker *process* per instance,
it creates a Ray *actor* per instance whose method runs the same worker loop
(:func:`kairos.serve.worker.run`): the actor connects back to the gateway's TCP
listener, says HELLO with its instance index and serves QUERY frames. Queries never
go through Ray's object store; Ray only places, starts and stops the workers.

Placement: an instance of type ``T`` asks for one unit of the custom resource
``kairos/T`` (and a fraction of a CPU), so Ray puts it on a node of that type: a node
started with ``--resources '{"kairos/T": N}'`` hosts at most ``N`` instances of type
``T`` (``kairos plan --emit-ray-cluster`` writes a cluster YAML that does this).

Faults: a lost actor or node closes its TCP connection, and the gateway does what it
does for a dead local worker (``on_worker_lost``: re-dispatch the query it held, take
it out of the pool, ask for a restart). A restart creates a new actor (``max_restarts
= 0``: the gateway, not Ray, decides), which Ray places on any node with a free
``kairos/T`` unit. If there is none, the actor stays pending, the instance stays down
(``/healthz`` shows it, the pool is smaller) and it comes back by itself once a node
with that resource joins.
"""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from kairos.serve.workers import Supervisor, WorkerConnection, WorkerHandle, request_shutdown

if TYPE_CHECKING:
    from kairos.serve.gateway import Gateway

RESOURCE_PREFIX = "kairos/"
#: CPU reserved per actor: the emulated workers sleep, so many fit on one core
ACTOR_NUM_CPUS = 0.01
#: Ray settings of a Ray started by Kairos itself (``--backend ray`` without
#: ``--address``): task events capped, no metrics agent reports
LOW_FOOTPRINT_SYSTEM_CONFIG = {"task_events_max_num_task_in_gcs": 10_000, "enable_metrics_collection": False}
RAY_EXTRA = "pip install -e '.[ray]'"


def resource_name(type_name: str) -> str:
    """The Ray custom resource that marks a node as (hosting) instances of ``type_name``."""
    return RESOURCE_PREFIX + type_name


def import_ray():
    """``ray``, with usage stats off; a clear error if the extra is not installed."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        from kairos.errors import KairosInputError

        raise KairosInputError(f"--backend ray needs Ray: {RAY_EXTRA}") from None
    return ray


def init_ray(address: str | None = None, config: dict[str, int] | None = None, object_store_mb: int = 100) -> bool:
    """Connect to the Ray cluster at ``address`` ("auto": the one on this machine), or,
    with no address, start a one-node Ray here offering ``kairos/T: count`` for every
    type of ``config`` (to try the backend on one machine). Nothing is downloaded, no
    dashboard, usage stats off, logs stay in Ray's session folder. Returns whether this
    call connected (False: Ray was already initialised in this process)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    kw = dict(include_dashboard=False, configure_logging=False, log_to_driver=False, namespace="kairos")
    if address is None:
        kw.update(
            num_cpus=1,
            resources={resource_name(t): int(k) for t, k in (config or {}).items()},
            object_store_memory=object_store_mb * 2**20,
            _system_config=dict(LOW_FOOTPRINT_SYSTEM_CONFIG),
        )
    # "local": always a new Ray here, never one that happens to run on this machine
    ray.init(address=address or "local", **kw)
    return True


class _Instance:
    """One instance of the pool, as a Ray actor (the class is made remote lazily)."""

    def __init__(self, model: str, type_name: str, mode: str, profile_path=None, prices_path=None):
        self.model = model
        self.type_name = type_name
        self.mode = mode
        self.profile_path = profile_path
        self.prices_path = prices_path

    def ready(self) -> tuple[int, str]:
        """(pid, node IP): answered once Ray has placed and started the actor."""
        import ray

        return os.getpid(), ray.util.get_node_ip_address()

    def serve(self, host: str, port: int, index: int, seed: int, generation: int) -> int:
        """The worker loop of ``kairos.serve.worker`` until SHUTDOWN or the gateway is gone."""
        from kairos.serve.worker import Backend, EmulatedBackend, TorchBackend, run

        backend: Backend
        if self.mode == "emulated":
            backend = EmulatedBackend(self.model, self.type_name, seed, self.profile_path, self.prices_path)
        else:
            backend = TorchBackend(self.model, self.type_name, seed)
        try:
            return run(f"{host}:{port}", index, backend, generation)
        except (ConnectionError, OSError):
            return 0


def _abs(path):
    """Actors run in Ray's working directory: give them absolute paths (which must exist
    on every node: the same files, or the built-in catalogue)."""
    return None if path is None else os.path.abspath(path)


_actor_cls = None


def _actor_class():
    global _actor_cls
    if _actor_cls is None:
        ray = import_ray()
        _actor_cls = ray.remote(_Instance)
    return _actor_cls


class RaySupervisor(Supervisor):
    """Starts, tracks and stops one Ray actor per instance.

    ``cfg``: the gateway's configuration (model, mode, catalogue files, pool); ``address``:
    the Ray cluster to join (None: start a one-node Ray here, :func:`init_ray`); ``host``:
    where the actors connect back to (a wildcard: this node's IP address)."""

    def __init__(self, cfg, address: str | None = None, host: str = "127.0.0.1"):
        self.cfg = cfg
        self.address = address
        self.mode = cfg.mode
        self.server: asyncio.Server | None = None
        self.host = host
        self.port = 0
        self.actors: dict[int, object] = {}
        self.nodes: dict[int, str] = {}
        self._tasks: dict[int, asyncio.Task] = {}  # instance index -> its actor's task
        self._own_ray = False
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kairos-ray")

    async def listen(self, gateway: Gateway) -> None:
        """Listen for the actors' connections on the host given and connect to Ray. The
        actors connect to that host (to this node's IP address when it is a wildcard)."""
        self.gw = gateway
        host = self.host
        loop = asyncio.get_running_loop()
        self.server = server = await loop.create_server(lambda: WorkerConnection(gateway), host, 0)
        self.port = server.sockets[0].getsockname()[1]
        # Ray's core installs a C-level SIGTERM handler that ends the process at once:
        # put back the handlers (uvicorn's) so that SIGTERM still drains in-flight queries
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._own_ray = init_ray(self.address, self.cfg.config)
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)
        if host in ("", "0.0.0.0", "::"):
            host = import_ray().util.get_node_ip_address()
        self.host = host

    async def spawn(self, h: WorkerHandle, seed: int) -> None:
        h.generation += 1
        h.state = "starting"
        h.conn = None
        h.pid = None  # known once Ray has placed the actor
        generation = h.generation
        old = self.actors.pop(h.index, None)
        if old is not None:
            self._kill_actor(old)
        cfg = self.cfg
        options = dict(
            resources={resource_name(h.type_name): 1}, num_cpus=ACTOR_NUM_CPUS, max_restarts=0, max_task_retries=0
        )
        args = (cfg.model, h.type_name, cfg.mode, _abs(cfg.profile_path), _abs(cfg.prices_path))
        # creating an actor is a blocking call to Ray's GCS (slow while it handles a node's
        # death): never on the event loop, whose timers and sockets serve every query
        actor = await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: _actor_class().options(**options).remote(*args)
        )
        if h.generation != generation or h.state != "starting":  # killed or stopped meanwhile
            self._kill_actor(actor)
            return
        self.actors[h.index] = actor
        # the same seeds as a local worker process of this generation
        wseed = (seed * 1009 + generation) * 100_003 + h.index
        self._tasks[h.index] = asyncio.get_running_loop().create_task(self._run(h, generation, actor, wseed))

    async def _run(self, h: WorkerHandle, generation: int, actor, wseed: int) -> None:
        """Wait for Ray to place the actor (pending while no node has a free unit of its
        resource), start its worker loop, and report its end like a process exit."""
        reason = "actor ended"
        try:
            pid, node = await actor.ready.remote()
            if h.generation != generation or h.state != "starting":
                return
            h.pid = pid
            self.nodes[h.index] = node
            await actor.serve.remote(self.host, self.port, h.index, wseed, generation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # RayActorError (actor or node lost), or the worker failed
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
        if h.generation == generation and h.state in ("starting", "up"):
            self.gw.on_worker_lost(h.index, f"ray actor lost ({reason})")

    def _kill_actor(self, actor) -> None:
        """ray.kill, off the event loop (it is an RPC to Ray's GCS)."""
        try:
            self._pool.submit(self._kill_now, actor)
        except RuntimeError:  # stopped: no more threads
            self._kill_now(actor)

    @staticmethod
    def _kill_now(actor) -> None:
        try:
            import_ray().kill(actor, no_restart=True)
        except Exception:  # already dead, or its node is gone
            pass

    def kill(self, h: WorkerHandle) -> None:
        actor = self.actors.pop(h.index, None)
        if actor is not None:
            self._kill_actor(actor)
        if h.conn is not None:
            conn, h.conn = h.conn, None
            conn.transport.close()

    async def stop_all(self, handles: list[WorkerHandle], timeout_s: float = 5.0) -> None:
        """SHUTDOWN every worker, wait for their loops to end, kill the actors, disconnect."""
        connected = []
        for h in request_shutdown(handles):
            t = self._tasks.get(h.index)
            if t is not None and not t.done():
                connected.append(t)
        if connected:  # (a pending actor has nothing to finish)
            await asyncio.wait(connected, timeout=timeout_s)
        for h in handles:
            self.kill(h)
        for t in self._tasks.values():
            t.cancel()
        self._tasks.clear()
        if self.server is not None:
            self.server.close()
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)  # kills done
        if self._own_ray:
            import_ray().shutdown()
            self._own_ray = False
