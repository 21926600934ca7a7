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
  most urgent queries are matched first, an urgency term (``urgency``) so that of two
  queries wanting the same idle instance the one that has waited longer gets it, pairs
  in time by the mean but not the tail allowed at an extra cost (``risk_penalty``),
  and queries that can no longer meet QoS anywhere ("hopeless") kept out of the
  matching and served only by instances that nothing feasible wants. Nothing is ever
  dropped. ``urgency=0.5, risk_penalty=0.5`` are the defaults since 2026-11-29 (0 and
  None before; max QPS +0-4.5% on the paper's pools, never lower, three seeds).
  ``ahead_ms`` (0 = off; ``kairos serve`` sets 1): a query matched to a busy instance
  expected to finish within that many ms, holding nothing else, is queued on it now, so
  that a gateway can send it before the instance is free (no round trip between the two).
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.optimize import linear_sum_assignment

from kairos.dispatch.base import DispatchContext, Policy

_INF = float("inf")
_BIG = 1e6  # cost of an infeasible pair; feasible costs are O(1) (units of the QoS target)


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
    from kairos.plan.fluid import fluid_bound

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
    """Our Kairos matching (see module docstring)."""

    name = "kairos"
    # learn=True: where the coefficients' LP is solved when they are due. None: here and
    # now (the simulator). A gateway sets a function offload(fn, args, done) that runs
    # fn(*args) elsewhere and calls done(result) on its event loop when it is finished:
    # the LP takes a few milliseconds, which in a gateway's event loop every query in
    # flight would wait out. Decisions in between use the previous coefficients.
    offload = None

    def __init__(self, tail_quantile: float = 0.9, age_weight: float = 3.0, hopeless: str = "leftover",
                 coefficients: str = "fluid", learn: bool = False, risk_penalty: float | None = 0.5,
                 urgency: float = 0.5, ahead_ms: float = 0.0):
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
        self.coefficients = coefficients
        self.tail_quantile = tail_quantile
        self.age_weight = age_weight
        if hopeless not in ("leftover", "defer"):
            raise ValueError("hopeless must be 'leftover' or 'defer'")
        self.hopeless = hopeless
        self.learn = learn
        self.observes = learn
        # None: a pair is feasible only if its tail estimate meets the deadline. A number:
        # a pair that meets it only with its mean ("risky") may be matched too, at this
        # extra cost (units of the QoS target); hopeless = not even the mean meets it.
        self.risk_penalty = risk_penalty
        if not (isinstance(urgency, Real) and 0.0 <= urgency < float("inf")):
            raise ValueError(f"urgency must be a finite number >= 0, got {urgency!r}")
        # > 0: a query pays urgency * (its wait / T) per unit (T) of an instance's remaining
        # work, so that of two queries wanting the same idle instance the one that has waited
        # longer gets it (row-constant terms such as the age term cancel out of that choice)
        self.urgency = float(urgency)
        if not (isinstance(ahead_ms, Real) and 0.0 <= ahead_ms < float("inf")):
            raise ValueError(f"ahead_ms must be a finite number >= 0, got {ahead_ms!r}")
        # > 0: a query the matching pairs with a busy instance expected to finish within
        # ahead_ms (and holding nothing else) is given to it now, to start the moment it is
        # free: in a gateway the worker then has it before it finishes, so the instance
        # never idles for a gateway round trip between two queries (docs/serving.md)
        self.ahead_ms = float(ahead_ms)

    def describe(self) -> dict:
        d = {"tail_quantile": self.tail_quantile, "age_weight": self.age_weight, "hopeless": self.hopeless,
             "coefficients": self.coefficients, "learn": self.learn, "risk_penalty": self.risk_penalty,
             "urgency": self.urgency}
        if self.ahead_ms:  # only when set: the defaults' fingerprint (and every cache keyed by it) stays
            d["ahead_ms"] = self.ahead_ms
        return d

    def bind(self, ctx: DispatchContext) -> None:
        super().bind(ctx)
        prof = ctx.profile
        self.present = sorted(set(self.type_of))
        tail = np.maximum(prof.quantile_ms(self.tail_quantile), prof.mean_ms)
        self.type_np = np.asarray(self.type_of, dtype=np.int64)
        self._coefficients(prof.mean_ms)
        self._tables(prof.mean_ms, tail)
        # instances grouped by type, to keep only the useful columns of the matching
        self.by_type = [np.flatnonzero(self.type_np == t) for t in self.present]
        # below this queue length, dropping columns pays for itself
        self.max_per_type = max(len(ix) for ix in self.by_type) if self.n > 24 else 0
        # instances of each type as contiguous index ranges (the simulator and the gateway
        # list them in configuration order): the one-query path then looks at a type's
        # instances with list methods instead of a Python loop; None = not contiguous
        self.ranges = [(t, int(ix[0]), int(ix[-1]) + 1) for t, ix in zip(self.present, self.by_type)]
        if any(e - a != len(ix) for (_, a, e), ix in zip(self.ranges, self.by_type)):
            self.ranges = None
        self.online = None
        if self.learn:
            from kairos.dispatch.online import OnlineEstimates

            self.online = OnlineEstimates(prof.mean_ms)
            self._tail_shape = np.where(prof.mean_ms > 0, tail / np.where(prof.mean_ms > 0, prof.mean_ms, 1.0), 1.0)
            self._dirty = False
            self._next_coeff = 256  # refresh the coefficients at 256, 1024, 4096, ... observations

    def _coefficient_args(self, mean_ms) -> tuple:
        ctx = self.ctx
        return mean_ms, ctx.type_counts(), ctx.size_probs, ctx.qos_ms, self.present, self.coefficients

    def _coefficients(self, mean_ms) -> None:
        self._set_coefficients(compute_coefficients(*self._coefficient_args(mean_ms)))

    def _set_coefficients(self, C) -> None:
        self.C = np.asarray(C, dtype=float)
        self.C_inst = self.C[self.type_np]
        self.Cn_inst = self.C_inst / self.qos

    @property
    def wants_offload(self) -> bool:
        return self.learn  # only a learning policy re-solves its coefficients' LP while serving

    def set_offload(self, offload) -> None:
        self.offload = offload

    def coefficients_solved(self, C) -> None:
        """An offloaded coefficient solve finished: use ``C`` from the next dispatch on."""
        self._set_coefficients(C)
        self._dirty = True  # the cost tables are rebuilt with them at the next dispatch

    def _tables(self, mean_ms, tail) -> None:
        """Per-instance and per-bucket lookup tables from mean and tail estimates."""
        self.est_np = mean_ms
        self.tail_np = tail
        # per-instance tables [instances, buckets] so one fancy index builds a matrix
        self.est_inst = mean_ms[self.type_np]
        self.tail_inst = tail[self.type_np]
        self.cost_inst = self.Cn_inst[:, None] * self.est_inst
        # the same, [buckets, instances]: a row gather is the fastest way to build [m, n]
        self.tail_bi = np.ascontiguousarray(self.tail_inst.T)
        self.cost_bi = np.ascontiguousarray(self.cost_inst.T)
        # per bucket, per type (plain lists, for the one-query path)
        self.Cnl = (self.C / self.qos).tolist()
        self.cost_tb = ((self.C / self.qos)[:, None] * mean_ms).T.tolist()
        self.tail_tb = tail.T.tolist()
        if self.risk_penalty is not None:
            self.mean_bi = np.ascontiguousarray(self.est_inst.T)
            self.mean_tb = mean_ms.T.tolist()

    # -- online correction of the estimates (learn=True) -----------------------------
    def observe(self, bucket: int, j: int, service_ms: float) -> None:
        if self.online.observe(self.type_of[j], bucket, service_ms):
            self._dirty = True

    def _refresh(self, pool) -> None:
        """Rebuild the tables (and the pool's estimates of remaining work) from what was observed."""
        self._dirty = False
        mean = self.online.estimates()
        if self.online.total >= self._next_coeff:
            self._next_coeff *= 4
            if self.offload is None:
                self._coefficients(mean)
            else:
                self.offload(compute_coefficients, self._coefficient_args(mean), self.coefficients_solved)
        self._tables(mean, mean * self._tail_shape)
        pool.set_estimates(mean.tolist())

    # -- one queued query: the matching is an argmin over instances ------------------
    # Among the instances that can finish the query by its deadline (remaining work plus
    # the tail estimate within the slack): least cost C_t (est + remaining) / T, ties to
    # an idle instance, then to the lowest index. It starts only if that instance is idle.
    # None feasible (hopeless): the idle instance with the least C-weighted work.
    def _single(self, now, qid, pool):
        if self.ranges is None:
            return self._single_scan(now, qid, pool)
        b = int(pool.q_bucket[qid])
        waited = now - float(pool.q_arrival[qid])
        slack = self.qos - waited  # time left before the deadline
        free_at = pool.free_at
        busy = pool.busy
        cost_b = self.cost_tb[b]
        tail_b = self.tail_tb[b]
        Cn = self._urgent_cn(waited)
        risk = self.risk_penalty
        mean_b = self.mean_tb[b] if risk is not None else tail_b
        best = None  # (cost, busy, instance), compared as a tuple
        spare = None  # (cost, instance)
        for t, a, e in self.ranges:
            try:
                j = busy.index(False, a, e)  # the type's first idle instance: no remaining work
            except ValueError:
                j = -1
            if j >= 0:
                rem, is_busy = 0.0, False
            else:  # all busy: the least remaining work (ties: lowest index) is the type's best
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
        """The one-query paths' answer for their best feasible instance ``j``: start there if it
        is idle, queue there if it is busy and may hold a query ahead, else keep waiting."""
        if not is_busy or (self.ahead_ms and self._ahead_ok(j, now, pool)):
            return [(qid, j)]
        return []

    def _urgent_cn(self, waited: float) -> list:
        """Per type, the cost of one ms of an instance's remaining work for a query that has
        waited ``waited`` ms: C_t / T, plus urgency * waited / T^2."""
        if not self.urgency:
            return self.Cnl
        u = self.urgency * waited / (self.qos * self.qos)
        return [c + u for c in self.Cnl]

    def _single_scan(self, now, qid, pool):
        """:meth:`_single` for pools whose types are not contiguous index ranges."""
        b = int(pool.q_bucket[qid])
        waited = now - float(pool.q_arrival[qid])
        slack = self.qos - waited
        free_at = pool.free_at
        busy = pool.busy
        cost_b = self.cost_tb[b]  # per type: C_t * est / T
        tail_b = self.tail_tb[b]
        Cn = self._urgent_cn(waited)
        risk = self.risk_penalty
        mean_b = self.mean_tb[b] if risk is not None else tail_b
        best = -1
        best_cost = _INF
        spare = -1  # idle instance for a hopeless query: least C-weighted work
        spare_cost = _INF
        for j, t in enumerate(self.type_of):
            rem = free_at[j] - now
            if rem < 0.0:
                rem = 0.0
            c = cost_b[t] + Cn[t] * rem
            ok = rem + tail_b[t] <= slack
            if not ok and risk is not None and rem + mean_b[t] <= slack:
                ok, c = True, c + risk
            if ok:
                # strict <: among equals the first (and idle before busy below) wins
                if c < best_cost or (c == best_cost and not busy[j] and busy[best]):
                    best_cost = c
                    best = j
            elif not busy[j] and c < spare_cost and pool.up[j]:
                spare_cost = c
                spare = j
        if best >= 0:
            return self._start_or_ahead(qid, best, busy[best], now, pool)
        return [(qid, spare)] if spare >= 0 else []

    def dispatch(self, now, queue, pool):
        if self.learn and self._dirty:
            self._refresh(pool)
        m = len(queue)
        if m == 1:
            return self._single(now, queue[0], pool)
        T = self.qos
        qb, qa = pool.queue_arrays(queue)
        neg_w = qa - now  # minus the time each query has waited
        rem = np.array(pool.free_at) - now
        np.maximum(rem, 0.0, out=rem)
        cols = self._columns(rem, m)
        if cols is None:
            rc, cn, busy = rem, self.Cn_inst, pool.busy
            tail, cst = self.tail_bi.take(qb, axis=0), self.cost_bi.take(qb, axis=0)  # [m, n]
        else:
            rc, cn = rem[cols], self.Cn_inst[cols]
            busy = [pool.busy[j] for j in cols]
            tail, cst = self.tail_bi[qb][:, cols], self.cost_bi[qb][:, cols]
        left = (neg_w + T)[:, None] - rc  # [m, k]: time from the instance's start to the deadline
        late = tail > left  # would finish after the deadline
        risky = None
        if self.risk_penalty is not None:  # late by the tail but in time by the mean: allowed, at a cost
            mean = self.mean_bi.take(qb, axis=0) if cols is None else self.mean_bi[qb][:, cols]
            risky, late = late, mean > left
        # cost in units of the QoS target. Infeasible pairs cost _BIG, so the matching
        # maximises feasible pairs first; a row matched through an infeasible pair stays
        # queued. The age term only decides which rows get matched (the oldest first).
        # (Folding urgency and age into one rank-one term W_i * (u rem_j / T^2 - a / T) is
        # one array operation less but rounds differently and changed 0.1-0.2% of the
        # decisions through ties; kept apart.)
        cost = cst + cn * rc
        if self.urgency:  # waiting on a busy instance costs an older query more
            cost += (neg_w * (-self.urgency / (T * T)))[:, None] * rc[None, :]
        cost += (neg_w * (self.age_weight / T))[:, None]
        if risky is not None:
            np.add(cost, self.risk_penalty, out=cost, where=risky)
        np.putmask(cost, late, _BIG)
        r, c = linear_sum_assignment(cost)
        # plain Python from here: at most min(m, k) pairs, and usually one idle instance
        out = []
        taken = set()  # idle instances given a feasible query
        ahead = self.ahead_ms
        for i, k in zip(r.tolist(), c.tolist()):
            if not busy[k] and not late[i, k]:
                out.append((queue[i], k if cols is None else int(cols[k])))
                taken.add(k)
            elif ahead and not late[i, k]:
                j = k if cols is None else int(cols[k])
                if self._ahead_ok(j, now, pool):
                    out.append((queue[i], j))
        if pool.n_idle <= len(taken):
            return out
        spare = [k for k in range(len(busy)) if not busy[k] and k not in taken]
        if not spare:
            return out
        hopeless = np.flatnonzero(late.all(axis=1)).tolist()  # oldest first
        if hopeless and (self.hopeless == "leftover" or len(hopeless) == m):
            S = self.est_inst if cols is None else self.est_inst[cols]
            for i in hopeless[: len(spare)]:
                # on the spare idle instance with the least C-weighted work
                k = min(spare, key=lambda k: cn[k] * S[k, qb[i]])
                spare.remove(k)
                j = k if cols is None else int(cols[k])
                if pool.up[j]:
                    out.append((queue[i], j))
        return out

    def _columns(self, rem, m):
        """Only the min(m, n_t) least-loaded instances of each type can be in an optimal
        matching (cost and feasibility grow with remaining time); None = keep all."""
        if m >= self.max_per_type:
            return None
        cols = []
        for idx in self.by_type:
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
        present = sorted(set(self.type_of))
        self.C_inst = heterogeneity_coefficients(ctx.profile.mean_ms, present)[np.asarray(self.type_of)]
        self.est_int = np.floor(ctx.profile.mean_ms)  # the artifact kept whole milliseconds
        self.type_np = np.asarray(self.type_of, dtype=np.int64)
        self.cap = 2 * self.n

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
        cost = cost + np.where(tot > T, self.VIOLATION_PENALTY, np.where(tot > (1 - self.MARGIN) * T, self.MARGIN_PENALTY, 0.0))
        r, c = linear_sum_assignment(cost)
        busy = pool.busy
        return [(q[i], int(up[j])) for i, j in zip(r, c) if not busy[up[j]]]
