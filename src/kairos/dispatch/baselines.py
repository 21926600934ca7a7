"""Baseline dispatch policies the paper (and today's serving systems) compare against.

- ``fcfs``: one FIFO queue, the head query to the first free instance (RIBBON).
- ``deeprecsys``: a size threshold; queries above it go to the fastest type, the
  rest to the other types, FIFO within each class (DeepRecSys). The threshold is
  tuned by hill-climbing (:func:`kairos.sim.search.tune_size_threshold`).
- ``clockwork``: earliest deadline first; each query to the instance (busy or idle)
  that would finish it earliest, reserving that instance. Clockwork rejects
  requests that cannot meet their deadline; we never drop a query, so a query that
  can no longer meet QoS anywhere is moved behind all feasible ones and served by an
  instance that would otherwise stay idle (it counts as a QoS miss).
- ``least-loaded``: each arriving query to the instance with the least outstanding
  queries per unit of speed (SkyServe's instance-aware least-load); instances keep
  their own FIFO queues.
- ``p2c``: power of two choices: two random instances, the one holding fewer queries
  (Ray Serve's default router); instances keep their own FIFO queues.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from kairos.dispatch.base import DispatchContext, Policy


def _idle_instances(pool) -> list[int]:
    busy = pool.busy
    return [j for j in range(len(busy)) if not busy[j]]


class FCFSPolicy(Policy):
    name = "fcfs"

    def dispatch(self, now, queue, pool):
        idle = _idle_instances(pool)
        return list(zip(queue, idle))


class DeepRecSysPolicy(Policy):
    name = "deeprecsys"
    tuned_size_option = "threshold"

    def __init__(self, threshold: int | None = None):
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, Integral) or threshold < 1
        ):
            raise ValueError(f"threshold must be a query size >= 1 (or None: tuned), got {threshold!r}")
        self.threshold: int | None = threshold

    def describe(self) -> dict:
        return {"threshold": self.threshold}

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        prof = ctx.profile
        present = ctx.present_types()
        self.fast_type = min(present, key=lambda t: prof.mean_ms[t, -1])
        self.is_fast = [t == self.fast_type for t in self.type_of]
        self.has_slow = len(present) > 1
        if self.threshold is None:
            self.threshold = self.default_size_threshold(ctx)
        self.batches = prof.batches

    @classmethod
    def default_size_threshold(cls, ctx: DispatchContext) -> int:
        """Largest size every slower type serves within QoS on average (hill-climbing start)."""
        prof = ctx.profile
        present = ctx.present_types()
        fast = min(present, key=lambda t: prof.mean_ms[t, -1])
        slow = [t for t in present if t != fast]
        if not slow:
            return int(prof.batches[-1])
        ok = np.all(prof.mean_ms[slow] <= ctx.qos_ms / 2, axis=0)
        k = np.flatnonzero(ok)
        return int(prof.batches[k[-1]]) if k.size else int(prof.batches[0])

    def dispatch(self, now, queue, pool):
        idle = _idle_instances(pool)
        fast_idle = [j for j in idle if self.is_fast[j]]
        slow_idle = [j for j in idle if not self.is_fast[j]]
        out = []
        th = self.threshold
        batches = self.batches
        for q in queue:
            large = batches[pool.q_bucket[q]] > th or not self.has_slow
            pick = fast_idle if large else slow_idle
            if pick:
                out.append((q, pick.pop(0)))
                if not fast_idle and not slow_idle:
                    break
        return out


class ClockworkPolicy(Policy):
    name = "clockwork"

    def dispatch(self, now, queue, pool):
        # Uniform QoS: deadline order is arrival order, so the queue is already EDF.
        free = [max(f, now) for f in pool.free_at]
        busy = pool.busy
        up = pool.up
        n_idle = pool.n_idle
        out = []
        late = []
        T = self.qos
        est = self.est
        for q in queue:
            if n_idle == 0:
                break
            b = pool.q_bucket[q]
            deadline = pool.q_arrival[q] + T
            best, best_f = -1, float("inf")
            for j, t in enumerate(self.type_of):
                f = free[j] + est[t][b]
                if f < best_f and up[j]:
                    best, best_f = j, f
            if best < 0:
                break
            if best_f > deadline:
                late.append(q)
                continue
            free[best] = best_f  # reserve it, whether it starts now or later
            if not busy[best] and all(p[1] != best for p in out):
                out.append((q, best))
                n_idle -= 1
        if late and n_idle > 0:
            taken = {j for _, j in out}
            spare = [j for j in range(self.n) if not busy[j] and j not in taken and free[j] <= now]
            for q, j in zip(late, spare):
                out.append((q, j))
        return out


class LeastLoadedPolicy(Policy):
    name = "least-loaded"
    binds_on_arrival = True

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        # speed of a type: queries per ms at the median measured size
        mid = ctx.profile.mean_ms.shape[1] // 2
        self.speed = [1.0 / ctx.profile.mean_ms[t, mid] for t in self.type_of]

    def dispatch(self, now, queue, pool):
        held = list(pool.held)
        up = pool.up
        out = []
        for q in queue:
            j = min(
                (j for j in range(self.n) if up[j]),
                key=lambda j: ((held[j] + 1) / self.speed[j], -self.speed[j]),
                default=-1,
            )
            if j < 0:
                break
            held[j] += 1
            out.append((q, j))
        return out


class PowerOfTwoPolicy(Policy):
    name = "p2c"
    binds_on_arrival = True

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        self.rng = np.random.default_rng(ctx.seed + 104729)

    def dispatch(self, now, queue, pool):
        held = list(pool.held)
        alive = [j for j in range(self.n) if pool.up[j]]
        out = []
        if not alive:
            return out
        for q in queue:
            if len(alive) == 1:
                j = alive[0]
            else:
                a, b = self.rng.choice(len(alive), 2, replace=False)
                a, b = alive[a], alive[b]
                j = a if held[a] <= held[b] else b
            held[j] += 1
            out.append((q, j))
        return out
