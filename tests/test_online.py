"""Online correction of latency estimates (kairos-online)."""

import numpy as np
import pytest

from kairos.dispatch.online import MIN_TYPE_OBS, K, OnlineEstimates
from kairos.dispatch.registry import make_policy
from kairos.reproduce.noise import perturb_profile
from kairos.sim.engine import simulate
from kairos.sim.experiment import Experiment


def test_estimates_follow_observations_and_the_type_ratio():
    est = np.array([[10.0, 20.0], [5.0, 5.0]])
    o = OnlineEstimates(est)
    for _ in range(50):
        o.observe(0, 1, 30.0)  # type 0 is 1.5x slower than its profile at bucket 1
    got = o.estimates()
    assert got[0, 1] == pytest.approx(30.0)  # observations and prior (1.5 x 20) agree
    assert got[0, 0] == pytest.approx(15.0)  # unseen bucket: the profile times the type's ratio
    assert got[1].tolist() == [5.0, 5.0]  # unseen type: the profile


def test_type_ratio_waits_for_enough_observations():
    o = OnlineEstimates(np.array([[10.0, 20.0]]))
    for _ in range(MIN_TYPE_OBS - 1):
        o.observe(0, 1, 40.0)
    got = o.estimates()
    n = MIN_TYPE_OBS - 1
    assert got[0, 0] == 10.0  # ratio not trusted yet
    assert got[0, 1] == pytest.approx((40.0 * n + K * 20.0) / (n + K))


def test_refresh_is_signalled_every_refresh_observations():
    from kairos.dispatch.online import REFRESH

    o = OnlineEstimates(np.array([[10.0]]))
    flags = [o.observe(0, 0, 10.0) for _ in range(REFRESH)]
    assert flags[-1] and not any(flags[:-1])
    o.estimates()
    assert not o.observe(0, 0, 10.0)


def test_online_policy_recovers_from_wrong_estimates():
    """dien on the paper's pool with estimates off by up to 30% per (type, size): the fixed
    dispatcher misses QoS for > 1% of queries even at low load; the online one does not."""
    exp = Experiment.paper("dien", 4000, 0)
    seen = perturb_profile(exp.profile, 0.3, 1000)
    res = {}
    for pol in ("kairos", "kairos-online"):
        r = simulate(
            seen,
            exp.config,
            make_policy(pol),
            exp.workload,
            exp.qos_ms,
            rate=100,
            seed=0,
            size_probs=exp.probs,
            check=True,
        )
        assert r.completed == exp.workload.n  # nothing lost
        res[pol] = r.violations
    assert res["kairos"] > 0.015 * exp.workload.n
    assert res["kairos-online"] < 0.01 * exp.workload.n
    assert res["kairos-online"] < res["kairos"] / 3


def test_online_policy_with_exact_estimates_matches_kairos_closely():
    exp = Experiment.paper("ncf", 4000, 0)
    a = exp.run("kairos", 5000.0)
    b = exp.run("kairos-online", 5000.0)
    assert abs(a.violations - b.violations) <= 0.005 * exp.workload.n


def test_offloaded_coefficient_solve_is_applied_when_done():
    """With ``offload`` set (a gateway), the coefficients' LP is handed out when due,
    the old coefficients stay in use meanwhile, and the result is used once it is in:
    the same coefficients the in-place solve (the simulator's path) computes."""
    from kairos.dispatch import DictQueries, DispatchContext, Pool
    from kairos.dispatch.kairos import compute_coefficients
    from kairos.sim.engine import pool_type_ids

    exp = Experiment.paper("dien", 100, 0)
    prof = exp.profile
    tid = pool_type_ids(prof, exp.config)
    inplace, offloaded = make_policy("kairos-online"), make_policy("kairos-online")
    calls = []
    offloaded.offload = lambda fn, args, done: calls.append((fn, args, done))
    pools = []
    for pol in (inplace, offloaded):
        pol.bind(DispatchContext(prof, tid, exp.qos_ms, 0, exp.probs))
        pools.append(Pool(tid, prof.mean_ms.tolist(), DictQueries({0: 50}, {0: 0.0})))
    C0 = offloaded.C.copy()
    for k in range(300):  # every type runs 3% slower than its profile
        b, j = k % 100, k % len(tid)
        for pol in (inplace, offloaded):
            pol.observe(b, j, 1.03 * prof.mean_ms[tid[j], b])
    for pol, pool in zip((inplace, offloaded), pools):
        pol.dispatch(1.0, [0], pool)
    assert len(calls) == 1 and calls[0][0] is compute_coefficients
    assert np.array_equal(offloaded.C, C0)  # meanwhile: the previous coefficients
    fn, args, done = calls[0]
    done(fn(*args))
    np.testing.assert_allclose(offloaded.C, inplace.C)
    offloaded.dispatch(2.0, [0], pools[1])  # tables rebuilt with the new coefficients
    np.testing.assert_allclose(offloaded.tables.cost_bj, inplace.tables.cost_bj)
