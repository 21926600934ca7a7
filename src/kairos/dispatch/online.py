"""Online correction of latency estimates from the service times a dispatcher observes.

A profile is measured once, elsewhere; the pool that serves is never exactly that
hardware (another host, a noisy neighbour, the gateway's own transport time). A
dispatcher that trusts wrong estimates sends queries where they miss QoS. This
module learns, per (instance type, size bucket), the mean of the service times
actually observed and blends it with the profile's estimate:

    type ratio  r_t  = sum of observed / sum of their estimates      (after MIN_TYPE_OBS)
    prior       m0_tb = r_t * est_tb
    estimate    m_tb = (sum_tb + K * m0_tb) / (n_tb + K)

so a bucket seen often follows its observations, a rarely seen one follows the
type's overall bias, and an unseen one keeps the profile (times the type's ratio).
Tail estimates keep the profile's tail/mean shape: tail_tb * m_tb / est_tb.

The learner is plain state plus vectorised ``estimates()`` and ``tails()`` calls; the
policy decides when to refresh its tables (every ``REFRESH`` observations).
"""

from __future__ import annotations

import numpy as np

K = 2.0  # pseudo-observations of the prior per (type, bucket)
MIN_TYPE_OBS = 20  # observations of a type before its overall ratio is trusted
REFRESH = 64  # observations between two refreshes of the policy's tables


class OnlineEstimates:
    """Running sums of observed service times per (type, bucket)."""

    def __init__(self, est_ms: np.ndarray, tail_ms: np.ndarray | None = None):
        self.est = np.asarray(est_ms, dtype=float)
        T, B = self.est.shape
        # tail_tb / est_tb (1 where the estimate is 0, or without tails)
        self.tail_shape = np.ones((T, B))
        if tail_ms is not None:
            pos = self.est > 0
            self.tail_shape = np.where(pos, np.asarray(tail_ms, dtype=float) / np.where(pos, self.est, 1.0), 1.0)
        self.n = np.zeros((T, B))
        self.sum = np.zeros((T, B))
        self.pending = 0  # observations since the last refresh
        self.total = 0

    def observe(self, t: int, b: int, service_ms: float) -> bool:
        """Record one service time; True when the policy should refresh its tables."""
        self.n[t, b] += 1.0
        self.sum[t, b] += service_ms
        self.pending += 1
        self.total += 1
        return self.pending >= REFRESH

    def ratios(self) -> np.ndarray:
        """[types] observed / estimated service time, 1 where too few observations."""
        n_t = self.n.sum(axis=1)
        exp_t = (self.n * self.est).sum(axis=1)
        r = np.ones(len(n_t))
        ok = (n_t >= MIN_TYPE_OBS) & (exp_t > 0)
        r[ok] = self.sum.sum(axis=1)[ok] / exp_t[ok]
        return r

    def estimates(self) -> np.ndarray:
        """[types, buckets] corrected mean service times (ms)."""
        self.pending = 0
        prior = self.ratios()[:, None] * self.est
        return (self.sum + K * prior) / (self.n + K)

    def tails(self, mean_ms: np.ndarray) -> np.ndarray:
        """[types, buckets] tail estimates for corrected means ``mean_ms`` (from :meth:`estimates`):
        the profile's tail/mean shape kept."""
        return mean_ms * self.tail_shape
