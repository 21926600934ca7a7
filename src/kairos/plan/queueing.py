"""The queueing correction of the default planner: headroom per (type, size) pair.

The fluid bound lets every instance run 100% busy and lets a query use all of its
QoS as service time, which no queue with random arrivals can do. For a type ``t``
with ``n`` instances, a query of size bucket ``b`` has slack ratio
``r_tb = (QoS - s_tb) / s_tb`` (how many of its own service times it may wait). It
meets QoS with probability ``1 - eps`` only if its type runs at a utilisation at most
``rho_tb(n)``, the largest ``rho`` with

    C(n, n rho) * exp(-n (1 - rho) * kappa * r_tb) <= eps      (M/M/n wait tail, Erlang C)

In the corrected fluid LP a query of that pair consumes ``s_tb / rho_tb(n)`` of
capacity instead of ``s_tb``: queries with a lot of slack (small queries on fast
types) fill an instance almost completely, queries near their QoS limit need idle
headroom, and a type with more instances pools its queue (``rho`` grows with ``n``,
the square-root-staffing effect). ``kappa`` scales the exponential M/M/n tail to
this system: service times of one size are nearly deterministic (the Allen-Cunneen
factor 2/(1+cs^2) ~ 2) and the dispatcher serves urgent queries first rather than in
arrival order (about another factor 2); ``kappa = 4`` was chosen on simulations of
the five paper models at $1.5 and $2.5/h (docs/planning.md).
"""

from __future__ import annotations

import numpy as np

EPS = 0.01
KAPPA = 8.0


def erlang_c(n: int, a: np.ndarray) -> np.ndarray:
    """Probability of waiting in M/M/n for offered loads ``a`` (Erlangs), vectorised."""
    a = np.asarray(a, dtype=float)
    b = np.ones_like(a)
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    rho = a / n
    with np.errstate(divide="ignore", invalid="ignore"):
        c = b / (1.0 - rho * (1.0 - b))
    return np.where(a >= n, 1.0, np.where(a <= 0, 0.0, c))


def max_utilisation(n: int, slack_ratio, eps: float = EPS, kappa: float = KAPPA) -> np.ndarray:
    """Largest rho (array over slack ratios) with P(wait > slack) <= eps for n instances."""
    r = np.atleast_1d(np.asarray(slack_ratio, dtype=float))
    if n <= 0:
        return np.zeros_like(r)
    k = kappa * np.maximum(r, 0.0)
    lo = np.zeros_like(r)
    hi = np.full_like(r, 0.999)

    def ok(rho):
        return erlang_c(n, n * rho) * np.exp(-n * (1.0 - rho) * k) <= eps

    top = ok(hi)
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    return np.where(top, 0.999, lo)


def pair_utilisation(
    mean_ms: np.ndarray, qos_ms: float, counts, eps: float = EPS, kappa: float = KAPPA, floor: float = 1e-3
) -> np.ndarray:
    """[T, B] allowed utilisation rho_tb(n_t) (types with n_t = 0 are taken at n_t = 1)."""
    s = np.asarray(mean_ms, dtype=float)
    r = np.maximum(qos_ms - s, 0.0) / np.maximum(s, 1e-12)
    rho = np.empty_like(s)
    for t, n in enumerate(np.asarray(counts, dtype=np.int64)):
        rho[t] = max_utilisation(max(int(n), 1), r[t], eps, kappa)
    return np.maximum(rho, floor)
