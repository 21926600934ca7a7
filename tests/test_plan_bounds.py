"""Bounds and the MILP: the fluid bound is never below simulated throughput; the MILP is exact."""

import numpy as np
import pytest
from plan_helpers import tiny_catalogue, tiny_mix

from kairos.plan.bounds import FluidLP, base_and_limits, paper_bound
from kairos.plan.fluid import config_fluid_bound
from kairos.plan.milp import FluidMILP
from kairos.plan.queueing import erlang_c, max_utilisation
from kairos.plan.space import PlanProblem, count_configurations, dominated_types, enumerate_configurations
from kairos.plan.synthetic import synthetic_catalogue
from kairos.profiles import builtin_catalogue
from kairos.sim.experiment import Experiment
from kairos.workload.sizes import parse_size_mix


def test_enumeration_matches_count_and_budget():
    prices = np.array([0.526, 0.432, 0.149, 0.1664])
    X = enumerate_configurations(prices, 1.5)
    assert len(X) == count_configurations(prices, 1.5)
    assert (X @ prices <= 1.5 + 1e-9).all() and (X.sum(axis=1) > 0).all()
    assert len({tuple(r) for r in X}) == len(X)
    # brute force over the box
    box = [
        (a, b, c, d)
        for a in range(3)
        for b in range(4)
        for c in range(11)
        for d in range(10)
        if 0 < a + b + c + d and np.dot((a, b, c, d), prices) <= 1.5 + 1e-9
    ]
    assert sorted(map(tuple, X.tolist())) == sorted(box)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fluid_bound_never_below_simulated_throughput(seed):
    rng = np.random.default_rng(seed)
    cat = tiny_catalogue(seed=seed, jitter=0.08)
    mix = tiny_mix(rng.dirichlet(np.ones(4)) + 0.02)
    qos = float(rng.uniform(30, 90))
    counts = rng.integers(0, 3, 3)
    counts[0] = max(counts[0], 1)  # the fast type serves every size within QoS
    config = {t: int(k) for t, k in zip(("t0", "t1", "t2"), counts) if k}
    exp = Experiment.build(cat, "toy", config, qos, mix, queries=3000, seed=seed)
    assert exp.fluid_bound() > 0
    res = exp.max_qps("kairos")
    # the fluid bound ignores queueing: a finite Poisson run may pass slightly above it only
    # by sampling luck (arrival counts), never by more than a few percent
    assert res.max_qps <= exp.fluid_bound() * 1.03
    assert res.max_qps > 0


def test_fluid_lp_matches_fluid_bound_and_duals_bound_every_config():
    cat = builtin_catalogue()
    prob = PlanProblem.build(cat, "rm2", 1.5, 350.0, parse_size_mix("deeprecsys"))
    lp = FluidLP(prob)
    X = enumerate_configurations(prob.prices, 1.5)
    vals = np.array([lp.solve(x)[0] for x in X[::5]])
    ref = np.array([config_fluid_bound(prob.profile, prob.to_config(x), prob.probs, 350.0).qps for x in X[::5]])
    assert np.allclose(vals, ref, rtol=1e-6)
    q, u = lp.solve(X[np.argmax(vals) * 5])
    assert (X[::5] @ u >= vals - 1e-6 * (1 + vals)).all()  # every dual gives a valid linear bound


def test_uncorrected_milp_is_exact_argmax_of_fluid_bound():
    cat = synthetic_catalogue(6, seed=3)
    prob = PlanProblem.build(cat, "wnd", 0.9, 40.0, parse_size_mix("deeprecsys"))
    lp = FluidLP(prob)
    X = enumerate_configurations(prob.prices, prob.budget)
    best = max(lp.solve(x)[0] for x in X)
    m = FluidMILP(prob, corrected=False, gap=1e-7)
    n = m.solve(np.ones(prob.T, dtype=np.int64))
    assert prob.within_budget(n)
    assert lp.solve(n)[0] == pytest.approx(best, rel=1e-6)


def test_dominated_types_never_hold_the_optimum():
    cat = synthetic_catalogue(8, seed=1)
    prob = PlanProblem.build(cat, "ncf", 0.8, 5.0, parse_size_mix("deeprecsys"))
    dom = dominated_types(prob)
    lp = FluidLP(prob)
    X = enumerate_configurations(prob.prices, prob.budget)
    vals = np.array([lp.solve(x)[0] for x in X])
    best = vals.max()
    free = ~(X[:, dom] > 0).any(axis=1)
    assert vals[free].max() == pytest.approx(best, rel=1e-6)


def test_paper_bound_base_type_and_alone():
    cat = builtin_catalogue()
    prob = PlanProblem.build(cat, "rm2", 2.5, 350.0, parse_size_mix("deeprecsys"))
    base, prefix = base_and_limits(prob)
    assert prob.types[base] == "g4dn.xlarge"
    assert prefix[base].all() and not prefix[prob.types.index("t3.xlarge")].all()
    n = np.zeros((1, prob.T))
    n[0, base] = 2
    s = prob.profile.mean_ms[base] / 1000.0
    assert paper_bound(prob, n)[0] == pytest.approx(2.0 / float((prob.probs * s).sum()))
    # adding an auxiliary never lowers the paper bound here, and no base -> large queries unserved
    n2 = n.copy()
    n2[0, prob.types.index("r5n.large")] = 5
    assert paper_bound(prob, n2)[0] > paper_bound(prob, n)[0]
    n3 = np.zeros((1, prob.T))
    n3[0, prob.types.index("r5n.large")] = 5
    assert paper_bound(prob, n3)[0] == 0.0


def test_queueing_headroom_monotone():
    assert erlang_c(1, np.array([0.5]))[0] == pytest.approx(0.5)
    r1 = max_utilisation(1, [1.0, 4.0])
    r8 = max_utilisation(8, [1.0, 4.0])
    assert (r8 > r1).all() and r1[1] > r1[0]  # pooling and slack both allow more load
    assert (r8 < 1).all() and (r1 > 0).all()
