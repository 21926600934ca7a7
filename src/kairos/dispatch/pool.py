"""The pool of instances as a dispatcher sees it, and its state transitions.

The :class:`~kairos.dispatch.dispatcher.Dispatcher` (used by the simulator and the
gateway alike) drives a :class:`Pool`: it calls :meth:`Pool.assign` for each pair a
policy returns and :meth:`Pool.finish` when an instance completes; the pool tracks which instance is busy, its estimated free time
(what the policy may use) and any per-instance FIFO queue (binding policies only).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from kairos.profiles.profile import Profile

# the estimated free time of an instance that is down (failed, starting or drained): later
# than any time a run reaches, and finite, so that a policy's arithmetic on remaining times
# (e.g. 0 x remaining) stays a number
NEVER = 1e18


class QueryTable:
    """Size bucket and arrival time (ms) of every query the dispatcher knows, by query id.

    ``bucket`` and ``arrival`` are indexable by id (policies read them in their hot
    loops); :meth:`arrays` gathers them for a list of ids. Two layouts behind one
    contract: :class:`ArrayQueries` (every query known up front: the simulator) and
    :class:`DictQueries` (queries come and go: the gateway).
    """

    bucket: Any
    arrival: Any

    def arrays(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(buckets, arrival times) of ``ids`` as numpy arrays, in the order given."""
        raise NotImplementedError


class ArrayQueries(QueryTable):
    """Queries numbered 0..N-1, known in advance, in numpy arrays."""

    def __init__(self, bucket: np.ndarray, arrival: np.ndarray):
        self.bucket = np.asarray(bucket)
        self.arrival = np.asarray(arrival, dtype=float)

    def arrays(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array(ids)
        return self.bucket.take(idx), self.arrival.take(idx)


class DictQueries(QueryTable):
    """Queries added when they arrive and removed when they are done (dicts by id)."""

    def __init__(self, bucket: dict[int, int] | None = None, arrival: dict[int, float] | None = None):
        self.bucket = {} if bucket is None else bucket
        self.arrival = {} if arrival is None else arrival

    def add(self, qid: int, bucket: int, arrival_ms: float) -> None:
        self.bucket[qid] = bucket
        self.arrival[qid] = arrival_ms

    def remove(self, qid: int) -> None:
        self.bucket.pop(qid, None)
        self.arrival.pop(qid, None)

    def arrays(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        m = len(ids)
        return (
            np.fromiter((self.bucket[q] for q in ids), np.int64, m),
            np.fromiter((self.arrival[q] for q in ids), float, m),
        )


class Pool:
    """Instance states plus the table of queries known to the dispatcher.

    Attributes (read by policies):
        type_of: instance -> type id.
        busy: instance -> serving a query now (a down instance counts as busy: never idle).
        up: instance -> able to take queries.
        free_at: instance -> estimated time (ms) it will have finished everything it
            holds (its running query and its local queue); <= now when idle.
        held: instance -> number of queries it holds (running + local queue).
        local: instance -> its own FIFO queue (binding policies, or a query sent ahead).
        running: instance -> the query it serves now, or -1.
        queries: the :class:`QueryTable`; ``q_bucket`` and ``q_arrival`` are its
            ``bucket`` and ``arrival`` (query id -> size bucket, arrival time in ms).
        est: [types][buckets] estimated service ms used for ``free_at``.
        n_idle: number of idle instances; n: number of instances.
    """

    __slots__ = (
        "type_of",
        "busy",
        "free_at",
        "held",
        "local",
        "running",
        "queries",
        "q_bucket",
        "q_arrival",
        "est",
        "n_idle",
        "n",
        "up",
    )

    def __init__(self, type_of: list[int], est_ms: list[list[float]], queries: QueryTable):
        self.type_of = list(type_of)
        self.n = len(self.type_of)
        self.busy = [False] * self.n
        self.up = [True] * self.n
        self.free_at = [0.0] * self.n
        self.held = [0] * self.n
        self.local: list[deque[int]] = [deque() for _ in range(self.n)]
        self.running = [-1] * self.n
        self.queries = queries
        self.q_bucket = queries.bucket
        self.q_arrival = queries.arrival
        self.est = est_ms  # [types][buckets] list of lists, estimated service ms
        self.n_idle = self.n

    def queue_arrays(self, queue: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(buckets, arrival times) of the queued ids as numpy arrays, oldest first."""
        return self.queries.arrays(queue)

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
        starts from its local queue, or -1 if it is now idle (or, draining, stopped)."""
        self.held[j] -= 1
        loc = self.local[j]
        if not self.up[j]:  # draining: it finished its last query and stays out of the pool
            self.running[j] = -1
            return -1
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
        self.free_at[j] = NEVER
        return lost

    def add_instance(self, type_id: int) -> int:
        """A new instance of type ``type_id`` joins the pool, down (starting) until
        :meth:`bring_up`. Returns its index (indices are never reused)."""
        j = self.n
        self.type_of.append(type_id)
        self.busy.append(True)  # not idle until it is up
        self.up.append(False)
        self.free_at.append(NEVER)
        self.held.append(0)
        self.local.append(deque())
        self.running.append(-1)
        self.n += 1
        return j

    def drain(self, j: int) -> list[int]:
        """Instance ``j`` leaves the pool: it takes no new query and finishes the one it runs
        (``running[j]``; :meth:`finish` then leaves it stopped). Returns the queries waiting
        in its own queue, which have not started, for the caller to dispatch again."""
        waiting = list(self.local[j])
        self.local[j].clear()
        self.held[j] -= len(waiting)
        if self.up[j] and not self.busy[j]:
            self.n_idle -= 1
        self.busy[j] = True  # never idle again
        self.up[j] = False
        self.free_at[j] = NEVER
        return waiting

    def bring_up(self, j: int, now: float) -> None:
        if self.up[j]:
            return
        self.up[j] = True
        self.busy[j] = False
        self.n_idle += 1
        self.free_at[j] = now


def pool_type_ids(profile: Profile, config: dict[str, int]) -> list[int]:
    """Instance -> type id (profile order), instances listed in config order."""
    out = []
    for name, count in config.items():
        t = profile.type_index(name)
        out.extend([t] * count)
    return out
