"""Planning for a rate (`kairos plan --target-qps`): the cheapest configuration whose
simulated QoS-throughput reaches the target, checked against brute force and exhaustive search.

The comparison on the built-in catalogue (5 models x 3 rates, 20,000-query simulations) is
long: it is marked ``slow`` and runs only with ``KAIROS_SLOW=1``; ``KAIROS_EVAL_CACHE=FILE``
keeps its simulations in a resumable JSON-lines cache.
"""

import json
import os
import time
from dataclasses import replace

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from plan_helpers import tiny_catalogue, tiny_mix

from kairos.errors import KairosInputError
from kairos.paper import PAPER_QOS_MS
from kairos.plan import target
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import plan_exhaustive
from kairos.plan.space import PlanProblem, enumerate_configurations
from kairos.plan.target import NO_CAP, plan_for_rate, plan_for_rate_exhaustive, rate_context
from kairos.profiles import builtin_catalogue
from kairos.workload.sizes import parse_size_mix

QOS = 60.0
BRUTE_BUDGET = 1.6  # every configuration of the tiny catalogue up to this cost is simulated


@pytest.fixture(scope="module")
def tiny_problem():
    return PlanProblem.build(tiny_catalogue(), "toy", NO_CAP, QOS, tiny_mix())


@pytest.fixture(scope="module")
def tiny(tiny_problem):
    """The tiny problem, its evaluator and every configuration within BRUTE_BUDGET with its max QPS."""
    prob = tiny_problem
    cat, mix = prob.catalogue, prob.mix
    ev = Evaluator(cat, "toy", QOS, mix, queries=2000, seed=0)
    X = enumerate_configurations(prob.prices, BRUTE_BUDGET)
    qps = np.array(ev.many([prob.to_config(x) for x in X]))
    return prob, ev, X, qps


def brute_cheapest(prob, X, qps, rate) -> float:
    ok = qps >= rate
    assert ok.any()
    return float((X[ok] @ prob.prices).min())


@pytest.mark.slow
@pytest.mark.parametrize("rate", [30.0, 100.0, 150.0])
def test_cheapest_passing_equals_brute_force(tiny, rate):
    prob, ev, X, qps = tiny
    best = brute_cheapest(prob, X, qps, rate)
    res = plan_for_rate(prob, rate, ev)
    assert res.measured_qps >= rate and ev(res.config) == pytest.approx(res.measured_qps)
    assert res.cost_per_hour == pytest.approx(best)
    assert 1 <= res.evaluations < len(X)
    exh = plan_for_rate_exhaustive(prob, rate, ev)
    assert exh.cost_per_hour == pytest.approx(best) and exh.measured_qps >= rate


@pytest.mark.slow
def test_one_shot_is_the_model_cheapest_and_calls_are_deterministic():
    """Without simulations, the answer is the cheapest configuration whose queueing-corrected
    estimate reaches the rate (checked by enumerating every cheaper one); the same call gives
    the same answer, whatever was cached before."""
    cat, mix = builtin_catalogue(), parse_size_mix("deeprecsys")
    for model, rate in (("rm2", 150.0), ("ncf", 7000.0)):
        prob = PlanProblem.build(cat, model, NO_CAP, PAPER_QOS_MS[model], mix)
        res = plan_for_rate(prob, rate)
        assert res.evaluations == 0 and res.measured_qps is None and res.predicted_kind == "estimate"
        assert res.predicted_qps >= rate
        ctx = rate_context(prob)
        assert rate_context(prob) is ctx  # cached per (profile, types, prices, QoS, mix)
        assert res.cost_per_hour >= ctx.fluid_cost(rate)  # the fluid bound's least cost is a lower bound
        kept = ctx.milp.problem
        cheaper = enumerate_configurations(kept.prices, res.cost_per_hour - 1e-6)
        assert len(cheaper) > 20
        assert max(ctx.estimate(x) for x in cheaper) < rate
        target._CONTEXTS.clear()
        again = plan_for_rate(prob, rate)
        assert (again.config, again.cost_per_hour, again.predicted_qps) == (
            res.config,
            res.cost_per_hour,
            res.predicted_qps,
        )


@pytest.mark.slow
def test_budget_caps_the_cost(tiny):
    prob, ev, X, qps = tiny
    capped = replace(prob, budget=1.0)
    res = plan_for_rate(capped, 60.0, ev)
    assert res.cost_per_hour == pytest.approx(brute_cheapest(prob, X, qps, 60.0))
    assert res.cost_per_hour <= 1.0
    assert res.measured_qps >= 60.0
    with pytest.raises(KairosInputError, match="--target-qps 110: no configuration within --budget"):
        plan_for_rate(capped, 110.0, ev)  # {t1: 3} reaches it, at $1.05/h
    with pytest.raises(KairosInputError, match="--target-qps 5000: no pool within --budget"):
        plan_for_rate(capped, 5000.0, ev)


@pytest.mark.parametrize(
    "rate, needle",
    [
        (0, "--target-qps must be a finite number > 0"),
        (-3, "--target-qps must be a finite number > 0"),
        (float("nan"), "--target-qps must be a finite number > 0"),
        (float("inf"), "--target-qps must be a finite number > 0"),
        ("fast", "--target-qps must be a number > 0"),
        (1e9, "instances"),
    ],
)
def test_bad_rates_are_input_errors(tiny_problem, rate, needle):
    with pytest.raises(KairosInputError, match=needle):
        plan_for_rate(tiny_problem, rate)


# ---------------------------------------------------------------------- CLI
def test_cli_target_json_keys_and_emit(capsys, tmp_path):
    plan = tmp_path / "plan.json"
    code, out, err = run_cli(
        capsys,
        "plan",
        "--model",
        "ncf",
        "--target-qps",
        "3000",
        "--queries",
        "2000",
        "--no-compare",
        "--emit",
        str(plan),
        "--json",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["target_qps"] == 3000.0 and d["budget"] is None and d["method"] == "milp"
    for key in (
        "model",
        "qos_ms",
        "config",
        "cost_per_hour",
        "predicted_qps",
        "predicted_kind",
        "evaluations",
        "measured_qps",
        "candidates",
        "elapsed_s",
    ):
        assert key in d, key
    assert d["measured_qps"] >= 3000.0 and d["evaluations"] >= 1
    assert d["config"] and all(isinstance(v, int) and v > 0 for v in d["config"].values())
    meta = json.loads(plan.read_text())
    assert meta["target_qps"] == 3000.0 and meta["config"] == d["config"]


def test_cli_target_one_shot_within_budget(capsys):
    code, out, err = run_cli(
        capsys,
        "plan",
        "--model",
        "rm2",
        "--target-qps",
        "60",
        "--budget",
        "3",
        "--evals",
        "0",
        "--no-compare",
        "--json",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["budget"] == 3.0 and d["evaluations"] == 0 and d["cost_per_hour"] <= 3.0
    assert d["predicted_qps"] >= 60.0


@pytest.mark.parametrize(
    "args, needles",
    [
        (("--target-qps", "0"), ("--target-qps", "> 0")),
        (("--target-qps", "-5"), ("--target-qps", "> 0")),
        (("--target-qps", "nan"), ("--target-qps", "> 0")),
        (("--target-qps", "inf"), ("--target-qps", "> 0")),
        (("--target-qps", "lots"), ("--target-qps", "not a valid float")),
        (("--target-qps", "1e9"), ("--target-qps", "instances")),
        (("--target-qps", "500", "--budget", "2"), ("--target-qps 500", "--budget $2/h")),
        (("--target-qps", "60", "--method", "kairos"), ("--target-qps applies only to --method milp or exhaustive",)),
    ],
)
def test_cli_target_errors_one_line_exit_2(capsys, args, needles):
    code, out, err = run_cli(capsys, "plan", "--no-compare", *args)
    assert_one_line_error(code, err, *needles)


# ---------------------------------------------------------------------- built-in catalogue vs exhaustive
RATES = {
    "rm2": (60, 250, 550),
    "wnd": (800, 2500, 6000),
    "mtwnd": (500, 1800, 4200),
    "dien": (300, 1200, 2900),
    "ncf": (3000, 12000, 27000),
}


def exhaustive_cheapest_cost(prob, rate, ev, cost) -> float:
    """Least cost whose simulated max QPS reaches ``rate``, given a configuration of cost
    ``cost`` that does: the exhaustive budget planner just below ``cost`` (every configuration
    whose fluid bound exceeds the best measured is simulated); if it reaches the rate, the
    exhaustive rate planner continues from there."""
    below = plan_exhaustive(replace(prob, budget=cost - 1e-6), ev)
    if below.measured_qps < rate:
        return cost
    return plan_for_rate_exhaustive(prob, rate, ev, start_cost=below.cost_per_hour).cost_per_hour


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KAIROS_SLOW") != "1", reason="long: set KAIROS_SLOW=1")
@pytest.mark.parametrize("model", sorted(RATES))
def test_within_one_percent_of_exhaustive_on_builtin(model, tmp_path):
    cat, mix = builtin_catalogue(), parse_size_mix("deeprecsys")
    qos = PAPER_QOS_MS[model]
    prob = PlanProblem.build(cat, model, NO_CAP, qos, mix)
    ev = Evaluator(cat, model, qos, mix, cache_path=os.environ.get("KAIROS_EVAL_CACHE") or tmp_path / "ev.jsonl")
    for rate in RATES[model]:
        res = plan_for_rate(prob, rate, ev)
        assert res.measured_qps >= rate
        target._CONTEXTS.clear()
        t0 = time.process_time()
        again = plan_for_rate(prob, rate, ev)  # simulations cached: the planner's own time
        cpu = time.process_time() - t0
        assert again.config == res.config
        assert cpu < 2.0, (model, rate, cpu)
        best = exhaustive_cheapest_cost(prob, rate, ev, res.cost_per_hour)
        assert res.cost_per_hour <= 1.01 * best + 1e-9, (model, rate, res.config, res.cost_per_hour, best)
