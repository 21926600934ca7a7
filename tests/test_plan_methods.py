"""The planning methods: exhaustive is exact, every method stays within budget and allowed types."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_helpers import tiny_catalogue, tiny_mix

from kairos.errors import KairosInputError
from kairos.paper import PAPER_QOS_MS, PAPER_TYPES
from kairos.plan.bounds import paper_bound
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import METHODS, run_method
from kairos.plan.space import PlanProblem, enumerate_configurations
from kairos.profiles import builtin_catalogue
from kairos.workload.sizes import parse_size_mix

QOS = 60.0
BUDGET = 1.6


@pytest.fixture(scope="module")
def tiny():
    cat = tiny_catalogue()
    mix = tiny_mix()
    prob = PlanProblem.build(cat, "toy", BUDGET, QOS, mix)
    ev = Evaluator(cat, "toy", QOS, mix, queries=2000, seed=0)
    return prob, ev


@pytest.mark.slow
def test_exhaustive_equals_brute_force(tiny):
    prob, ev = tiny
    X = enumerate_configurations(prob.prices, prob.budget)
    brute = ev.many([prob.to_config(x) for x in X])
    res = run_method("exhaustive", prob, ev)
    assert res.measured_qps == pytest.approx(max(brute))
    assert ev(res.config) == pytest.approx(max(brute))
    assert 0 < res.evaluations < len(X)  # the fluid bound pruned the rest


@pytest.mark.slow
def test_kairos_plus_and_homogeneous_and_milp(tiny):
    prob, ev = tiny
    X = enumerate_configurations(prob.prices, prob.budget)
    vals = dict(zip(map(tuple, X.tolist()), ev.many([prob.to_config(x) for x in X])))
    best = max(vals.values())
    kp = run_method("kairos+", prob, ev)
    assert kp.evaluations >= 1 and kp.measured_qps == pytest.approx(vals[prob.to_counts(kp.config)])
    homo = run_method("homogeneous", prob, ev)
    assert len(homo.config) == 1
    singles = [v for k, v in vals.items() if sum(1 for c in k if c) == 1]
    assert homo.measured_qps == pytest.approx(max(singles))
    m = run_method("milp", prob, ev, evals=3)
    assert m.evaluations <= 3
    assert vals[prob.to_counts(m.config)] >= 0.9 * best


def test_kairos_centre_of_top10(tiny):
    prob, _ = tiny
    res = run_method("kairos", prob)
    X = enumerate_configurations(prob.prices, prob.budget)
    ub = paper_bound(prob, X)
    top = X[np.argsort(-ub, kind="stable")[:10]]
    assert any((row == np.array(prob.to_counts(res.config))).all() for row in top)
    d = ((top - top.mean(axis=0)) ** 2).sum(axis=1)
    assert ((np.array(prob.to_counts(res.config)) - top.mean(axis=0)) ** 2).sum() == pytest.approx(d.min())
    assert res.evaluations == 0


@pytest.mark.slow
def test_ribbon_and_random_use_the_same_number_of_evaluations(tiny):
    prob, ev = tiny
    rb = run_method("ribbon", prob, ev, evals=6)
    rk = run_method("ribbon-kairos", prob, ev, evals=6)
    rnd = run_method("random", prob, ev, evals=6)
    assert rb.evaluations == rk.evaluations == rnd.evaluations == 6
    assert rb.policy == "fcfs" and rk.policy == "kairos"
    assert rk.measured_qps == pytest.approx(ev(rk.config))
    assert rb.measured_qps == pytest.approx(ev(rb.config, "fcfs"))


CAT = builtin_catalogue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(PAPER_QOS_MS)),
    budget=st.floats(0.2, 8.0),
    types=st.sets(st.sampled_from(PAPER_TYPES), min_size=1, max_size=4),
    method=st.sampled_from(["milp", "kairos", "homogeneous"]),
    qos_scale=st.floats(0.8, 3.0),
)
def test_property_within_budget_and_allowed_types(model, budget, types, method, qos_scale):
    mix = parse_size_mix("deeprecsys")
    try:
        prob = PlanProblem.build(CAT, model, budget, PAPER_QOS_MS[model] * qos_scale, mix, sorted(types))
        res = run_method(method, prob, None, evals=0)
    except KairosInputError:
        return  # infeasible inputs are reported as input errors (tested in test_plan_cli)
    assert set(res.config) <= set(types)
    assert all(isinstance(k, int) and k > 0 for k in res.config.values())
    cost = sum(CAT.prices[t] * k for t, k in res.config.items())
    assert cost <= budget + 1e-9
    assert res.cost_per_hour == pytest.approx(cost)


def test_every_registered_method_is_named():
    assert set(METHODS) == {
        "milp",
        "kairos",
        "kairos+",
        "exhaustive",
        "homogeneous",
        "ribbon",
        "ribbon-kairos",
        "random",
    }


def test_what_the_cli_needs_is_derived_from_the_method_records():
    """One PlanMethod per method: the sets the CLI checks options against come from the records."""
    from kairos.plan.methods import MIN_EVALS, SIMULATING, USES_EVALS, USES_MAX_EVALS

    assert SIMULATING == {"kairos+", "exhaustive", "ribbon", "ribbon-kairos", "random"}
    assert MIN_EVALS == {"milp": 0, "random": 1, "ribbon": 1, "ribbon-kairos": 1}
    assert USES_EVALS == ("milp", "random", "ribbon", "ribbon-kairos") and USES_MAX_EVALS == ("kairos+",)
    assert {n: m.policy for n, m in METHODS.items() if m.simulates != "never"} == {
        "milp": "kairos",
        "kairos+": "kairos",
        "exhaustive": "kairos",
        "homogeneous": "kairos",
        "ribbon": "fcfs",
        "ribbon-kairos": "kairos",
        "random": "kairos",
    }
    assert METHODS["kairos"].dispatch_policies == () and METHODS["ribbon"].dispatch_policies == ("fcfs",)


def test_a_method_simulates_with_the_policy_of_its_record(tiny, monkeypatch):
    """run_method passes the record's policy: a registered variant of random search evaluated
    with fcfs measures (and reports) fcfs throughput, with the same candidates as random."""
    from kairos.plan.methods import PlanMethod, plan_random

    prob, ev = tiny
    monkeypatch.setitem(METHODS, "random-fcfs", PlanMethod("random-fcfs", plan_random, policy="fcfs", min_evals=1))
    k = run_method("random", prob, ev, evals=4)
    f = run_method("random-fcfs", prob, ev, evals=4)
    assert f.policy == "fcfs" and k.policy == "kairos"
    assert f.measured_qps == pytest.approx(max(ev(c["config"], "fcfs") for c in k.candidates))
    assert {c["policy"] for c in f.candidates} == {"fcfs"}
    with pytest.raises(KairosInputError, match="unknown --method 'nope'; choose one of milp, .*random-fcfs"):
        run_method("nope", prob, ev)


def test_evaluator_disk_cache_resumes(tmp_path):
    cat = tiny_catalogue()
    mix = tiny_mix()
    path = tmp_path / "cache.jsonl"
    ev = Evaluator(cat, "toy", QOS, mix, queries=500, seed=0, cache_path=path)
    q = ev({"t0": 1, "t2": 2})
    assert ev.simulated == 1 and q > 0
    again = Evaluator(cat, "toy", QOS, mix, queries=500, seed=0, cache_path=path)
    assert again({"t2": 2, "t0": 1}) == q and again.simulated == 0  # same key whatever the order
    other = Evaluator(cat, "toy", QOS, mix, queries=600, seed=0, cache_path=path)
    other({"t0": 1, "t2": 2})
    assert other.simulated == 1  # a different query count is a different evaluation


def test_evaluator_cache_is_not_served_to_a_policy_whose_defaults_changed(tmp_path, monkeypatch):
    """Results cached under kairos's current defaults are not taken for kairos with other
    defaults (the key holds the policy's settings, not just its name)."""
    from kairos.dispatch.kairos import KairosPolicy

    cat, mix, path = tiny_catalogue(), tiny_mix(), tmp_path / "cache.jsonl"
    ev = Evaluator(cat, "toy", QOS, mix, queries=500, seed=0, cache_path=path)
    q = ev({"t0": 1, "t2": 2})
    assert Evaluator(cat, "toy", QOS, mix, queries=500, seed=0, cache_path=path).cached({"t0": 1, "t2": 2}) == q
    old = KairosPolicy.__init__

    def new_defaults(self, *a, **kw):  # as if urgency's default had become 2
        kw.setdefault("urgency", 2.0)
        old(self, *a, **kw)

    monkeypatch.setattr(KairosPolicy, "__init__", new_defaults)
    later = Evaluator(cat, "toy", QOS, mix, queries=500, seed=0, cache_path=path)
    assert later.cached({"t0": 1, "t2": 2}) is None
    later({"t0": 1, "t2": 2})
    assert later.simulated == 1 and '"urgency":2.0' in later.key({"t0": 1}, "kairos")
