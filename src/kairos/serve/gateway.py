"""The gateway's event loop: the live driver of the decision step the simulator drives.

Queries arrive from HTTP handlers (:meth:`Gateway.submit_nowait`), completions from worker
connections (:meth:`Gateway.on_result`), instances fail and come back
(:meth:`Gateway.on_worker_lost`, :meth:`Gateway.on_hello`). Each event is reported to a
:class:`~kairos.dispatch.dispatcher.Dispatcher` -- the same central queue, pool and policy
step that :func:`kairos.sim.engine.simulate` drives -- and the gateway carries out what it
answers: a query that starts now is sent to its worker and timed, a query an instance
finished is answered. The gateway itself never filters the queue, consults the policy or
assigns an instance. Everything runs in one asyncio event loop, so no locks are needed.

A query the dispatcher queues on a busy instance (a binding policy, or a central-queue
policy with ``ahead_ms``) is sent to its worker at once when it is next in line there
("sent ahead"): the worker reads it the moment it finishes its current query, so the
instance does not idle for a gateway round trip (result to the gateway, dispatch,
query back) between the two. Only the running query is timed for hangs; a worker that
dies takes both back to the central queue.

Faults: a worker whose connection closes (it died) or that overruns its deadline
(``hang_factor`` x the profile's slowest recorded service time for the query's size on
its type, plus ``hang_grace_ms``; it hung) is taken down (``Dispatcher.instance_down``);
the queries it held go back to the central queue, oldest first, and are dispatched
again; its worker is killed and restarted by the :class:`~kairos.serve.workers.Supervisor`,
and the instance is back in the pool (``Dispatcher.instance_up``) once the new worker
says HELLO. A query re-dispatched ``max_attempts`` times fails with 502 (never
silently). Overload: at most ``max_queue`` queries wait (not counting those being
served); beyond that :meth:`Gateway.submit_nowait` raises :class:`Overloaded`.

Elastic pools: :meth:`Gateway.add_instance` and :meth:`Gateway.drain_instance` are the
live side of ``Dispatcher.add_instance`` / ``Dispatcher.drain``, as the simulator's
``ElasticTimers`` uses them (:mod:`kairos.serve.autoscale` decides when). An added
instance's worker is spawned at once and serves from its HELLO; a drained one takes no
new query, its waiting queries go back to the central queue, the query it runs finishes
there, and its worker is stopped (``Supervisor.retire``) after that last answer. Indices
are never reused.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict

from kairos.dispatch import DictQueries, DispatchContext, Dispatcher, Pool, make_policy
from kairos.dispatch.pool import pool_type_ids
from kairos.profiles.profile import Profile
from kairos.serve import transport as tp
from kairos.serve.logs import EventLog
from kairos.serve.workers import Supervisor, WorkerHandle

if TYPE_CHECKING:
    from kairos.serve.autoscale import AutoscaleSpec, LiveScaler
    from kairos.serve.metrics import GatewayMetrics
    from kairos.serve.offload import Offloader


class Overloaded(Exception):
    """The bounded queue is full (HTTP 503)."""


class QueryFailed(Exception):
    """The query could not be served (HTTP ``status``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class GatewayConfig:
    model: str
    config: dict[str, int]
    qos_ms: float
    policy: str = "kairos"
    policy_options: dict = field(default_factory=dict)  # constructor options of the policy
    mode: str = "emulated"
    seed: int = 0
    max_queue: int = 2000
    hang_factor: float = 3.0
    hang_grace_ms: float = 250.0
    max_attempts: int = 3
    start_timeout_s: float = 60.0
    profile_path: str | None = None
    prices_path: str | None = None
    # the query-size mix the dispatcher expects (kairos uses it for its coefficients); None: unknown
    workload: str | None = "deeprecsys"
    # the policy dispatches for qos_ms - qos_margin_ms (room for the client's HTTP/network time)
    qos_margin_ms: float = 0.0
    # True: arrivals and results that the event loop handles in one turn share one
    # dispatch call, made right after them (see Gateway._want_dispatch); False: one per event
    coalesce_dispatch: bool = True
    # verify every decision of the policy (Dispatcher check=True): an AssertionError on the
    # event loop for a bad pair; for tests
    check_decisions: bool = False
    # the elastic controller that resizes the pool (kairos.serve.autoscale); None: a fixed pool
    autoscale: AutoscaleSpec | None = None


class Waiter(Protocol):
    """What the gateway completes with a query's answer: an ``asyncio.Future``, or an object
    with the same three methods (the HTTP fast path's, which answers in the same call)."""

    def done(self) -> bool: ...

    def set_result(self, result) -> None: ...

    def set_exception(self, exc) -> None: ...


class GatewayCounts(TypedDict):
    """The gateway's query counters (``/v1/state``'s ``counts``, the ``gateway_stopped`` event)."""

    admitted: int
    completed: int
    failed: int
    overload: int
    redispatched: int
    sent_ahead: int


@dataclass(slots=True)
class QueryRecord:
    """What the gateway keeps of one admitted query until it is answered. Its size bucket
    and arrival time (ms) are in the pool's query table (``Gateway.queries``)."""

    size: int
    payload: bytes  # the samples for a torch worker (b"": size only)
    waiter: Waiter  # completed with the answer
    start: float | None = None  # when it started on its instance (ms); None until then
    sent_ahead: float | None = None  # when it was sent to a busy instance's worker ahead of its start
    attempts: int = 0  # instances lost while holding it


class Gateway:
    """``supervisor`` starts the workers (:class:`~kairos.serve.workers.LocalSupervisor`,
    :class:`~kairos.serve.ray_backend.RaySupervisor`); the gateway gives itself to it in
    :meth:`start`."""

    def __init__(self, profile: Profile, cfg: GatewayConfig, supervisor: Supervisor, log: EventLog | None = None):
        self.cfg = cfg
        self.profile = profile
        self.log = log or EventLog()
        self.qos = float(cfg.qos_ms)
        self.type_of = pool_type_ids(profile, cfg.config)
        self.n = len(self.type_of)
        self.instance_types = [profile.types[t] for t in self.type_of]
        self.instance_names = [f"{t}#{i}" for t, k in cfg.config.items() for i in range(k)]
        self.policy = make_policy(cfg.policy, **cfg.policy_options)
        probs = None
        if cfg.workload:
            from kairos.workload import parse_size_mix

            probs = parse_size_mix(cfg.workload).bucket_probabilities(profile.batches)
        self.policy.bind(DispatchContext(profile, self.type_of, self.qos - cfg.qos_margin_ms, cfg.seed, probs))
        # the size bucket and arrival time of every admitted query, by id (the pool's table)
        self.queries = DictQueries()
        self.pool = Pool(self.type_of, profile.mean_ms.tolist(), self.queries)
        self.dispatcher = Dispatcher(self.policy, self.pool, check=cfg.check_decisions)
        self.queue = self.dispatcher.queue  # the central queue (the dispatcher's list: read it, never change it)
        self.records: dict[int, QueryRecord] = {}  # every admitted query not yet answered, by id
        # hang deadline per (type, bucket): slowest recorded service time, scaled
        qmax = profile.quantiles_ms[:, :, -1]
        self.deadline_ms = (cfg.hang_factor * qmax + cfg.hang_grace_ms).tolist()
        self.max_size = profile.max_batch
        self._batches = profile.batches.tolist()
        self._dispatch_due = False  # a coalesced dispatch is scheduled (_want_dispatch)
        self.timers: list = [None] * self.n
        self.busy_ms = [0.0] * self.n
        self.started_at: list[float | None] = [None] * self.n  # query start on instance j
        self.next_qid = 0
        self.t0 = time.perf_counter()
        self.workers = [WorkerHandle(j, self.instance_types[j], self.instance_names[j]) for j in range(self.n)]
        # per instance: when its worker was first spawned, first said HELLO, was stopped
        # (drained and done), in ms of self.now(); what an elastic pool is billed for
        self.launched_ms: list[float | None] = [None] * self.n
        self.ready_ms: list[float | None] = [None] * self.n
        self.stopped_ms: list[float | None] = [None] * self.n
        self._named = dict(cfg.config)  # instances of each type named so far (names are TYPE#i)
        self.first_arrival_ms: float | None = None  # when the first query was admitted
        self.sup = supervisor
        self.metrics: GatewayMetrics | None = None  # set by the app
        self.stopping = False
        self.counts: GatewayCounts = {
            "admitted": 0,
            "completed": 0,
            "failed": 0,
            "overload": 0,
            "redispatched": 0,
            "sent_ahead": 0,
        }
        self._all_up: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.offloader: Offloader | None = None  # helper process for the policy's slow work (kairos.serve.offload)
        self.scaler: LiveScaler | None = None
        if cfg.autoscale is not None:
            from kairos.serve.autoscale import LiveScaler

            self.scaler = LiveScaler(self, cfg.autoscale)

    # ------------------------------------------------------------------ lifecycle
    def now(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._all_up = asyncio.Event()
        if self.policy.wants_offload:
            from kairos.serve.offload import Offloader

            self.offloader = Offloader(self.loop, self.log)
            await self.offloader.start()
            self.policy.set_offload(self.offloader)
        await self.sup.listen(self)
        for j in range(self.n):  # every instance is down until its worker says HELLO
            self.dispatcher.instance_down(j)
        for h in self.workers:
            self.launched_ms[h.index] = self.now()
            await self.sup.spawn(h, self.cfg.seed)
        try:
            await asyncio.wait_for(self._all_up.wait(), self.cfg.start_timeout_s)
        except asyncio.TimeoutError:
            down = [h.name for h in self.workers if h.state != "up"]
            await self.stop()
            raise RuntimeError(
                f"workers did not start within {self.cfg.start_timeout_s:g} s: {', '.join(down)}"
            ) from None
        # everything allocated so far (FastAPI, numpy, the profile) lives as long as the
        # gateway: keep it out of the collector's way so collections stay short
        if self.scaler is not None:
            await self.scaler.start()
        gc.collect()
        gc.freeze()
        self._lag_tick(time.perf_counter() + 0.005)
        self.log.event(
            "gateway_ready",
            model=self.cfg.model,
            config=self.cfg.config,
            qos_ms=self.qos,
            policy=self.cfg.policy,
            mode=self.cfg.mode,
            workers=[h.pid for h in self.workers],
            helper=self.offloader.pid if self.offloader is not None else None,
            autoscale=self.scaler.describe() if self.scaler is not None else None,
        )

    LAG_PERIOD_S = 0.005

    def _lag_tick(self, expected: float) -> None:
        """Event-loop lag probe: how late a 5 ms timer fires (a blocked loop delays every query)."""
        now = time.perf_counter()
        if self.metrics is not None:
            self.metrics.loop_lag.observe(max(0.0, now - expected))
        if not self.stopping:
            assert self.loop is not None  # set by start()
            self.loop.call_later(self.LAG_PERIOD_S, self._lag_tick, now + self.LAG_PERIOD_S)

    async def stop(self) -> None:
        self.stopping = True
        if self.scaler is not None:
            await self.scaler.close()
        for j in range(self.n):
            self._cancel_timer(j)
        await self.sup.stop_all(self.workers)
        if self.offloader is not None:
            await self.offloader.close()
        for r in list(self.records.values()):
            if not r.waiter.done():
                r.waiter.set_exception(QueryFailed(503, "the gateway is shutting down"))
        now = self.now()
        for j in range(self.n):  # billed until now
            if self.stopped_ms[j] is None and self.launched_ms[j] is not None:
                self.stopped_ms[j] = now
        extra = self.scaler.final_figures() if self.scaler is not None else {}
        self.log.event("gateway_stopped", **self.counts, **extra)

    # ------------------------------------------------------------------ queries
    def bucket_of(self, size: int) -> int:
        """Size bucket (the next measured size up), as Profile.bucket_of for one size."""
        return bisect.bisect_left(self._batches, size)

    def waiting(self) -> int:
        """Queries admitted and not yet being served (central queue + instances' local queues)."""
        if not self.dispatcher.binds:
            return len(self.queue)  # central-queue policies hold at most one query ahead
        return len(self.queue) + sum(len(loc) for loc in self.pool.local)

    def in_flight(self) -> int:
        """Queries admitted and not yet answered."""
        return len(self.records)

    def submit_nowait(self, size: int, bucket: int, payload: bytes = b"", waiter: Waiter | None = None) -> Waiter:
        """Queue one query; the future's result is its answer (a dict for the HTTP response).
        Raises :class:`Overloaded` or :class:`QueryFailed` at once when it is not admitted.

        ``waiter``: completed instead of a new future -- any object with ``done()``,
        ``set_result()`` and ``set_exception()`` -- for a caller that answers in the same
        call as the completion rather than one event-loop turn later (the HTTP fast path)."""
        if self.stopping:
            raise QueryFailed(503, "the gateway is shutting down")
        if self.waiting() >= self.cfg.max_queue:
            self.counts["overload"] += 1
            raise Overloaded(f"queue full ({self.cfg.max_queue} queries waiting); retry later")
        qid = self.next_qid
        self.next_qid += 1
        now = self.now()
        if qid == 0:
            self.first_arrival_ms = now
            if self.scaler is not None:
                self.scaler.begin(now)
        self.queries.add(qid, bucket, now)
        if waiter is None:
            assert self.loop is not None  # set by start()
            waiter = self.loop.create_future()
        fut = waiter
        self.records[qid] = QueryRecord(size, payload, fut)
        self.counts["admitted"] += 1
        self.dispatcher.submit(qid)
        self._want_dispatch(now)
        return fut

    def _want_dispatch(self, now: float) -> None:
        """Dispatch now, or (coalescing, with two or more queries queued) once after every
        event of this loop turn is in.

        In a burst the event loop finds several arrivals and results ready at once; one
        matching over all of them sees every waiting query (one per event sees only the
        events before it) and costs the loop a fraction of the time when it is busiest
        (benchmarks/results/serving.md). A lone
        query is matched at once, as the simulator does: waiting for the rest of the turn
        would only add to its latency."""
        if not self.cfg.coalesce_dispatch or (len(self.queue) <= 1 and not self._dispatch_due):
            self._dispatch(now)
        elif not self._dispatch_due:
            self._dispatch_due = True
            assert self.loop is not None  # set by start()
            self.loop.call_soon(self._dispatch_soon)

    def _dispatch_soon(self) -> None:
        self._dispatch_due = False
        self._dispatch(self.now())

    def _dispatch(self, now: float) -> None:
        """One decision step; carry out its pairs (a query that starts now is sent and timed,
        one held next in line by a busy instance is sent ahead)."""
        running = self.pool.running
        for qid, j in self.dispatcher.step(now):
            if running[j] == qid:  # it starts now
                self._send(qid, j, now)
            else:
                self._send_ahead(j)

    def _send(self, qid: int, j: int, now: float) -> None:
        self._frame(qid, j)
        self._begin(qid, j, now)

    def _frame(self, qid: int, j: int) -> None:
        r = self.records[qid]
        self.workers[j].send(tp.encode_query(qid, r.size, self.queries.bucket[qid], r.payload, time.monotonic()))

    def _begin(self, qid: int, j: int, now: float) -> None:
        """Query ``qid`` starts on instance ``j`` now: its wait ends, its hang deadline is armed."""
        self.records[qid].start = now
        self.started_at[j] = now
        d = self.deadline_ms[self.type_of[j]][self.queries.bucket[qid]]
        assert self.loop is not None  # set by start()
        self.timers[j] = self.loop.call_later(d / 1000.0, self._on_hang, j, qid, self.workers[j].generation)

    def _send_ahead(self, j: int) -> None:
        """Send busy instance ``j``'s next query in line to its worker now, unless it has it
        already (see module docstring): one query ahead per worker."""
        loc = self.pool.local[j]
        if loc and self.pool.up[j]:
            qid = loc[0]
            r = self.records[qid]
            if r.sent_ahead is None:
                r.sent_ahead = self.now()
                self.counts["sent_ahead"] += 1
                self._frame(qid, j)

    def _cancel_timer(self, j: int) -> None:
        t = self.timers[j]
        if t is not None:
            t.cancel()
            self.timers[j] = None

    def on_result(self, j: int, qid: int, service_ms: float, ok: bool, payload: bytes, queued_ms: float = 0.0) -> None:
        """Worker ``j`` answered ``qid``: it served it in ``service_ms`` after holding it for
        ``queued_ms`` (behind its previous query, when the query was sent ahead)."""
        pool = self.pool
        if pool.running[j] != qid:
            return  # stale (cannot happen on a live connection; defensive)
        self._cancel_timer(j)
        now = self.now()
        st = self.started_at[j]
        if st is not None:
            self.busy_ms[j] += now - st
            self.started_at[j] = None
            if self.dispatcher.observes:  # what the instance was taken for, transport included
                self.dispatcher.observed(j, qid, now - st)
        nxt = self.dispatcher.complete(j, now)
        if nxt >= 0:
            if self.records[nxt].sent_ahead is not None:  # its worker has it, and started it as it sent this result
                self._begin(nxt, j, now)
            else:
                self._send(nxt, j, now)
            self._send_ahead(j)
        elif not pool.up[j]:  # draining (a failed instance's answers never get here): this was its last
            self._retire(j, now)
        if self.queue:  # the freed instance first (or, coalescing, with this turn's other events)
            self._want_dispatch(now)
        self._complete(qid, j, now, service_ms, ok, payload, queued_ms)

    def _complete(self, qid, j, now, service_ms, ok, payload, queued_ms=0.0) -> None:
        r = self.records.pop(qid)
        arrival = self.queries.arrival[qid]
        self.queries.remove(qid)
        start = r.start
        sent = r.sent_ahead
        if sent is not None:
            # sent ahead: it started when the worker took it up (its send plus its time at the
            # worker, the way out left out as for any query), not when we heard the one before
            # it end; a worker that cannot tell (TCP without kernel stamps) says 0, and the
            # wait ends at the send
            start = min(start, sent + queued_ms)
        fut = r.waiter
        latency = now - arrival
        wait = start - arrival
        if not ok:
            self.counts["failed"] += 1
            if not fut.done():
                fut.set_exception(QueryFailed(422, "the model rejected the query: " + payload.decode(errors="replace")))
            return
        self.counts["completed"] += 1
        met = latency <= self.qos
        if self.metrics is not None:
            self.metrics.completed(j, latency, wait, service_ms, met)
        if fut.done():
            return
        fut.set_result(
            {
                "id": qid,
                "result": payload,  # raw JSON bytes (or b"" when emulated), spliced by the app
                "instance": self.instance_names[j],
                "instance_index": j,
                "instance_type": self.instance_types[j],
                "size": r.size,
                "wait_ms": round(wait, 4),
                "service_ms": round(service_ms, 4),
                "gateway_latency_ms": round(latency, 4),
                "qos_ms": self.qos,
                "qos_met": met,
                "attempts": r.attempts + 1,
                "mode": self.cfg.mode,
            }
        )

    # ------------------------------------------------------------------ faults
    def on_hello(self, conn, index: int, pid: int, info: dict) -> None:
        if not 0 <= index < self.n or self.stopping:
            conn.transport.close()
            return
        h = self.workers[index]
        # the generation, not the pid: a fast worker can say HELLO before spawn() has
        # returned its pid to us
        if info.get("generation") != h.generation or h.state != "starting":
            conn.transport.close()  # not the process we spawned last for this instance
            return
        h.pid = pid
        conn.handle = h
        h.conn = conn
        h.state = "up"
        h.info = info
        now = self.now()
        if self.ready_ms[index] is None:
            self.ready_ms[index] = now
        self.dispatcher.instance_up(index, now)
        self.log.event("worker_up", instance=h.name, pid=pid, generation=h.generation, mode=info.get("mode"))
        if self._all_up is not None and not self._all_up.is_set() and all(w.state == "up" for w in self.workers):
            self._all_up.set()
        self._dispatch(now)

    def _on_hang(self, j: int, qid: int, generation: int) -> None:
        h = self.workers[j]
        if h.generation != generation or self.pool.running[j] != qid:
            return
        self.timers[j] = None
        self.log.event(
            "worker_hung",
            level="warning",
            instance=h.name,
            pid=h.pid,
            query=qid,
            deadline_ms=round(self.deadline_ms[self.type_of[j]][self.queries.bucket[qid]], 1),
        )
        self.on_worker_lost(j, "deadline exceeded (hung)")

    def on_worker_lost(self, j: int, reason: str) -> None:
        h = self.workers[j]
        if self.stopping or h.state in ("down", "stopped"):
            return
        was_up = h.state == "up"
        draining = h.state == "draining"  # it is not restarted: it was leaving
        h.state = "down"
        self._cancel_timer(j)
        self.sup.kill(h)
        now = self.now()
        st = self.started_at[j]
        if st is not None:
            self.busy_ms[j] += now - st
            self.started_at[j] = None
        lost = self.dispatcher.instance_down(j) if was_up or draining or self.pool.up[j] else []
        requeue = []
        for qid in lost:
            r = self.records[qid]
            r.start = r.sent_ahead = None
            r.attempts += 1
            if r.attempts >= self.cfg.max_attempts:
                self._fail(qid, 502, f"query failed on {r.attempts} workers in a row; not retried")
            else:
                requeue.append(qid)
        if requeue:
            self.counts["redispatched"] += len(requeue)
            if self.metrics is not None:
                self.metrics.redispatched.inc(len(requeue))
            self.dispatcher.requeue(requeue)  # oldest first
        self.log.event(
            "worker_lost",
            level="warning",
            instance=h.name,
            pid=h.pid,
            reason=reason,
            redispatched=requeue,
            # a draining worker is not restarted: it leaves the pool here
            **({"restarts": h.restarts, "draining": True} if draining else {"restarts": h.restarts + 1}),
        )
        if draining:
            self._stopped(j, now)
            self._dispatch(now)
            return
        h.restarts += 1
        delay = 0.0 if h.restarts <= 3 else min(5.0, 0.5 * (h.restarts - 3))
        loop = self.loop
        assert loop is not None  # set by start()
        loop.call_later(delay, lambda: loop.create_task(self._restart(h)))
        self._dispatch(now)

    async def _restart(self, h: WorkerHandle) -> None:
        if self.stopping:
            return
        await self.sup.spawn(h, self.cfg.seed)
        self.log.event("worker_restarted", instance=h.name, pid=h.pid, generation=h.generation)

    def _fail(self, qid: int, status: int, msg: str) -> None:
        self.queries.remove(qid)
        r = self.records.pop(qid, None)
        self.counts["failed"] += 1
        if r is not None and not r.waiter.done():
            r.waiter.set_exception(QueryFailed(status, msg))

    # ------------------------------------------------------------------ elastic pool
    def add_instance(self, type_name: str, startup_s: float = 0.0) -> WorkerHandle:
        """A new instance of ``type_name`` joins the pool (``Dispatcher.add_instance``: down
        until its worker says HELLO); its worker is spawned now and says HELLO no earlier
        than ``startup_s`` from now (an emulated start-up). Returns its handle."""
        tid = self.profile.type_index(type_name)
        j = self.dispatcher.add_instance(tid)
        if j != self.n:
            raise RuntimeError(f"the pool added instance {j}, the gateway expected {self.n}")
        k = self._named.get(type_name, 0)
        self._named[type_name] = k + 1
        name = f"{type_name}#{k}"
        self.type_of.append(tid)
        self.instance_types.append(type_name)
        self.instance_names.append(name)
        self.timers.append(None)
        self.busy_ms.append(0.0)
        self.started_at.append(None)
        h = WorkerHandle(j, type_name, name)
        h.ready_at = time.monotonic() + max(0.0, startup_s)
        self.workers.append(h)
        now = self.now()
        self.launched_ms.append(now)
        self.ready_ms.append(None)
        self.stopped_ms.append(None)
        self.n += 1
        if self.metrics is not None:
            self.metrics.add_instance(j)
        assert self.loop is not None  # set by start()
        self.loop.create_task(self._launch(h))
        return h

    async def _launch(self, h: WorkerHandle) -> None:
        if self.stopping or h.state != "starting":
            return
        await self.sup.spawn(h, self.cfg.seed)
        self.log.event(
            "worker_launched",
            instance=h.name,
            pid=h.pid,
            ready_in_s=round(max(0.0, (h.ready_at or 0.0) - time.monotonic()), 3),
        )

    def drain_instance(self, j: int) -> bool:
        """Instance ``j`` (up) leaves the pool (``Dispatcher.drain``): no new query; the
        queries waiting for it go back to the central queue and are dispatched again; the
        one it runs finishes there, then its worker is stopped. False if ``j`` is not up."""
        h = self.workers[j]
        if h.state != "up":
            return False
        h.state = "draining"
        waiting = list(self.pool.local[j])
        self.dispatcher.drain(j)
        for qid in waiting:
            # one sent ahead is in that worker's socket: it may serve its copy, whose answer
            # is ignored (the instance no longer runs it); the query is sent again where it goes
            self.records[qid].sent_ahead = None
        now = self.now()
        self.log.event("worker_draining", instance=h.name, pid=h.pid, running=self.pool.running[j], requeued=waiting)
        if self.dispatcher.is_stopped(j):
            self._retire(j, now)
        if self.queue:
            self._dispatch(now)
        return True

    def _retire(self, j: int, now: float) -> None:
        """Drained instance ``j`` holds nothing now: stop its worker."""
        h = self.workers[j]
        self._cancel_timer(j)
        self._stopped(j, now)
        assert self.loop is not None  # set by start()
        self.loop.create_task(self.sup.retire(h))

    def _stopped(self, j: int, now: float) -> None:
        h = self.workers[j]
        h.state = "stopped"
        self.stopped_ms[j] = now
        self.log.event("worker_stopped", instance=h.name, pid=h.pid)

    # ------------------------------------------------------------------ state
    @property
    def sent_ahead(self) -> list[int]:
        """Per instance, the query its worker holds next in line (sent ahead), or -1."""
        return [loc[0] if loc and self.records[loc[0]].sent_ahead is not None else -1 for loc in self.pool.local]

    def busy_seconds(self) -> list[float]:
        now = self.now()
        return [(b + (now - s if s is not None else 0.0)) / 1000.0 for b, s in zip(self.busy_ms, self.started_at)]

    def health(self) -> dict:
        up = sum(1 for h in self.workers if h.state == "up")
        return {
            "status": "ok" if up > 0 and not self.stopping else ("stopping" if self.stopping else "down"),
            "mode": self.cfg.mode,
            "emulation": (
                "EMULATED instances: each worker sleeps for a service time sampled from the latency profile "
                "of its instance type; no model runs"
                if self.cfg.mode == "emulated"
                else "real model inference on this machine (torch); instance types label the workers"
            ),
            "model": self.cfg.model,
            "policy": self.cfg.policy,
            "policy_params": self.policy.describe(),
            "qos_ms": self.qos,
            "workers_up": up,
            # every instance of the pool (a drained one until it has stopped)
            "workers": [
                {
                    **h.describe(),
                    "running_query": self.pool.running[h.index] if h.state == "up" else None,
                    "held": self.pool.held[h.index] if h.state == "up" else 0,
                }
                for h in self.workers
                if self.stopped_ms[h.index] is None
            ],
            "queue_length": len(self.queue),
            "in_flight": len(self.records),
            "counts": dict(self.counts),
            **({"pool": self.scaler.pool()} if self.scaler is not None else {}),
        }
