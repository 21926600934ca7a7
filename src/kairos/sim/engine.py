"""The discrete-event simulator: events at arrivals and completions, no fixed ticks.

Arrivals come from a :class:`~kairos.workload.Workload`; completions from a heap.
At every event the :class:`~kairos.dispatch.dispatcher.Dispatcher` -- the same decision
step the gateway runs -- consults the policy when it is due and applies its pairs to the
:class:`~kairos.dispatch.pool.Pool`. An instance serves one query at a time; its actual
service time is the query's pre-drawn sample for that type, while the policy sees only
the profile's estimates.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.dispatcher import Dispatcher
from kairos.dispatch.pool import ArrayQueries, Pool, pool_type_ids
from kairos.profiles.profile import Profile
from kairos.workload.workload import Workload


@dataclass
class SimResult:
    """Outcome of one simulated run (times in ms)."""

    n: int
    completed: int
    latency_ms: np.ndarray  # [completed] end-to-end (wait + service), in arrival order of completed ids
    wait_ms: np.ndarray
    served_by: np.ndarray  # [n] instance per query (-1 if not completed)
    qos_ms: float
    makespan_ms: float
    busy_ms: np.ndarray  # [instances]
    served_count: np.ndarray  # [instances]
    max_held: np.ndarray  # [instances] most queries an instance held at once (running + own queue)
    mean_queue: float  # the central queue's length, time-averaged from 0 to the last event
    max_queue: int
    aborted: bool
    violations: int
    elapsed_s: float
    rate: float | None = None
    extra: dict = field(default_factory=dict)
    # after the last arrival: how long the pool took to finish everything, and how many
    # queries were still unfinished then. A max-QPS figure whose run ends with a long
    # drain relied on serving late queries after the arrivals stopped (docs/dispatch.md,
    # "The fluid bound"): above the sustainable rate the backlog grows with the run.
    drain_ms: float = 0.0
    unfinished_at_last_arrival: int = 0

    @property
    def qos_met_fraction(self) -> float:
        """Fraction of *all* queries finished within QoS (unfinished ones count as misses)."""
        return float((self.latency_ms <= self.qos_ms).sum()) / self.n if self.n else 1.0

    def percentile(self, p: float) -> float:
        if self.completed < self.n:  # aborted: unfinished queries have infinite latency
            lat = np.concatenate([self.latency_ms, np.full(self.n - self.completed, np.inf)])
        else:
            lat = self.latency_ms
        return float(np.percentile(lat, p, method="higher")) if lat.size else 0.0

    @property
    def utilisation(self) -> np.ndarray:
        return self.busy_ms / self.makespan_ms if self.makespan_ms > 0 else np.zeros_like(self.busy_ms)

    def summary(self) -> dict:
        return {
            "queries": self.n,
            "completed": self.completed,
            "p50_ms": _r(self.percentile(50)),
            "p99_ms": _r(self.percentile(99)),
            "p999_ms": _r(self.percentile(99.9)),
            "mean_wait_ms": _r(float(self.wait_ms.mean()) if self.wait_ms.size else 0.0),
            "qos_met_fraction": round(self.qos_met_fraction, 5),
            "mean_queue": round(self.mean_queue, 3),
            "max_queue": self.max_queue,
            "drain_ms": _r(self.drain_ms),
            "unfinished_at_last_arrival": self.unfinished_at_last_arrival,
            "aborted": self.aborted,
        }


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 3)


_INF = float("inf")


class PoolTimers:
    """The simulator's third event source: timed callbacks that change the pool.

    The loop asks :meth:`next_ms` for the next firing time, calls :meth:`fire` then (after
    any completion or arrival at the same time), and tells :meth:`stopped` when a drained
    instance has finished its last query. :meth:`fire` acts on the
    :class:`~kairos.dispatch.dispatcher.Dispatcher` it is handed (``add_instance``,
    ``instance_up``, ``drain``) and may read how many queries have arrived so far."""

    def next_ms(self) -> float:
        return _INF

    def fire(self, now_ms: float, dispatcher: Dispatcher, arrived: int) -> None:
        """Handle every timer due at ``now_ms``."""

    def stopped(self, j: int, now_ms: float) -> None:
        """Drained instance ``j`` finished its last query at ``now_ms``."""


class _Recorder:
    """What a run records per query and per instance (times in ms), kept apart from the loop.
    (The central queue's time-weighted length is summed by the loop itself, in locals: it
    changes at every event.)"""

    __slots__ = ("start", "finish", "served_by", "busy_ms", "served", "max_held")

    def __init__(self, n_queries: int, n_instances: int):
        self.start = [0.0] * n_queries
        self.finish = [-1.0] * n_queries
        self.served_by = [-1] * n_queries
        self.busy_ms = [0.0] * n_instances
        self.served = [0] * n_instances
        self.max_held = [1] * n_instances  # most queries an instance held at once

    def grow(self, n_instances: int) -> None:
        """Instances joined the pool: per-instance records for them (in place)."""
        for _ in range(n_instances - len(self.busy_ms)):
            self.busy_ms.append(0.0)
            self.served.append(0)
            self.max_held.append(1)


def simulate(
    profile: Profile,
    config: dict[str, int],
    policy: Policy,
    workload: Workload,
    qos_ms: float,
    rate: float | None = None,
    abort_violations: int | None = None,
    seed: int = 0,
    check: bool = False,
    size_probs: np.ndarray | None = None,
    handoff_ms: float = 0.0,
    timers: PoolTimers | None = None,
) -> SimResult:
    """Simulate ``workload`` at ``rate`` queries/s on ``config`` under ``policy``.

    Two event sources -- the workload's arrivals, in time order, and a heap of
    completions -- and optionally a third, ``timers`` (timed callbacks that resize the
    pool: an elastic controller, instances becoming ready), feed one :class:`~kairos.dispatch.dispatcher.Dispatcher`, the same
    decision step the gateway runs. At equal times a completion is handled before an
    arrival, so the instance it frees is there for the arriving query. After each event
    the dispatcher consults the policy (if it is due) and the pairs that start now are
    given their pre-drawn service time for the instance's type; the policy only ever
    sees the profile's estimates.

    abort_violations: stop as soon as more than this many queries have missed QoS
        (the run can no longer pass); the result is marked ``aborted``.
    size_probs: the size-bucket mix, for policies that use it (None: unknown).
    check: verify the policy's decisions (see :class:`~kairos.dispatch.dispatcher.Dispatcher`).
    timers: see :class:`PoolTimers`; at equal times they fire after completions and
        arrivals. Per-instance figures of the result then cover every instance that was
        ever in the pool, in the order they joined.
    handoff_ms: time from the decision to the start of a query given to an *idle*
        instance, during which the instance is held and does nothing: a live gateway's
        round trip (the result back, the dispatch, the query out, the worker waking up).
        A query queued on a busy instance (binding policies, ``ahead_ms``) starts the
        moment the one before it ends, as a gateway that sends it ahead does. The policy
        is not told (a learning policy sees it in the service times it observes).
    """
    t0 = time.perf_counter()
    handoff = float(handoff_ms)
    if not 0.0 <= handoff < float("inf"):
        raise ValueError(f"handoff_ms must be a finite number >= 0, got {handoff_ms!r}")
    type_of = pool_type_ids(profile, config)
    n_inst = len(type_of)
    policy.bind(DispatchContext(profile, type_of, qos_ms, seed, size_probs))
    arr = workload.arrivals_ms(rate)
    arr_l = arr.tolist()
    N = len(arr_l)
    pool = Pool(type_of, profile.mean_ms.tolist(), ArrayQueries(workload.buckets, arr))
    # svc[q][col[j]]: query q's actual service time on instance j. A fixed pool has a column
    # per instance; a pool that changes a column per type (col is then the pool's type_of)
    if timers is None:
        svc = workload.service_ms[:, type_of].tolist() if N else []
        col = list(range(n_inst))
    else:
        svc = workload.service_ms.tolist()
        col = pool.type_of
    disp = Dispatcher(policy, pool, check=check)
    rec = _Recorder(N, n_inst)
    start, finish, served_by = rec.start, rec.finish, rec.served_by
    busy_ms, served, max_held = rec.busy_ms, rec.served, rec.max_held
    held, running = pool.held, pool.running
    track_held = disp.binds or disp.ahead  # central-queue policies hold one query at most
    idle_only = not track_held  # consulted only while an instance is idle
    held_extra: list[float] = [0.0] * N if handoff else []  # the handoff each query held its instance for
    queue = disp.queue  # the dispatcher changes it in place
    submit, step, complete = queue.append, disp.step, disp.complete
    observes, observed = disp.observes, disp.observed

    next_timer = timers.next_ms() if timers is not None else _INF
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    qos = float(qos_ms)
    limit = abort_violations if abort_violations is not None else N + 1
    violations = 0
    completed = 0
    i = 0
    now = 0.0
    aborted = False
    q_area = q_last = 0.0
    q_max = 0

    next_arrival = arr_l[0] if N else _INF
    next_other = min(next_arrival, next_timer)  # the next arrival or timer, whichever is first
    while i < N or heap:
        if heap and heap[0][0] <= next_other:  # a completion (first at equal times)
            now, j, qid = pop(heap)
            q_area += len(queue) * (now - q_last)
            q_last = now
            finish[qid] = now
            served_by[qid] = j
            served[j] += 1
            completed += 1
            if now - arr_l[qid] > qos:
                violations += 1
                if violations > limit:
                    aborted = True
                    break
            if observes:
                observed(j, qid, svc[qid][col[j]] + held_extra[qid] if handoff else svc[qid][col[j]])
            nxt = complete(j, now)
            if nxt >= 0:
                start[nxt] = now
                s = svc[nxt][col[j]]
                busy_ms[j] += s
                push(heap, (now + s, j, nxt))
            elif timers is not None and j in disp.retired:
                timers.stopped(j, now)
            if not queue:
                continue
        elif next_arrival <= next_timer:  # an arrival
            now = next_arrival
            q_area += len(queue) * (now - q_last)
            q_last = now
            submit(i)
            i += 1
            next_arrival = arr_l[i] if i < N else _INF
            next_other = next_arrival if next_arrival < next_timer else next_timer
        else:  # a timer: the pool may change
            assert timers is not None  # next_timer is finite only with timers
            now = next_timer
            q_area += len(queue) * (now - q_last)
            q_last = now
            timers.fire(now, disp, i)
            next_timer = timers.next_ms()
            next_other = next_arrival if next_arrival < next_timer else next_timer
            rec.grow(pool.n)
            if not queue:
                continue
        if idle_only and pool.n_idle == 0:
            if len(queue) > q_max:
                q_max = len(queue)
            continue
        for qid, j in step(now):
            if track_held and held[j] > max_held[j]:
                max_held[j] = held[j]
            if running[j] == qid:  # it starts now (else j holds it next in line)
                start[qid] = now
                s = svc[qid][col[j]]
                if handoff:
                    s += handoff
                    held_extra[qid] = handoff
                busy_ms[j] += s
                push(heap, (now + s, j, qid))
        if len(queue) > q_max:
            q_max = len(queue)

    fin = np.array(finish)
    done = fin >= 0
    lat = fin[done] - arr[done]
    wait = np.array(start)[done] - arr[done]
    makespan = float(max(fin.max(), arr[-1])) if N else 0.0
    last_arrival = float(arr[-1]) if N else 0.0
    return SimResult(
        n=N,
        completed=int(done.sum()),
        latency_ms=lat,
        wait_ms=wait,
        served_by=np.array(served_by),
        qos_ms=qos,
        makespan_ms=makespan,
        busy_ms=np.minimum(np.array(busy_ms), makespan),
        served_count=np.array(served),
        max_held=np.array(max_held),
        mean_queue=q_area / q_last if q_last > 0 else 0.0,  # q_area: the queue length's integral
        max_queue=q_max,
        aborted=aborted,
        violations=violations,
        elapsed_s=time.perf_counter() - t0,
        rate=rate,
        drain_ms=makespan - last_arrival if not aborted else float("nan"),
        unfinished_at_last_arrival=int((fin > last_arrival).sum() + (~done).sum()) if N else 0,
    )
