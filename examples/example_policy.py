"""An example dispatch policy: shortest expected job first, on the fastest idle instance.

Not part of the product: tests/test_contributing_example.py registers it and runs it in the
simulator and in a live gateway. CONTRIBUTING.md shows how it would join the product (this
module under src/kairos/dispatch/, plus one ``PolicySpec`` line in dispatch/registry.py).
"""

from __future__ import annotations

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.pool import Pool


class ShortestJobFirst(Policy):
    """A central-queue policy: whenever instances are idle, the queued queries with the shortest
    expected service time (on the fastest type in the pool) start, the shortest on the fastest
    idle instance. Queries of equal size keep their arrival order."""

    name = "sjf"

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        # instances from fastest to slowest (mean estimated service time over the size buckets)
        self.by_speed = sorted(range(self.n), key=lambda j: (self.est_np[self.type_of[j]].mean(), j))
        self.shortest_ms = self.est_np.min(axis=0).tolist()  # per size bucket, on the fastest type

    def dispatch(self, now: float, queue: list[int], pool: Pool) -> list[tuple[int, int]]:
        idle = [j for j in self.by_speed if not pool.busy[j]]  # a down instance counts as busy
        bucket = pool.q_bucket
        shortest = sorted(queue, key=lambda q: (self.shortest_ms[bucket[q]], q))[: len(idle)]
        return list(zip(shortest, idle))
