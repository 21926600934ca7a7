"""Throughput bounds of configurations, vectorised or with LP duals.

* :func:`paper_bound` -- the Kairos paper's upper bound: one base type (the fastest that
  meets QoS for every size) plus auxiliary types, each serving the small queries up to
  its violation size; whichever side saturates first bounds the rate. Closed form,
  numpy over many configurations at once.
* :class:`FluidLP` -- the fluid bound LP of :mod:`kairos.plan.fluid` over *all* types of
  a problem (zero counts allowed), returning the capacity duals ``u``. Because the
  counts only appear in the right-hand side, ``bound(n) = min_v u_v . n`` over the dual
  vertices: every dual ``u`` gives a linear upper bound valid for every configuration,
  which lets :mod:`kairos.plan.methods` prune the exhaustive search without solving an
  LP per configuration.
"""

from __future__ import annotations

import numpy as np

from kairos.plan.fluid import FluidLP as _FluidLP
from kairos.plan.space import MISS_FRACTION, PlanProblem


def base_and_limits(problem: PlanProblem) -> tuple[int, np.ndarray]:
    """The paper's base type index and each type's feasible-bucket mask [T, B].

    Base: among types meeting QoS (mean service) at every size of the mix, the
    fastest at the largest size; if none covers every size, the one covering the most
    traffic. A type's auxiliary limit is its longest prefix of sizes within QoS.
    """
    s = problem.profile.mean_ms
    p = problem.probs
    ok = s <= problem.qos_ms
    prefix = np.cumprod(ok, axis=1).astype(bool)  # sizes up to the violation size
    cover = (prefix * p).sum(axis=1)
    full = cover >= p.sum() - 1e-12
    cand = np.flatnonzero(full) if full.any() else np.flatnonzero(cover == cover.max())
    last = np.flatnonzero(p > 0)[-1]
    base = int(cand[np.argmin(s[cand, last])])
    return base, prefix


def paper_bound(problem: PlanProblem, X: np.ndarray) -> np.ndarray:
    """The paper's upper bound (queries/s) for each row of counts ``X`` [N, T]."""
    X = np.asarray(X, dtype=float)
    s = problem.profile.mean_ms / 1000.0  # seconds
    p = problem.probs
    base, prefix = base_and_limits(problem)
    aux = [t for t in range(problem.T) if t != base]
    nb = X[:, base]
    if not aux:
        return nb / float((p * s[base]).sum())
    A = X[:, aux]  # [N, A]
    # the small set is every size some present auxiliary type can serve (max of limits)
    lim = prefix[aux].sum(axis=1)  # [A] number of buckets in each aux prefix
    present = A > 0
    v = np.where(present, lim[None, :], 0).max(axis=1)  # [N]
    cum_p = np.concatenate([[0.0], np.cumsum(p)])
    p_small = cum_p[v]
    # aggregated auxiliary rate on the small queries: sum_a n_a / E[s_a | small]
    cum_ps = np.concatenate([np.zeros((len(aux), 1)), np.cumsum(p[None, :] * s[aux], axis=1)], axis=1)  # [A, B+1]
    load_small = cum_ps[:, v].T  # [N, A] sum_{b<v} p_b s_ab
    with np.errstate(divide="ignore", invalid="ignore"):
        es = np.where(p_small[:, None] > 0, load_small / p_small[:, None], np.inf)
        aux_rate = (A / es).sum(axis=1)  # small queries/s the auxiliaries can serve
        r_aux = np.where(p_small > 0, aux_rate / p_small, np.inf)
        cum_base = np.concatenate([[0.0], np.cumsum(p * s[base])])
        base_load = cum_base[-1] - cum_base[v]  # seconds of base work per query (the rest)
        r_base = np.where(base_load > 0, nb / base_load, np.inf)
        # without base instances the large queries cannot be served: only if they are <= 1%
        r_base = np.where((nb == 0) & (1.0 - p_small > MISS_FRACTION + 1e-12), 0.0, r_base)
        out = np.minimum(r_base, r_aux)
        # no auxiliary present: base alone
        alone = nb / float((p * s[base]).sum())
        out = np.where(v == 0, alone, out)
    return np.where(np.isfinite(out), out, 0.0)


class FluidLP(_FluidLP):
    """The fluid-bound LP (:class:`kairos.plan.fluid.FluidLP`) over every type of a problem.

    ``service_ms``/``feasible_ms`` default to the profile's means; :meth:`solve` returns
    the bound (queries/s) and the capacity duals ``u`` [T] (queries/s per instance): for
    any counts ``m``, ``bound(m) <= u . m``.
    """

    def __init__(self, problem: PlanProblem, service_ms=None, feasible_ms=None, miss_fraction: float = MISS_FRACTION):
        self.problem = problem
        mean = problem.profile.mean_ms
        super().__init__(
            mean if service_ms is None else service_ms,
            problem.probs,
            problem.qos_ms,
            miss_fraction,
            mean if feasible_ms is None else feasible_ms,
        )
