"""The discrete-event simulator: events at arrivals and completions, no fixed ticks.

Arrivals come from a :class:`~kairos.workload.Workload`; completions from a heap.
At every event the policy is consulted (central-queue policies only while some
instance is idle); the :class:`~kairos.dispatch.pool.Pool` applies its decisions.
An instance serves one query at a time; its actual service time is the query's
pre-drawn sample for that type, while the policy sees only the profile's estimates.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.pool import Pool
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
    mean_queue: float
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


def pool_type_ids(profile: Profile, config: dict[str, int]) -> list[int]:
    """Instance -> type id (profile order), instances listed in config order."""
    out = []
    for name, count in config.items():
        t = profile.type_index(name)
        out.extend([t] * count)
    return out


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
) -> SimResult:
    """Simulate ``workload`` at ``rate`` queries/s on ``config`` under ``policy``.

    abort_violations: stop as soon as more than this many queries have missed QoS
        (the run can no longer pass); the result is marked ``aborted``.
    size_probs: the size-bucket mix, for policies that use it (None: unknown).
    check: verify the policy's decisions (no busy instance given a query by a
        central-queue policy, no query assigned twice or to a failed instance).
    handoff_ms: time from the decision to the start of a query given to an *idle*
        instance, during which the instance is held and does nothing: a live gateway's
        round trip (the result back, the dispatch, the query out, the worker waking up).
        A query queued on a busy instance (binding policies, ``ahead_ms``) starts the
        moment the one before it ends, as a gateway that sends it ahead does. The policy
        is not told (a learning policy sees it in the service times it observes).
    """
    t0 = time.perf_counter()
    type_of = pool_type_ids(profile, config)
    n_inst = len(type_of)
    policy.bind(DispatchContext(profile, type_of, qos_ms, seed, size_probs))
    arr = workload.arrivals_ms(rate)
    arr_l = arr.tolist()
    N = len(arr_l)
    bucket = workload.buckets
    svc = workload.service_ms[:, type_of].tolist() if N else []  # per query, per instance
    pool = Pool(type_of, profile.mean_ms.tolist(), bucket, arr)
    binds = policy.binds_on_arrival
    ahead = policy.ahead_ms > 0  # consulted while every instance is busy too
    dispatch = policy.dispatch
    observe = policy.observe if policy.observes else None
    handoff = float(handoff_ms)
    if not 0.0 <= handoff < float("inf"):
        raise ValueError(f"handoff_ms must be a finite number >= 0, got {handoff_ms!r}")
    held_extra = [0.0] * N if handoff else None  # the handoff each query held its instance for

    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    queue: list[int] = []
    start = [0.0] * N
    finish = [-1.0] * N
    served_by = [-1] * N
    busy_ms = [0.0] * n_inst
    served = [0] * n_inst
    max_held = [1] * n_inst  # central-queue policies: one running query at most
    qos = float(qos_ms)
    limit = abort_violations if abort_violations is not None else N + 1
    violations = 0
    completed = 0
    q_area = 0.0
    q_max = 0
    last_t = 0.0
    i = 0
    now = 0.0
    aborted = False
    assigned = bytearray(N) if check else None

    while i < N or heap:
        if heap and (i >= N or heap[0][0] <= arr_l[i]):
            now, j, qid = pop(heap)
            finish[qid] = now
            served_by[qid] = j
            if observe is not None:
                observe(bucket[qid], j, svc[qid][j] + held_extra[qid] if handoff else svc[qid][j])
            served[j] += 1
            completed += 1
            if now - arr_l[qid] > qos:
                violations += 1
                if violations > limit:
                    aborted = True
                    break
            nxt = pool.finish(j, now)
            if nxt >= 0:
                start[nxt] = now
                s = svc[nxt][j]
                busy_ms[j] += s
                push(heap, (now + s, j, nxt))
            if not queue:
                continue
        else:
            now = arr_l[i]
            q_area += len(queue) * (now - last_t)
            last_t = now
            queue.append(i)
            i += 1
        if not binds and pool.n_idle == 0 and not ahead:
            if len(queue) > q_max:
                q_max = len(queue)
            continue
        pairs = dispatch(now, queue, pool)
        if pairs:
            if check:
                _check_pairs(pairs, queue, pool, binds, assigned, ahead)
            if len(pairs) == len(queue):
                queue = []
            elif len(pairs) == 1:
                queue.remove(pairs[0][0])
            else:
                taken = {q for q, _ in pairs}
                queue = [q for q in queue if q not in taken]
            for qid, j in pairs:
                if (binds or ahead) and pool.held[j] >= max_held[j]:
                    max_held[j] = pool.held[j] + 1
                if pool.assign(qid, j, now):
                    start[qid] = now
                    s = svc[qid][j]
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
        mean_queue=q_area / last_t if last_t > 0 else 0.0,
        max_queue=q_max,
        aborted=aborted,
        violations=violations,
        elapsed_s=time.perf_counter() - t0,
        rate=rate,
        drain_ms=makespan - last_arrival if not aborted else float("nan"),
        unfinished_at_last_arrival=int((fin > last_arrival).sum() + (~done).sum()) if N else 0,
    )


def _check_pairs(pairs, queue, pool, binds, assigned, ahead=False) -> None:
    qset = set(queue)
    seen_inst = set()
    for qid, j in pairs:
        if qid not in qset:
            raise AssertionError(f"policy assigned query {qid}, which is not queued")
        if assigned[qid]:
            raise AssertionError(f"policy assigned query {qid} twice")
        assigned[qid] = 1
        if not pool.up[j]:
            raise AssertionError(f"policy assigned query {qid} to failed instance {j}")
        if not binds:
            if j in seen_inst or (pool.busy[j] and not (ahead and pool.held[j] == 1)):
                raise AssertionError(f"central-queue policy gave busy instance {j} query {qid}")
            seen_inst.add(j)
