"""The dispatch-policy interface.

A policy is bound once to a pool (its instance types, the latency profile, the QoS
target) and is then asked, at each decision point (a query arrives, an instance
finishes), which queued queries to start where:

    policy.bind(ctx)
    pairs = policy.dispatch(now_ms, queue, pool)   # [(query id, instance index), ...]

``queue`` lists the ids of waiting queries, oldest first; ``pool`` is the
:class:`~kairos.dispatch.pool.Pool` (instance states, estimated free times, and the
size bucket and arrival time of every query by id). Two kinds of policy:

- central-queue policies (``binds_on_arrival = False``: kairos, fcfs, clockwork,
  deeprecsys) keep queries in one queue and only ever start a query on an *idle*
  instance; they are consulted only when some instance is idle;
- binding policies (``binds_on_arrival = True``: least-loaded, p2c, as in Ray Serve
  or SkyServe) send every query to an instance as soon as it arrives; a busy
  instance keeps it in its own FIFO queue.

A central-queue policy with ``ahead_ms > 0`` may also give a *busy* instance that it
expects to finish within ``ahead_ms`` one query to start next (held in that instance's
queue, as a binding policy's); it is then consulted while no instance is idle too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kairos.profiles.profile import Profile

if TYPE_CHECKING:
    from kairos.dispatch.pool import Pool


@dataclass
class DispatchContext:
    """What a policy is bound to.

    Attributes:
        profile: the latency profile restricted to the pool's instance types; type
            ids index ``profile.types``.
        type_of: instance index -> type id.
        qos_ms: the p99 latency target.
        seed: for policies that randomise.
        size_probs: probability of each size bucket (profile.batches) when the query-size
            mix is known in advance (the simulator, or a gateway told its workload);
            None when unknown.
        retired: instances that have left an elastic pool (their indices are never reused;
            the pool keeps them down for good).
    """

    profile: Profile
    type_of: list[int]
    qos_ms: float
    seed: int = 0
    size_probs: np.ndarray | None = None
    retired: frozenset[int] = frozenset()  # instances removed from the pool for good (elastic pools)

    @property
    def n(self) -> int:
        return len(self.type_of)

    def present_types(self) -> list[int]:
        """Type ids with at least one instance in the pool (retired ones left out)."""
        return sorted({t for j, t in enumerate(self.type_of) if j not in self.retired})

    def type_counts(self) -> np.ndarray:
        """Instances of each type in the pool, retired ones left out."""
        kept = [t for j, t in enumerate(self.type_of) if j not in self.retired] if self.retired else self.type_of
        return np.bincount(np.asarray(kept, dtype=np.int64), minlength=len(self.profile.types))


class Policy:
    """Base class. Subclasses implement :meth:`dispatch` and may extend :meth:`bind`."""

    name = "policy"
    binds_on_arrival = False
    observes = False  # True: call observe() with every completed query's service time
    ahead_ms = 0.0  # > 0: may queue one query on a busy instance about to finish (see above)

    def bind(self, ctx: DispatchContext) -> None:
        self.ctx = ctx
        self.qos = float(ctx.qos_ms)
        self.type_of = list(ctx.type_of)
        self.n = len(self.type_of)
        self.est_np = ctx.profile.mean_ms  # [types, buckets] estimated service ms
        self.est = self.est_np.tolist()

    def dispatch(self, now: float, queue: list[int], pool: Pool) -> list[tuple[int, int]]:
        raise NotImplementedError

    #: the constructor option (if any) holding a query-size threshold that a max-QPS search
    #: tunes for each rate when the user leaves it unset, hill-climbing over the measured
    #: sizes from :meth:`default_size_threshold` (:func:`kairos.sim.search.tune_size_threshold`)
    tuned_size_option: str | None = None

    @classmethod
    def default_size_threshold(cls, ctx: DispatchContext) -> int:
        """Where the tuning of :attr:`tuned_size_option` starts (only for policies that set it)."""
        raise NotImplementedError(f"{cls.__name__} has no size threshold to tune")

    def pool_changed(self, ctx: DispatchContext) -> None:
        """The pool gained or lost instances (``ctx.type_of`` lists every instance index ever
        used, ``ctx.retired`` those gone for good). The default binds afresh; a policy with
        learned state worth keeping overrides it."""
        self.bind(ctx)

    @property
    def wants_offload(self) -> bool:
        """True when the policy has slow work (e.g. an LP of a few ms) that a live gateway
        should run in a helper process rather than on its event loop; the gateway then
        hands it a runner with :meth:`set_offload`. The simulator never does."""
        return False

    def set_offload(self, offload) -> None:
        """From now on run slow work through ``offload(fn, args, done)``: ``fn(*args)`` runs
        elsewhere and ``done(result)`` is called on the caller's event loop when it is done."""

    def observe(self, bucket: int, j: int, service_ms: float) -> None:
        """A query of size bucket ``bucket`` took ``service_ms`` on instance ``j`` (only
        called when ``observes`` is True; the simulator and the gateway both call it)."""

    def describe(self) -> dict:
        """Parameters worth reporting (for --json)."""
        return {}
