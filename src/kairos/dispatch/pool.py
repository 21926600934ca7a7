"""The pool of instances as a dispatcher sees it, and its state transitions.

The simulator and the serving gateway both drive a :class:`Pool`: they call
:meth:`Pool.assign` for each pair a policy returns and :meth:`Pool.finish` when an
instance completes; the pool tracks which instance is busy, its estimated free time
(what the policy may use) and any per-instance FIFO queue (binding policies only).
"""

from __future__ import annotations

from collections import deque

import numpy as np


class Pool:
    """Instance states plus the table of queries known to the dispatcher.

    Attributes (read by policies):
        type_of: instance -> type id.
        busy: instance -> serving a query now.
        free_at: instance -> estimated time (ms) it will have finished everything it
            holds (its running query and its local queue); <= now when idle.
        held: instance -> number of queries it holds (running + local queue).
        q_bucket, q_arrival: query id -> size bucket, arrival time (ms). Any
            indexable (numpy arrays in the simulator, dicts in the gateway).
        n_idle: number of idle instances.
    """

    __slots__ = ("type_of", "busy", "free_at", "held", "local", "running", "q_bucket", "q_arrival",
                 "est", "n_idle", "n", "up")

    def __init__(self, type_of, est_ms, q_bucket, q_arrival):
        self.type_of = list(type_of)
        self.n = len(self.type_of)
        self.busy = [False] * self.n
        self.up = [True] * self.n
        self.free_at = [0.0] * self.n
        self.held = [0] * self.n
        self.local = [deque() for _ in range(self.n)]
        self.running = [-1] * self.n
        self.q_bucket = q_bucket
        self.q_arrival = q_arrival
        self.est = est_ms  # [types][buckets] list of lists, estimated service ms
        self.n_idle = self.n

    def queue_arrays(self, queue: list[int]):
        """(buckets, arrival times) of the queued ids as numpy arrays, oldest first."""
        if isinstance(self.q_bucket, np.ndarray):
            idx = np.array(queue)
            return self.q_bucket.take(idx), self.q_arrival.take(idx)
        m = len(queue)
        return (np.fromiter((self.q_bucket[q] for q in queue), np.int64, m),
                np.fromiter((self.q_arrival[q] for q in queue), float, m))

    def set_estimates(self, est_ms) -> None:
        """Replace the [types][buckets] service-time estimates used for ``free_at`` from now
        on (a learning policy's corrected means); queries already held keep their estimates."""
        for t, row in enumerate(est_ms):
            self.est[t] = list(row)

    def assign(self, qid: int, j: int, now: float) -> bool:
        """Give query ``qid`` to instance ``j``. Returns True if it starts now."""
        s = self.est[self.type_of[j]][self.q_bucket[qid]]
        self.held[j] += 1
        if not self.busy[j]:
            if not self.up[j]:
                raise RuntimeError(f"instance {j} is down")
            self.busy[j] = True
            self.n_idle -= 1
            self.running[j] = qid
            self.free_at[j] = now + s
            return True
        self.local[j].append(qid)
        self.free_at[j] = max(self.free_at[j], now) + s
        return False

    def finish(self, j: int, now: float) -> int:
        """Instance ``j`` completed its running query. Returns the next query it
        starts from its local queue, or -1 if it is now idle."""
        self.held[j] -= 1
        loc = self.local[j]
        if loc:
            qid = loc.popleft()
            self.running[j] = qid
            e = self.est[self.type_of[j]]
            self.free_at[j] = now + e[self.q_bucket[qid]] + sum(e[self.q_bucket[q]] for q in loc)
            return qid
        self.busy[j] = False
        self.running[j] = -1
        self.n_idle += 1
        self.free_at[j] = now
        return -1

    def take_down(self, j: int) -> list[int]:
        """Instance ``j`` failed: returns the queries it held (running first) for re-dispatch."""
        lost = ([self.running[j]] if self.running[j] >= 0 else []) + list(self.local[j])
        if self.busy[j]:
            self.n_idle += 1
        self.local[j].clear()
        self.busy[j] = True  # a down instance is never idle
        self.n_idle -= 1
        self.up[j] = False
        self.running[j] = -1
        self.held[j] = 0
        self.free_at[j] = float("inf")
        return lost

    def bring_up(self, j: int, now: float) -> None:
        if self.up[j]:
            return
        self.up[j] = True
        self.busy[j] = False
        self.n_idle += 1
        self.free_at[j] = now
