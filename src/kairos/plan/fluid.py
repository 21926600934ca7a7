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
    service_ms = np.asarray(service_ms, dtype=float)
    counts = np.asarray(counts, dtype=float)
    probs = np.asarray(probs, dtype=float)
    feas_t = service_ms if feasible_ms is None else np.asarray(feasible_ms, dtype=float)
    T, B = service_ms.shape
    types = np.flatnonzero(counts > 0)
    bks = np.flatnonzero(probs > 0)
    if types.size == 0 or bks.size == 0:
        return FluidBound(0.0, np.zeros((T, B)), np.zeros(T), np.zeros(T))
    s = service_ms[np.ix_(types, bks)] / 1000.0  # seconds
    ok = feas_t[np.ix_(types, bks)] <= qos_ms
    nt, nb = len(types), len(bks)
    # variable layout: x[t,b] (feasible pairs), y[t,b] (all pairs), lambda
    xt, xb = np.nonzero(ok)
    yt, yb = np.nonzero(np.ones((nt, nb), dtype=bool))
    nx, ny = len(xt), len(yt)
    nv = nx + ny + 1
    lam = nv - 1
    # equalities: per bucket, sum of flows - p_b * lambda = 0
    rows = np.concatenate([xb, yb, np.arange(nb)])
    cols = np.concatenate([np.arange(nx), nx + np.arange(ny), np.full(nb, lam)])
    vals = np.concatenate([np.ones(nx + ny), -probs[bks]])
    A_eq = coo_matrix((vals, (rows, cols)), shape=(nb, nv)).tocsr()
    # inequalities: per type capacity; total miss flow
    rows = np.concatenate([xt, yt, np.full(ny, nt), [nt]])
    cols = np.concatenate([np.arange(nx), nx + np.arange(ny), nx + np.arange(ny), [lam]])
    vals = np.concatenate([s[xt, xb], s[yt, yb], np.ones(ny), [-miss_fraction]])
    A_ub = coo_matrix((vals, (rows, cols)), shape=(nt + 1, nv)).tocsr()
    b_ub = np.concatenate([counts[types], [0.0]])
    c = np.zeros(nv)
    c[lam] = -1.0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=np.zeros(nb), bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"fluid-bound LP failed: {res.message}")
    qps = float(res.x[lam])
    routing = np.zeros((T, B))
    np.add.at(routing, (types[xt], bks[xb]), res.x[:nx])
    np.add.at(routing, (types[yt], bks[yb]), res.x[nx : nx + ny])
    util = np.zeros(T)
    util[types] = (routing[np.ix_(types, bks)] * s).sum(axis=1) / counts[types]
    prices = np.zeros(T)
    marg = getattr(getattr(res, "ineqlin", None), "marginals", None)
    if marg is not None:
        prices[types] = -np.asarray(marg)[:nt]
    return FluidBound(qps, routing, util, prices)


def config_fluid_bound(profile: Profile, config: dict[str, int], probs: np.ndarray, qos_ms: float, **kw) -> FluidBound:
    """Fluid bound of a {type: count} configuration for a profile and size-bucket mix."""
    counts = np.zeros(len(profile.types))
    for name, k in config.items():
        counts[profile.type_index(name)] += k
    return fluid_bound(profile.mean_ms, counts, probs, qos_ms, **kw)
