"""The window bound: exact on hand-made cases, never below what a simulated dispatcher achieves."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairos.plan.window import block_window_bound, window_bound
from kairos.sim.experiment import Experiment


def test_one_instance_two_queries_share_one_window():
    # both arrive at 0, 6 ms each, 10 ms QoS: 10 ms of capacity in the window, 12 ms of work
    assert window_bound([0.0, 0.0], [[6.0], [6.0]], [1], 10.0) == pytest.approx(10.0 / 6.0)
    # 10 ms apart: each has its own window
    assert window_bound([0.0, 10.0], [[6.0], [6.0]], [1], 10.0) == pytest.approx(2.0)
    # a second instance of the type serves the other one
    assert window_bound([0.0, 0.0], [[6.0], [6.0]], [2], 10.0) == pytest.approx(2.0)


def test_window_bound_keeps_each_query_on_one_instance_at_a_time():
    # 12 ms of work within a 10 ms window: two idle instances cannot split it
    assert window_bound([0.0], [[12.0]], [2], 10.0) == 0.0
    # 8 ms fits on one of them
    assert window_bound([0.0], [[8.0]], [2], 10.0) == pytest.approx(1.0)


def test_window_bound_sends_each_query_to_a_type_that_meets_qos():
    # type 0 too slow for the first query, type 1 free for it; the second fits type 0
    assert window_bound([0.0, 0.0], [[11.0, 9.0], [4.0, 9.0]], [1, 1], 10.0) == pytest.approx(2.0)
    # both can only use type 1 (one instance): 10 ms of capacity for 18 ms of work
    assert window_bound([0.0, 0.0], [[11.0, 9.0], [11.0, 9.0]], [1, 1], 10.0) == pytest.approx(10.0 / 9.0)


def test_window_bound_counts_only_the_part_of_a_slot_inside_the_window():
    # arrival 0.6 ms into a 1 ms slot, QoS 2 ms, 2 ms of work: exactly the window
    assert block_window_bound([0.6], [[2.0]], [1], 2.0, 0.0, 1.0) == pytest.approx(1.0)
    # 2.1 ms of work cannot fit a 2 ms window whatever the slots
    assert block_window_bound([0.6], [[2.1]], [1], 2.0, 0.0, 1.0) == 0.0


def test_blocks_only_loosen_the_bound():
    rng = np.random.default_rng(0)
    arrive = np.sort(rng.uniform(0, 200, 300))
    service = rng.uniform(2, 12, (300, 2))
    whole = window_bound(arrive, service, [2, 3], 15.0, block_ms=1e9)
    assert whole <= window_bound(arrive, service, [2, 3], 15.0, block_ms=50.0) + 1e-6
    assert 0 < whole < 300


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 1000), load=st.sampled_from([0.7, 0.9, 1.1, 1.3]), model=st.sampled_from(["dien", "rm2", "ncf"])
)
def test_window_bound_never_below_what_a_simulated_dispatcher_achieves(seed, load, model):
    exp = Experiment.paper(model, 400, seed)
    rate = load * exp.fluid_bound()
    bound = exp.window_bound(rate, block_queries=150)
    assert bound <= exp.workload.n + 1e-6
    for policy in ("kairos", "fcfs", "clockwork"):
        res = exp.run(policy, rate)
        within = int((res.latency_ms <= exp.qos_ms).sum())
        assert within <= bound + 1e-6, (policy, within, bound)


def test_window_probe_judges_the_forced_misses_against_the_criterions_allowance():
    from kairos.sim.search import allowed_misses
    from kairos.sim.window_search import window_probe

    exp = Experiment.paper("dien", 400, 0)
    for load in (0.6, 1.2):
        row = window_probe(exp, load * exp.fluid_bound(), block_queries=150)
        assert row["forced_misses"] == pytest.approx(400 - row["within_qos_bound"])
        assert row["within_qos_bound"] == pytest.approx(exp.window_bound(row["rate"], block_queries=150))
        assert row["could_pass"] == (row["forced_misses"] <= allowed_misses(400))
    assert window_probe(exp, 0.6 * exp.fluid_bound(), block_queries=150)["could_pass"]
    assert not window_probe(exp, 1.2 * exp.fluid_bound(), block_queries=150)["could_pass"]


@pytest.mark.slow
def test_window_max_qps_ends_between_a_passing_and_a_failing_probe_within_half_a_percent():
    from kairos.sim.window_search import window_max_qps

    exp = Experiment.paper("dien", 400, 2)  # on these 400 queries the LP does not allow the fluid rate
    probes = []
    found = window_max_qps(exp, block_queries=150, on_probe=probes.append)
    rate = found["window_bound_qps"]
    assert found["fluid_bound_qps"] == pytest.approx(exp.fluid_bound())
    assert not found["capped_at_fluid"] and rate < found["fluid_bound_qps"]
    assert any(p["rate"] == rate and p["could_pass"] for p in probes)
    fails_above = [p["rate"] for p in probes if p["rate"] > rate and not p["could_pass"]]
    assert fails_above and min(fails_above) / rate <= 1.005


def test_window_max_qps_reports_the_fluid_bound_where_the_lp_allows_its_rate():
    from kairos.sim.window_search import window_max_qps

    exp = Experiment.paper("dien", 400, 0)
    probes = []
    found = window_max_qps(exp, block_queries=150, on_probe=probes.append)
    assert found["capped_at_fluid"] and found["window_bound_qps"] == found["fluid_bound_qps"] == exp.fluid_bound()
    assert [p["rate"] for p in probes] == [0.5 * exp.fluid_bound(), exp.fluid_bound()]
