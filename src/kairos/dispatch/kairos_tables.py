"""What Kairos's matching knows about a pool, laid out for its two paths.

- :class:`TypeGroups`: the pool's instances grouped by type (``type_of``: instance j ->
  type t), as index arrays and as runs of consecutive instances of one type.
- :class:`ServiceTables`: three tables per type t and size bucket b -- ``mean`` and
  ``tail`` (estimated service ms; the tail a quantile, never below the mean) and
  ``cost`` = C_t / T * mean (the matching's cost of serving, in units of the QoS target
  T) -- in the layouts the dispatcher reads: [buckets, instances] arrays for the
  matching's [queries, instances] matrices (one row gather), per-bucket lists by type
  for the one-query path.

Both are functions of (estimates, coefficients C, the pool's ``type_of``) only: a
policy builds them in one place and rebuilds them when any of those change.
"""

from __future__ import annotations

import numpy as np


class TypeGroups:
    """A pool's instances grouped by type, instances that left it (``retired``) left out.

    Attributes:
        types: instance -> type id, as an index array (every instance index).
        present: the type ids with at least one instance in the pool, ascending.
        members: per present type, its instances' indices (ascending).
        runs: (t, a, e) for every maximal run a..e-1 of consecutive instances of type t,
            ordered by type then index; one run per type when instances of a type are
            listed together (the simulator and the gateway list them in configuration order).
        largest: the most instances of one type.
    """

    def __init__(self, type_of: list[int], retired=frozenset()):
        self.types = np.asarray(type_of, dtype=np.int64)
        kept = [t if j not in retired else -1 for j, t in enumerate(type_of)]  # -1: not in the pool
        self.present = sorted(set(kept) - {-1})
        kept_np = np.asarray(kept, dtype=np.int64)
        self.members = [np.flatnonzero(kept_np == t) for t in self.present]
        self.largest = max((len(ix) for ix in self.members), default=0)
        runs = []
        a = 0
        for j in range(1, len(kept) + 1):
            if j == len(kept) or kept[j] != kept[a]:
                if kept[a] >= 0:
                    runs.append((kept[a], a, j))
                a = j
        self.runs = sorted(runs)


class ServiceTables:
    """Mean, tail and cost per (type, bucket), and the per-instance layouts built from them.

    Attributes ([types, buckets] arrays; ``t`` type, ``b`` bucket, ``j`` instance):
        mean, tail: estimated service ms.
        cost: C_t / T * mean.
        Cn_j: [instances] C_j / T, the cost of one ms of instance j's time.
        mean_bj, tail_bj, cost_bj: [buckets, instances] the same tables per instance, so
            that ``gather(table, buckets)`` builds a [queries, instances] matrix.
        Cn_t: per type C_t / T (a list).
        mean_bt, tail_bt, cost_bt: per bucket, per type (lists of lists).
    """

    def __init__(self, mean_ms: np.ndarray, tail_ms: np.ndarray, C: np.ndarray, qos_ms: float, types: np.ndarray):
        Cn = np.asarray(C, dtype=float) / qos_ms
        self.mean = mean_ms
        self.tail = tail_ms
        self.cost = Cn[:, None] * mean_ms
        self.Cn_j = Cn[types]
        self.mean_bj = np.ascontiguousarray(mean_ms[types].T)
        self.tail_bj = np.ascontiguousarray(tail_ms[types].T)
        self.cost_bj = np.ascontiguousarray(self.cost[types].T)
        self.Cn_t = Cn.tolist()
        self.mean_bt = mean_ms.T.tolist()
        self.tail_bt = tail_ms.T.tolist()
        self.cost_bt = self.cost.T.tolist()


def gather(table_bj: np.ndarray, buckets: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
    """[queries, instances] from a [buckets, instances] table: the row of each query's bucket,
    restricted to the instances ``cols`` in that order (None: every instance)."""
    if cols is None:
        return table_bj.take(buckets, axis=0)
    return table_bj[buckets][:, cols]
