"""Shared test helpers: tiny hand-made profiles and pools."""

from __future__ import annotations

import numpy as np
import pytest

from kairos.dispatch import ArrayQueries, DispatchContext, Pool
from kairos.profiles.profile import QUANTILE_LEVELS, Profile


def make_profile(mean_ms, types=("gpu", "cpu"), batches=(10, 100, 1000), spread=0.0, model="toy") -> Profile:
    """A profile with the given mean service times [types][batches]; quantiles mean*(1 +- spread)."""
    mean = np.asarray(mean_ms, dtype=float)
    lv = QUANTILE_LEVELS
    q = mean[:, :, None] * (1 + spread * (2 * lv[None, None, :] - 1))
    return Profile(model, tuple(types), np.asarray(batches, dtype=np.int64), mean, lv.copy(), q)


class Toy:
    """A bound policy plus a pool with queries of chosen sizes, for hand-made cases."""

    def __init__(self, policy, profile, type_of, qos_ms, sizes, arrivals=None):
        self.profile = profile
        self.bucket = profile.bucket_of(np.asarray(sizes))
        self.arrival = np.zeros(len(sizes)) if arrivals is None else np.asarray(arrivals, dtype=float)
        self.policy = policy
        policy.bind(DispatchContext(profile, list(type_of), qos_ms, 0))
        self.pool = Pool(type_of, profile.mean_ms.tolist(), ArrayQueries(self.bucket, self.arrival))

    def occupy(self, j, qid, now=0.0):
        """Make instance j busy with query qid (started at now)."""
        assert self.pool.assign(qid, j, now)

    def hold(self, j, qid, now=0.0):
        """Give instance j query qid (it starts, or waits in j's own queue)."""
        self.pool.assign(qid, j, now)

    def dispatch(self, now, queue):
        return sorted(self.policy.dispatch(now, list(queue), self.pool))


@pytest.fixture
def toy_profile():
    # gpu: 10/20/100 ms; cpu: 5/40/400 ms at batch 10/100/1000
    return make_profile([[10.0, 20.0, 100.0], [5.0, 40.0, 400.0]])


def pytest_collection_modifyitems(config, items):
    """serve, ray and torch tests count as slow: ``pytest -m "not slow"`` is the fast part."""
    for item in items:
        if any(item.get_closest_marker(m) for m in ("serve", "ray", "torch")) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
