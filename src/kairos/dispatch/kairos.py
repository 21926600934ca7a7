"""Kairos dispatch: min-cost bipartite matching of queued queries to instances.

At a decision point every queued query Q_i and every instance I_j (busy ones too)
form a bipartite graph. L_ij = (estimated remaining time of I_j) + (estimated
service time of Q_i on I_j's type); W_i = time Q_i has waited; C_j = heterogeneity
coefficient (base type's latency at the largest size / I_j's). Minimise
sum C_j L_ij P_ij subject to (L_ij + W_i) P_ij <= T_qos, a matching of min(m, n)
pairs, solved with ``scipy.optimize.linear_sum_assignment``. Pairs whose instance
is idle start now; a query matched to a busy instance waits for it.

Two versions:

- :class:`KairosPaperPolicy` (``kairos-paper``): the published dispatcher with its
  constants and quirks: penalty costs instead of the constraint (a large constant
  for a QoS violation, a smaller one inside a 2%-of-QoS safety margin), integer-ms
  service estimates, the oldest 2n queued queries only, late queries served at
  normal cost.
- :class:`KairosPolicy` (``kairos``, ours): the same matching, with the changes
  that measured better (see docs/dispatch.md): feasibility checked on a tail
  quantile of the service time (noisy types are not trusted with their mean),
  costs in units of the QoS target, the whole queue considered, an age term so the
  most urgent queries are matched first, an urgency term (``urgency``, default 0.5) so
  that of two queries wanting the same idle instance the one that has waited longer gets
  it, pairs in time by the mean but not the tail allowed at an extra cost
  (``risk_penalty``, default 0.5), and queries that can no longer meet QoS anywhere
  ("hopeless") kept out of the matching and served only by instances that nothing
  feasible wants. Nothing is ever dropped. ``ahead_ms`` (0 = off; ``kairos serve`` sets
  1): a query matched to a busy instance expected to finish within that many ms, holding
  nothing else, is queued on it now, so that a gateway can send it before the instance is
  free (no round trip between the two).

The service-time tables both paths of :class:`KairosPolicy` read are in
:mod:`kairos.dispatch.kairos_tables`.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.optimize import linear_sum_assignment

from kairos.dispatch.base import DispatchContext, Policy
from kairos.dispatch.kairos_tables import ServiceTables, TypeGroups, gather
from kairos.dispatch.online import OnlineEstimates
from kairos.plan.fluid import fluid_bound

_BIG = 1e6  # cost of an infeasible pair; feasible costs are O(1) (units of the QoS target)
# pools of more instances than this keep, for a queue shorter than the largest type's
# count, only the instances of each type that can be in an optimal matching (below it,
# dropping columns costs more than it saves)
_PRUNE_ABOVE = 24


def heterogeneity_coefficients(mean_ms: np.ndarray, present_types) -> np.ndarray:
    """C_t = (latency of the fastest present type at the largest size) / (latency of t there)."""
    last = mean_ms[:, -1]
    base = min(last[t] for t in present_types)
    return base / last


def fluid_coefficients(mean_ms, counts, probs, qos_ms) -> np.ndarray | None:
    """C_t from the fluid LP's shadow prices of each type's capacity, relative to the
    dearest type. Where the paper's C (a ratio of latencies at the largest size) guesses
    how valuable a type's time is, the LP dual is that value for this pool, QoS and size
    mix: it puts the small/large split between types where the optimum puts it."""
    fb = fluid_bound(mean_ms, counts, probs, qos_ms)
    present = np.asarray(counts) > 0
    if fb.prices is None or fb.qps <= 0 or fb.prices[present].max() <= 0:
        return None
    return np.maximum(fb.prices / fb.prices[present].max(), 1e-3)


def compute_coefficients(mean_ms, counts, probs, qos_ms, present, kind: str = "fluid") -> np.ndarray:
    """C_t of every type: from the fluid LP's duals (``kind="fluid"``, when the size mix is
    known) or the paper's latency ratio. A plain function of arrays, so that a gateway can
    solve it in a helper process (see ``KairosPolicy.offload``)."""
    C = None
    if kind == "fluid" and probs is not None:
        C = fluid_coefficients(mean_ms, counts, probs, qos_ms)
    if C is None:
        C = heterogeneity_coefficients(mean_ms, present)
    return C


class KairosPolicy(Policy):
    """Our Kairos matching (see module docstring).

    State: the options; the service-time estimates in use (``mean``, ``tail``: [types,
    buckets], the profile's or, with ``learn``, corrected online); and everything that
    depends on the pool -- its instances grouped by type (``groups``), the coefficients
    ``C`` and the tables (``tables``) -- rebuilt from those estimates and the pool's
    ``type_of`` by :meth:`_rebuild`.
    """

    name = "kairos"
    # learn=True: where the coefficients' LP is solved when they are due. None: here and
    # now (the simulator). A gateway sets a function offload(fn, args, done) that runs
    # fn(*args) elsewhere and calls done(result) on its event loop when it is finished:
    # the LP takes a few milliseconds, which in a gateway's event loop every query in
    # flight would wait out. Decisions in between use the previous coefficients.
    offload = None
    # set by bind (see the class docstring)
    mean: np.ndarray
    tail: np.ndarray
    online: OnlineEstimates | None
    groups: TypeGroups
    C: np.ndarray
    tables: ServiceTables

    def __init__(
        self,
        tail_quantile: float = 0.9,
        age_weight: float = 3.0,
        hopeless: str = "leftover",
        coefficients: str = "fluid",
        learn: bool = False,
        risk_penalty: float | None = 0.5,
        urgency: float = 0.5,
        ahead_ms: float = 0.0,
    ) -> None:
        if coefficients not in ("fluid", "paper"):
            raise ValueError("coefficients must be 'fluid' or 'paper'")
        if not (isinstance(tail_quantile, Real) and 0.0 < tail_quantile <= 1.0):
            raise ValueError(f"tail_quantile must be in (0, 1], got {tail_quantile!r}")
        if not (isinstance(age_weight, Real) and 0.0 <= age_weight < float("inf")):
            raise ValueError(f"age_weight must be a finite number >= 0, got {age_weight!r}")
        if not isinstance(learn, bool):
            raise ValueError(f"learn must be true or false, got {learn!r}")
        if risk_penalty is not None and not (isinstance(risk_penalty, Real) and 0 <= risk_penalty < float("inf")):
            raise ValueError(f"risk_penalty must be None or a finite number >= 0, got {risk_penalty!r}")
        if hopeless not in ("leftover", "defer"):
            raise ValueError("hopeless must be 'leftover' or 'defer'")
        if not (isinstance(urgency, Real) and 0.0 <= urgency < float("inf")):
            raise ValueError(f"urgency must be a finite number >= 0, got {urgency!r}")
        if not (isinstance(ahead_ms, Real) and 0.0 <= ahead_ms < float("inf")):
            raise ValueError(f"ahead_ms must be a finite number >= 0, got {ahead_ms!r}")
        self.coefficients: str = coefficients
        self.tail_quantile: float = tail_quantile
        self.age_weight: float = age_weight
        self.hopeless: str = hopeless
        self.learn: bool = learn
        self.observes = learn
        # None: a pair is feasible only if its tail estimate meets the deadline. A number:
        # a pair that meets it only with its mean ("risky") may be matched too, at this
        # extra cost (units of the QoS target); hopeless = not even the mean meets it.
        self.risk_penalty: float | None = risk_penalty
        # > 0: a query pays urgency * (W_i / T) per unit (T) of an instance's remaining
        # work, so that of two queries wanting the same idle instance the one that has waited
        # longer gets it (row-constant terms such as the age term cancel out of that choice)
        self.urgency: float = float(urgency)
        # > 0: a query the matching pairs with a busy instance expected to finish within
        # ahead_ms (and holding nothing else) is given to it now, to start the moment it is
        # free: in a gateway the worker then has it before it finishes, so the instance
        # never idles for a gateway round trip between two queries (docs/serving.md)
        self.ahead_ms = float(ahead_ms)
        self._dirty: bool = False  # learn: the estimates or coefficients changed since the tables were built

    def describe(self) -> dict:
        d = {
            "tail_quantile": self.tail_quantile,
            "age_weight": self.age_weight,
            "hopeless": self.hopeless,
            "coefficients": self.coefficients,
            "learn": self.learn,
            "risk_penalty": self.risk_penalty,
            "urgency": self.urgency,
        }
        if self.ahead_ms:  # only when set: the defaults' fingerprint (and every cache keyed by it) stays
            d["ahead_ms"] = self.ahead_ms
        return d

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        prof = ctx.profile
        self.mean = prof.mean_ms
        self.tail = np.maximum(prof.quantile_ms(self.tail_quantile), prof.mean_ms)
        self.online = None
        if self.learn:
            self.online = OnlineEstimates(prof.mean_ms, self.tail)
            self._next_coeff = 256  # refresh the coefficients at 256, 1024, 4096, ... observations
        self._rebuild()

    def _rebuild(self) -> None:
        """Everything that depends on the pool, from the estimates in use and the pool in
        ``self.ctx`` (``type_of``, ``retired``): the instances grouped by type, the
        coefficients C (solved here: they depend on how many instances of each type there
        are) and the tables. :meth:`bind` calls it; after a change of the pool, setting
        ``self.ctx`` to the new context and calling it keeps what was learned."""
        ctx = self.ctx
        self.type_of = list(ctx.type_of)
        self.n = len(self.type_of)
        self.groups = TypeGroups(self.type_of, ctx.retired)
        self._every = range(self.n)  # the matching's columns when it keeps every instance
        # a queue shorter than this keeps only some instances of each type (:meth:`_columns`)
        self._prune_below = self.groups.largest if self.n > _PRUNE_ABOVE else 0
        self.C = np.asarray(compute_coefficients(*self._coefficient_args()), dtype=float)
        self._build_tables()

    def pool_changed(self, ctx: DispatchContext) -> None:
        """Instances joined or left: rebuild what depends on the pool, keep what was learned
        (the online estimates in use stay; the coefficients are solved for the new pool)."""
        self.ctx = ctx
        self._rebuild()

    def _build_tables(self) -> None:
        self.tables = ServiceTables(self.mean, self.tail, self.C, self.qos, self.groups.types)

    def _coefficient_args(self) -> tuple:
        ctx = self.ctx
        return self.mean, ctx.type_counts(), ctx.size_probs, ctx.qos_ms, ctx.present_types(), self.coefficients

    @property
    def wants_offload(self) -> bool:
        return self.learn  # only a learning policy re-solves its coefficients' LP while serving

    def set_offload(self, offload) -> None:
        self.offload = offload

    def coefficients_solved(self, C) -> None:
        """An offloaded coefficient solve finished: use ``C`` from the next dispatch on."""
        self.C = np.asarray(C, dtype=float)
        self._dirty = True  # the tables are rebuilt with them at the next dispatch

    # -- online correction of the estimates (learn=True) -----------------------------
    def observe(self, bucket: int, j: int, service_ms: float) -> None:
        online = self.online
        assert online is not None  # called only when ``observes``, i.e. learn=True
        if online.observe(self.type_of[j], bucket, service_ms):
            self._dirty = True

    def _refresh(self, pool) -> None:
        """Take what was observed: new estimates (and, when due, coefficients), the tables
        rebuilt with them, and the pool's estimates of remaining work."""
        online = self.online
        assert online is not None  # dirty only when learning
        self._dirty = False
        self.mean = online.estimates()
        self.tail = online.tails(self.mean)
        if online.total >= self._next_coeff:
            self._next_coeff *= 4
            if self.offload is None:
                self.C = np.asarray(compute_coefficients(*self._coefficient_args()), dtype=float)
            else:
                self.offload(compute_coefficients, self._coefficient_args(), self.coefficients_solved)
        self._build_tables()
        pool.set_estimates(self.mean.tolist())

    def dispatch(self, now, queue, pool):
        if self._dirty:
            self._refresh(pool)
        if len(queue) == 1:
            return self._single(now, queue[0], pool)
        return self._match(now, queue, pool)

    # -- one queued query: the matching is an argmin over instances ------------------
    # Among the instances that can finish the query by its deadline (L_ij by the tail
    # estimate within T - W_i): least cost C_j L_ij / T, ties to an idle instance, then to
    # the lowest index. It starts only if that instance is idle. None feasible (hopeless):
    # the idle instance with the least C-weighted work. Only one candidate per run of
    # consecutive instances of a type can win: its first idle instance, else the one with
    # the least remaining work.
    def _single(self, now, qid, pool):
        b = int(pool.q_bucket[qid])
        W = now - float(pool.q_arrival[qid])
        slack = self.qos - W  # T - W_i: what L_ij may be
        free_at = pool.free_at
        busy = pool.busy
        tables = self.tables
        cost_b = tables.cost_bt[b]
        tail_b = tables.tail_bt[b]
        mean_b = tables.mean_bt[b]
        Cn = self._urgent_cn(W)
        risk = self.risk_penalty
        best = None  # (cost, busy, instance), compared as a tuple
        spare = None  # (cost, instance)
        for t, a, e in self.groups.runs:
            if e - a == 1:  # one instance (pools whose types are interleaved)
                j, is_busy = a, busy[a]
                rem = free_at[a] - now if is_busy and free_at[a] > now else 0.0
            elif False in busy[a:e]:  # the run's first idle instance: no remaining work
                j, rem, is_busy = busy.index(False, a, e), 0.0, False
            else:  # all busy: the least remaining work (ties: lowest index) is the run's best
                fmin = min(free_at[a:e])
                if fmin <= now:
                    j, rem = next(k for k in range(a, e) if free_at[k] <= now), 0.0
                else:
                    j, rem = free_at.index(fmin, a, e), fmin - now
                is_busy = True
            c = cost_b[t] + Cn[t] * rem
            if rem + tail_b[t] <= slack:
                pass
            elif risk is not None and rem + mean_b[t] <= slack:
                c += risk
            else:
                if not is_busy and (spare is None or (c, j) < spare):
                    spare = (c, j)
                continue
            if best is None or (c, is_busy, j) < best:
                best = (c, is_busy, j)
        if best is not None:
            return self._start_or_ahead(qid, best[2], best[1], now, pool)
        return [(qid, spare[1])] if spare is not None and pool.up[spare[1]] else []

    def _ahead_ok(self, j: int, now: float, pool) -> bool:
        """Busy instance ``j`` may be given its next query now (``ahead_ms``)."""
        return pool.held[j] == 1 and pool.up[j] and pool.free_at[j] - now <= self.ahead_ms

    def _start_or_ahead(self, qid: int, j: int, is_busy: bool, now: float, pool) -> list:
        """The one-query path's answer for its best feasible instance ``j``: start there if it
        is idle, queue there if it is busy and may hold a query ahead, else keep waiting."""
        if not is_busy or (self.ahead_ms and self._ahead_ok(j, now, pool)):
            return [(qid, j)]
        return []

    def _urgent_cn(self, W: float) -> list:
        """Per type, the cost of one ms of an instance's remaining work for a query that has
        waited ``W`` ms: C_t / T, plus urgency * W / T^2."""
        if not self.urgency:
            return self.tables.Cn_t
        u = self.urgency * W / (self.qos * self.qos)
        return [c + u for c in self.tables.Cn_t]

    # -- two or more queued queries: the matching ------------------------------------
    def _match(self, now, queue, pool):
        T = self.qos
        tables = self.tables
        m = len(queue)
        qb, qa = pool.queue_arrays(queue)
        W = now - qa  # W_i
        rem = np.array(pool.free_at) - now  # remaining time of each instance
        np.maximum(rem, 0.0, out=rem)
        # the matching's columns k: instances inst[k]
        cols = self._columns(rem, m)
        if cols is None:
            inst, rem, Cn, busy = self._every, rem, tables.Cn_j, pool.busy
        else:
            inst = cols.tolist()
            rem, Cn, busy = rem[cols], tables.Cn_j[cols], [pool.busy[j] for j in inst]
        # L_ij + W_i <= T, checked as: service time <= (T - W_i) - remaining time of j
        slack = (T - W)[:, None] - rem
        late = gather(tables.tail_bj, qb, cols) > slack  # late by the tail estimate
        risky = None
        if self.risk_penalty is not None:  # late by the tail but in time by the mean: allowed, at a cost
            risky, late = late, gather(tables.mean_bj, qb, cols) > slack
        # C_j L_ij / T, in units of the QoS target. Infeasible pairs cost _BIG, so the
        # matching maximises feasible pairs first; a row matched through an infeasible pair
        # stays queued. The age term only decides which rows get matched (the oldest first).
        # (Folding urgency and age into one rank-one term W_i * (u rem_j / T^2 - a / T) is
        # one array operation less but rounds differently and changed 0.1-0.2% of the
        # decisions through ties; kept apart.)
        serve = gather(tables.cost_bj, qb, cols)  # C_j / T * service time of i on j
        cost = serve + Cn * rem
        if self.urgency:  # waiting on a busy instance costs an older query more
            cost += (W * (self.urgency / (T * T)))[:, None] * rem[None, :]
        cost -= (W * (self.age_weight / T))[:, None]
        if risky is not None:
            np.add(cost, self.risk_penalty, out=cost, where=risky)
        np.putmask(cost, late, _BIG)
        r, c = linear_sum_assignment(cost)
        # plain Python from here: at most min(m, k) pairs, and usually one idle instance
        out = []
        taken = set()  # columns of idle instances given a feasible query
        ahead = self.ahead_ms
        for i, k in zip(r.tolist(), c.tolist()):
            if not busy[k] and not late[i, k]:
                out.append((queue[i], inst[k]))
                taken.add(k)
            elif ahead and not late[i, k] and self._ahead_ok(inst[k], now, pool):
                out.append((queue[i], inst[k]))
        if pool.n_idle <= len(taken):
            return out
        spare = [k for k in range(len(busy)) if not busy[k] and k not in taken]
        if not spare:
            return out
        hopeless = np.flatnonzero(late.all(axis=1)).tolist()  # oldest first
        if hopeless and (self.hopeless == "leftover" or len(hopeless) == m):
            for i in hopeless[: len(spare)]:
                # on the spare idle instance with the least C-weighted work
                k = min(spare, key=serve[i].__getitem__)
                spare.remove(k)
                if pool.up[inst[k]]:
                    out.append((queue[i], inst[k]))
        return out

    def _columns(self, rem, m):
        """Only the min(m, n_t) least-loaded instances of each type can be in an optimal
        matching (cost and feasibility grow with remaining time); None = keep all."""
        if m >= self._prune_below:
            return None
        cols = []
        for idx in self.groups.members:
            if len(idx) > m:
                idx = idx[np.argpartition(rem[idx], m - 1)[:m]]
            cols.append(idx)
        return np.concatenate(cols)


class KairosOnlinePolicy(KairosPolicy):
    """``kairos-online``: our matching with the latency estimates corrected online from
    observed service times (:mod:`kairos.dispatch.online`)."""

    name = "kairos-online"

    def __init__(self, learn: bool = True, **kw):
        super().__init__(learn=learn, **kw)


class KairosPaperPolicy(Policy):
    """The published Kairos dispatcher, constants and quirks included."""

    name = "kairos-paper"

    VIOLATION_PENALTY = 10_000.0  # added to a pair that would miss QoS (ms-scale costs)
    MARGIN_PENALTY = 1_000.0  # added to a pair inside the safety margin
    MARGIN = 0.02  # safety margin: 2% of the QoS target

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        self.est_int = np.floor(ctx.profile.mean_ms)  # the artifact kept whole milliseconds
        self._rebuild()

    def _rebuild(self) -> None:
        """Everything that depends on the pool, from the profile and the pool in ``self.ctx``."""
        ctx = self.ctx
        self.type_of = list(ctx.type_of)
        self.n = len(self.type_of)
        self.type_np = np.asarray(self.type_of, dtype=np.int64)
        self.C_inst = heterogeneity_coefficients(ctx.profile.mean_ms, ctx.present_types())[self.type_np]
        self.cap = 2 * (self.n - len(ctx.retired))  # the oldest 2n queued queries, n instances in the pool

    def dispatch(self, now, queue, pool):
        q = queue[: self.cap]
        m = len(q)
        T = self.qos
        qb = np.fromiter((pool.q_bucket[x] for x in q), np.int64, m)
        W = now - np.fromiter((pool.q_arrival[x] for x in q), float, m)
        up = np.flatnonzero(pool.up)  # instances that failed are not in the graph
        rem = np.maximum(np.asarray(pool.free_at, dtype=float)[up] - now, 0.0)
        L = rem[None, :] + self.est_int[self.type_np[up]][:, qb].T
        cost = self.C_inst[up][None, :] * L
        tot = L + W[:, None]
        cost = cost + np.where(
            tot > T, self.VIOLATION_PENALTY, np.where(tot > (1 - self.MARGIN) * T, self.MARGIN_PENALTY, 0.0)
        )
        r, c = linear_sum_assignment(cost)
        busy = pool.busy
        return [(q[i], int(up[j])) for i, j in zip(r, c) if not busy[up[j]]]
