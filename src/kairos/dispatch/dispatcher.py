"""The decision step shared by the simulator and the gateway.

One :class:`Dispatcher` owns the central queue, the :class:`~kairos.dispatch.pool.Pool`
and the bound :class:`~kairos.dispatch.base.Policy`. Its driver (the simulator's event
loop, or the gateway's asyncio loop) reports events and acts on what it is told:

    d.submit(qid)                       # a query arrived (its bucket and arrival are in pool.queries)
    for qid, j in d.step(now):          # consult the policy, apply its pairs
        ...                             # d.pool.running[j] == qid: run it now; else j holds it next
    if d.observes: d.observed(j, qid, service_ms)   # a learning policy sees the service time
    nxt = d.complete(j, now)            # j finished; nxt: the query it starts next, or -1
    lost = d.instance_down(j)           # j failed: the queries it held, to requeue
    d.instance_up(j, now)
    j = d.add_instance(type_id)         # elastic pools: a new instance, down until instance_up
    d.drain(j)                          # ... and one leaving, once d.is_stopped(j)

so that the gateway does what the simulator does by construction. When the policy is
consulted: a binding policy (``binds_on_arrival``) at every event with a queued query; a
central-queue policy only while some instance is idle, or always if it may queue a
query ahead on a busy instance (``ahead_ms > 0``).
"""

from __future__ import annotations

from dataclasses import replace

from kairos.dispatch.base import Policy
from kairos.dispatch.pool import Pool


class Dispatcher:
    """Central queue + pool + policy. ``check=True`` verifies every decision of the policy
    (each pair names a queued query not assigned before and an instance that is up; a
    central-queue policy gives only idle instances, or one about to finish when it queues
    ahead) and raises AssertionError otherwise."""

    __slots__ = (
        "policy",
        "pool",
        "queue",
        "binds",
        "ahead",
        "observes",
        "check",
        "_assigned",
        "complete",
        "retired",
        "any_state",
        "_assign",
    )

    def __init__(self, policy: Policy, pool: Pool, check: bool = False):
        self.policy = policy
        self.pool = pool
        # waiting query ids, oldest (lowest id) first; always this one list (changed in place),
        # so a driver may hold on to it
        self.queue: list[int] = []
        self.binds = policy.binds_on_arrival
        self.ahead = policy.ahead_ms > 0
        self.any_state = self.binds or self.ahead  # consulted whether or not an instance is idle
        self.observes = policy.observes
        self.check = check
        self._assigned: set[int] = set()
        # complete(j, now) -> int: instance j finished its running query; returns the query
        # it starts next from its own queue, or -1 (now idle). The pool's own transition.
        self.complete = pool.finish
        self._assign = pool.assign
        self.retired: set[int] = set()  # drained instances (their indices are never reused)

    def submit(self, qid: int) -> None:
        """A query arrived; ids grow with arrival time."""
        self.queue.append(qid)

    def requeue(self, qids: list[int]) -> None:
        """Queries taken back from a failed instance wait again, in arrival (id) order."""
        if qids:
            self.queue[:] = sorted(self.queue + qids)
            if self.check:
                self._assigned.difference_update(qids)

    def withdraw(self, qid: int) -> bool:
        """Remove a waiting query (its client gave up). False if it is not waiting here."""
        try:
            self.queue.remove(qid)
        except ValueError:
            return False
        return True

    def due(self) -> bool:
        """Would :meth:`step` consult the policy now?"""
        return bool(self.queue) and (self.any_state or self.pool.n_idle > 0)

    def step(self, now: float) -> list[tuple[int, int]]:
        """Consult the policy and apply its pairs ``[(query, instance), ...]``. A pair starts
        now when ``pool.running[instance] == query`` afterwards; otherwise its (busy)
        instance holds the query next in its own queue."""
        queue = self.queue
        pool = self.pool
        if not queue or not (self.any_state or pool.n_idle):
            return []
        pairs = self.policy.dispatch(now, queue, pool)
        if not pairs:
            return []
        if self.check:
            self._check(pairs)
        if len(pairs) == len(queue):
            queue.clear()
        elif len(pairs) == 1:
            queue.remove(pairs[0][0])
        else:
            taken = {q for q, _ in pairs}
            queue[:] = [q for q in queue if q not in taken]
        assign = self._assign
        for qid, j in pairs:
            assign(qid, j, now)
        return pairs

    def observed(self, j: int, qid: int, service_ms: float) -> None:
        """Instance ``j`` finished ``qid``, which held it for ``service_ms``: tell a learning
        policy (call only when :attr:`observes`, before :attr:`complete`)."""
        self.policy.observe(self.pool.q_bucket[qid], j, service_ms)

    def instance_down(self, j: int) -> list[int]:
        """Instance ``j`` failed: the queries it held (running first). The caller decides
        which to :meth:`requeue` (a query may have run out of attempts)."""
        return self.pool.take_down(j)

    def instance_up(self, j: int, now: float) -> None:
        """Instance ``j`` is ready (started, or restarted after a failure); a drained one stays out."""
        if j not in self.retired:
            self.pool.bring_up(j, now)

    # -- elastic pools ------------------------------------------------------------
    def add_instance(self, type_id: int) -> int:
        """A new instance of type ``type_id`` is starting: it joins the pool down and is given
        queries once :meth:`instance_up` says it is ready. Returns its index."""
        j = self.pool.add_instance(type_id)
        self._pool_changed()
        return j

    def drain(self, j: int) -> None:
        """Instance ``j`` leaves: no new query; the one it runs finishes (then
        :meth:`is_stopped` is true and it can be released); queries waiting in its own
        queue go back to the central queue."""
        self.requeue(self.pool.drain(j))
        self.retired.add(j)
        self._pool_changed()

    def is_stopped(self, j: int) -> bool:
        """Drained and holding nothing: safe to stop and stop paying for."""
        return j in self.retired and self.pool.running[j] < 0 and self.pool.held[j] <= 0

    def counts(self) -> tuple[dict[int, int], dict[int, int]]:
        """Instances per type id: in service (up), and on their way (down but not drained:
        starting, or restarting after a failure). What an autoscaler is told the pool holds."""
        pool = self.pool
        ready: dict[int, int] = {}
        starting: dict[int, int] = {}
        for j, t in enumerate(pool.type_of):
            if j in self.retired:
                continue
            side = ready if pool.up[j] else starting
            side[t] = side.get(t, 0) + 1
        return ready, starting

    def least_loaded(self, type_id: int, count: int) -> list[int]:
        """Up to ``count`` instances of ``type_id`` in service, fewest queries held first (then
        the lowest index): the ones a scale-down drains."""
        pool = self.pool
        live = [j for j, t in enumerate(pool.type_of) if t == type_id and pool.up[j] and j not in self.retired]
        live.sort(key=lambda j: (pool.held[j], j))
        return live[:count]

    def _pool_changed(self) -> None:
        ctx = self.policy.ctx
        self.policy.pool_changed(replace(ctx, type_of=list(self.pool.type_of), retired=frozenset(self.retired)))

    def _check(self, pairs: list[tuple[int, int]]) -> None:
        pool = self.pool
        qset = set(self.queue)
        seen = set()
        for qid, j in pairs:
            if qid not in qset:
                raise AssertionError(f"policy assigned query {qid}, which is not queued")
            if qid in self._assigned:
                raise AssertionError(f"policy assigned query {qid} twice")
            self._assigned.add(qid)
            if not pool.up[j]:
                raise AssertionError(f"policy assigned query {qid} to failed instance {j}")
            if not self.binds:
                if j in seen or (pool.busy[j] and not (self.ahead and pool.held[j] == 1)):
                    raise AssertionError(f"central-queue policy gave busy instance {j} query {qid}")
                seen.add(j)
