"""The fluid bound: the highest arrival rate any dispatcher could sustain.

A linear programme (HiGHS via ``scipy.optimize.linprog``): route each query-size
bucket b (probability p_b) to instance types t at rates x_tb, where only types whose
mean service time s_tb is within QoS may take a bucket; every type's instances are
at most 100% busy (sum_b x_tb s_tb <= n_t). Because the criterion lets 1% of
queries miss QoS, up to ``miss_fraction`` of the traffic (y_tb) may go to any type.
Maximise the total rate lambda with sum_t (x_tb + y_tb) = p_b lambda.

Queueing is ignored (queries are perfectly timed), so the bound is an upper limit
that no real dispatcher can pass; ``max_qps / fluid_bound`` measures how close a
policy gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from kairos.profiles.profile import Profile


@dataclass
class FluidBound:
    qps: float
    routing: np.ndarray  # [types, buckets] queries/s of bucket b sent to type t (feasible + miss)
    utilisation: np.ndarray  # [types] busy fraction of each type at the bound
    # [types] shadow price of one second of a type's capacity (LP dual, queries per
    # instance-second): what the optimum would gain from one more unit of that type
    prices: np.ndarray | None = None


class FluidLP:
    """The fluid-bound LP for fixed service times, mix and QoS; solved for any capacities.

    Variables: x[t,b] for pairs within QoS, y[t,b] (miss flow) only for pairs outside QoS
    (missed traffic on a pair within QoS could as well be counted in x: exact, and a much
    smaller LP), and lambda. The capacities only appear in the right-hand side, so one
    instance serves every configuration (the planner solves it many times).
    """

    def __init__(self, service_ms, probs, qos_ms: float, miss_fraction: float = 0.01, feasible_ms=None):
        service_ms = np.asarray(service_ms, dtype=float)
        p = np.asarray(probs, dtype=float)
        f = service_ms if feasible_ms is None else np.asarray(feasible_ms, dtype=float)
        self.T, self.B = service_ms.shape
        bks = np.flatnonzero(p > 0)
        nb = len(bks)
        s = service_ms[:, bks] / 1000.0  # seconds
        ok = f[:, bks] <= qos_ms
        xt, xb = np.nonzero(ok)
        yt, yb = np.nonzero(~ok)
        nx, ny = len(xt), len(yt)
        nv = nx + ny + 1
        lam = nv - 1
        T = self.T
        # equalities: per bucket, sum of flows - p_b * lambda = 0
        rows = np.concatenate([xb, yb, np.arange(nb)])
        cols = np.concatenate([np.arange(nx), nx + np.arange(ny), np.full(nb, lam)])
        vals = np.concatenate([np.ones(nx + ny), -p[bks]])
        self.A_eq = coo_matrix((vals, (rows, cols)), shape=(nb, nv)).tocsr()
        # inequalities: per type capacity (instance-seconds per second); total miss flow
        rows = np.concatenate([xt, yt, np.full(ny, T), [T]])
        cols = np.concatenate([np.arange(nx), nx + np.arange(ny), nx + np.arange(ny), [lam]])
        vals = np.concatenate([s[xt, xb], s[yt, yb], np.ones(ny), [-miss_fraction]])
        self.A_ub = coo_matrix((vals, (rows, cols)), shape=(T + 1, nv)).tocsr()
        self.nb, self.nv, self.lam = nb, nv, lam
        self.c = np.zeros(nv)
        self.c[lam] = -1.0
        self.s, self.ok, self.bks = s, ok, bks
        self.xt, self.xb, self.yt, self.yb = xt, xb, yt, yb
        self.miss_fraction = miss_fraction

    def solve_full(self, capacity):
        """(qps, capacity duals [T], solution vector) for per-type capacities."""
        cap = np.asarray(capacity, dtype=float)
        if self.nb == 0 or not np.any(cap > 0):
            return 0.0, np.zeros(self.T), None
        res = linprog(
            self.c,
            A_ub=self.A_ub,
            b_ub=np.concatenate([cap, [0.0]]),
            A_eq=self.A_eq,
            b_eq=np.zeros(self.nb),
            bounds=(0, None),
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"fluid-bound LP failed: {res.message}")
        duals = np.maximum(-np.asarray(res.ineqlin.marginals[: self.T], dtype=float), 0.0)
        return max(0.0, float(res.x[self.lam])), duals, res.x  # max(0.0, .): never -0.0 (or -1e-12)

    def solve(self, capacity) -> tuple[float, np.ndarray]:
        """Bound (queries/s) and capacity duals for per-type capacities."""
        qps, duals, _ = self.solve_full(capacity)
        return qps, duals


def servable_fraction(service_ms: np.ndarray, probs: np.ndarray, qos_ms: float) -> float:
    """Fraction of queries (by the size mix ``probs``) that at least one of the types
    (rows of ``service_ms``) serves within ``qos_ms`` on its mean. Below 99%, no pool of
    these types meets the max-QPS criterion at any rate: the fluid bound is 0."""
    meets = np.asarray(service_ms) <= qos_ms  # [types, buckets]
    return float((meets.any(axis=0) * np.asarray(probs)).sum())


def fluid_bound(
    service_ms: np.ndarray,
    counts,
    probs: np.ndarray,
    qos_ms: float,
    miss_fraction: float = 0.01,
    feasible_ms: np.ndarray | None = None,
) -> FluidBound:
    """LP bound for ``counts[t]`` instances of each type.

    service_ms: [types, buckets] mean service time (capacity consumed per query).
    probs: [buckets] probability of each size bucket.
    feasible_ms: [types, buckets] the time compared with QoS (default: service_ms).
    """
    counts = np.asarray(counts, dtype=float)
    lp = FluidLP(service_ms, probs, qos_ms, miss_fraction, feasible_ms)
    T, B = lp.T, lp.B
    qps, prices, x = lp.solve_full(counts)
    routing = np.zeros((T, B))
    util = np.zeros(T)
    if x is None:
        return FluidBound(0.0, routing, util, np.zeros(T))
    nx = len(lp.xt)
    np.add.at(routing, (lp.xt, lp.bks[lp.xb]), x[:nx])
    np.add.at(routing, (lp.yt, lp.bks[lp.yb]), x[nx : nx + len(lp.yt)])
    busy = (routing[:, lp.bks] * lp.s).sum(axis=1)
    used = counts > 0
    util[used] = busy[used] / counts[used]
    return FluidBound(qps, routing, util, prices)


def config_fluid_bound(profile: Profile, config: dict[str, int], probs: np.ndarray, qos_ms: float, **kw) -> FluidBound:
    """Fluid bound of a {type: count} configuration for a profile and size-bucket mix."""
    counts = np.zeros(len(profile.types))
    for name, k in config.items():
        counts[profile.type_index(name)] += k
    return fluid_bound(profile.mean_ms, counts, probs, qos_ms, **kw)
