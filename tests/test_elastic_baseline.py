"""The baseline autoscalers: Ray Serve's replica rule on hand-made loads, the static pool, the
best single type, and one short elastic simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kairos.elastic.baseline import (
    InFlightModel,
    RayServeSettings,
    ReplicaAutoscaler,
    ServiceTime,
    StaticAutoscaler,
    best_single_type,
)
from kairos.elastic.controller import Action
from kairos.elastic.rates import RateTrace
from kairos.elastic.simulate import TargetPlanner, simulate_elastic
from kairos.paper import PAPER_QOS_MS
from kairos.plan.space import PlanProblem
from kairos.plan.target import NO_CAP
from kairos.profiles.catalogue import builtin_catalogue
from kairos.workload.sizes import parse_size_mix
from kairos.workload.workload import make_workload

# exponential service times of 10 ms: a replica holds rho / (1 - rho) in flight (M/M/1)
MM1 = ServiceTime(mean_s=0.010, scv=1.0)


def scaler(**kw) -> ReplicaAutoscaler:
    return ReplicaAutoscaler("cpu", MM1, RayServeSettings(**kw))


def run(auto: ReplicaAutoscaler, rates, replicas: int, startup_ticks: int = 0):
    """Feed one rate per 10 s tick (exact counts); adds serve after ``startup_ticks`` ticks,
    drains stop at once. Returns [(time s, action)] and the replica count after each tick."""
    auto.start(0.0)
    ready, pending, log, counts = replicas, [], [], []
    for k, r in enumerate(rates):
        now = 10.0 * (k + 1)
        ready += sum(c for due, c in pending if due <= k)
        pending = [(due, c) for due, c in pending if due > k]
        auto.observe(now, int(round(r * 10)))
        for a in auto.decide(now, {"cpu": ready}, {"cpu": sum(c for _, c in pending)} if pending else {}):
            log.append((now, a))
            if a.kind == "drain":
                ready -= a.count
            elif startup_ticks:
                pending.append((k + startup_ticks, a.count))
            else:
                ready += a.count
        counts.append(ready + sum(c for _, c in pending))
    return log, counts


# ---------------------------------------------------------------------- settings and the rule
def test_defaults_are_ray_serves():
    s = RayServeSettings()
    assert (s.target_ongoing_requests, s.max_ongoing_requests, s.min_replicas, s.max_replicas) == (2.0, 5, 1, 100)
    assert (s.upscale_delay_s, s.downscale_delay_s, s.metrics_interval_s, s.look_back_period_s) == (30, 600, 10, 30)
    assert (s.upscaling_factor, s.downscaling_factor) == (1.0, 1.0)
    assert ReplicaAutoscaler("cpu", MM1).interval_s == 10.0
    with pytest.raises(ValueError, match="target_ongoing_requests"):
        RayServeSettings(target_ongoing_requests=0)
    with pytest.raises(ValueError, match="min_replicas"):
        RayServeSettings(min_replicas=5, max_replicas=4)


def test_desired_replicas_is_ray_rule():
    a = scaler()
    assert a.desired_replicas(30.0, 15) == 15  # 2 per replica: at target
    assert a.desired_replicas(30.1, 15) == 16  # ceil(30.1 / 2)
    assert a.desired_replicas(7.5, 15) == 4
    assert a.desired_replicas(0.0, 15) == 1  # min_replicas
    assert a.desired_replicas(1000.0, 15) == 100  # max_replicas
    half = scaler(upscaling_factor=0.5, downscaling_factor=0.5)
    assert half.desired_replicas(60.0, 10) == 20  # ceil(10 + 0.5 * (30 - 10))
    assert half.desired_replicas(10.0, 10) == 8  # ceil(10 + 0.5 * (5 - 10))
    assert half.desired_replicas(17.0, 10) == 9  # ceil(10 + 0.5 * (8.5 - 10)) = 10 would not move: one less
    assert half.desired_replicas(19.0, 10) == 10  # 9.5 wanted: ceil(9.5) is not below 10, so no move


def test_in_flight_model():
    m = InFlightModel(MM1, max_ongoing=5)
    assert m.stationary(100.0, 2) == pytest.approx(2.0)  # rho 0.5 -> 1 per replica
    assert m.stationary(1000.0, 15) == pytest.approx(30.0)  # rho 2/3 -> 2 per replica
    assert m.per_replica(0.99) == 5.0  # capped at max_ongoing_requests
    # overloaded: every replica full, the excess piles up at the handle, then drains
    assert m.step(1200.0, 10, 10.0) == pytest.approx(50.0 + 2000.0)
    assert m.backlog == pytest.approx(2000.0)
    assert m.step(500.0, 10, 10.0) == pytest.approx(10.0 + 0.0)  # 5,000 spare in 10 s clears 2,000
    # the squared coefficient of variation enters as in Pollaczek-Khinchine
    det = InFlightModel(ServiceTime(0.010, 0.0), 5)
    assert det.per_replica(0.5) == pytest.approx(0.5 + 0.25 / 1.0)


def test_equilibrium_is_where_the_rule_stops_adding():
    a = scaler()
    assert a.equilibrium(990.0) == 15  # 9.9 erlangs: rho 0.66 -> 1.94 per replica, 15 wanted
    assert a.desired_replicas(a.model.stationary(990.0, 14), 14) == 17  # rho 0.707 -> 2.41 each
    assert a.initial_pool(990.0) == {"cpu": 15}
    assert scaler(max_replicas=12).equilibrium(990.0) == 12


# ---------------------------------------------------------------------- hand-made loads
def test_flat_load_no_action():
    a = scaler()
    log, counts = run(a, [990.0] * 720, replicas=a.equilibrium(990.0))  # two hours
    assert log == []
    assert set(counts) == {15}


def test_up_after_upscale_delay():
    a = scaler()
    rates = [990.0] * 30 + [1180.0] * 30
    log, _ = run(a, rates, replicas=15)
    # rho 0.66 -> 0.787 on 15 replicas: 29.1 -> 55.3 in flight. The rise is seen at the tick at
    # 310 s (look-back 29.1, 29.1, 55.3 -> 19 wanted); more are wanted at every tick, so it acts
    # 30 s later with the averaged count then: 55.3 in flight -> 28 replicas
    assert log[0] == (340.0, Action("add", "cpu", 13))
    assert all(t >= 340.0 for t, _ in log)


def test_no_action_before_upscale_delay_and_short_spike_ignored():
    a = scaler()
    rates = [990.0] * 30 + [1180.0] + [990.0] * 60  # one 10 s interval at 1,180 q/s
    log, counts = run(a, rates, replicas=15)
    # wanted more at 310, 320, 330 s (the spike in the 30 s look-back), back at target at 340 s
    assert log == []
    assert set(counts) == {15}


def test_down_after_downscale_delay():
    a = scaler()
    rates = [990.0] * 30 + [500.0] * 80
    log, counts = run(a, rates, replicas=15)
    # fewer wanted from the tick at 310 s; nothing for 600 s; then 7.5 in flight -> 4 replicas
    assert log[0] == (910.0, Action("drain", "cpu", 11))
    assert counts[89] == 15 and counts[90] == 4


def test_direction_change_restarts_the_delay():
    a = scaler()
    # fewer wanted from 310 s; a 10 s overload at 610 s makes more wanted at 610-630 s (in the
    # look-back), not for 30 s; fewer again from 640 s: the 600 s count restarts there
    rates = [990.0] * 30 + [500.0] * 30 + [2000.0] + [500.0] * 100
    log, _ = run(a, rates, replicas=15)
    assert log[0] == (1240.0, Action("drain", "cpu", 11))


def test_starting_replicas_count_in_the_target():
    a = scaler()
    rates = [990.0] * 30 + [1180.0] * 20
    log, counts = run(a, rates, replicas=15, startup_ticks=12)  # 120 s start-up
    assert log[0] == (340.0, Action("add", "cpu", 13))
    # while the 13 start, the 15 running stay at 1,180 q/s (55.3 in flight -> 28 wanted = the target)
    assert len(log) == 1
    assert counts[-1] == 28


def test_overload_backlog_scales_up_beyond_the_rate():
    a = scaler()
    rates = [990.0] * 10 + [2000.0] * 12
    log, _ = run(a, rates, replicas=15, startup_ticks=100)  # nothing new serves in this test
    # 2,000 q/s on 15 replicas of 100 q/s: 500 q/s pile up at the handle from 110 s; 30 s later
    # the averaged in-flight count (thousands) asks for more than max_replicas: up to 100
    assert log == [(140.0, Action("add", "cpu", 85))]


def test_static_never_acts():
    s = StaticAutoscaler({"gpu": 2, "cpu": 0, "r5": 3})
    assert s.initial_pool(123.0) == {"gpu": 2, "r5": 3}
    s.start(0.0)
    s.observe(60.0, 10_000)
    assert s.decide(60.0, {"gpu": 2, "r5": 3}, {}) == []
    with pytest.raises(ValueError):
        StaticAutoscaler({"gpu": 0})


# ---------------------------------------------------------------------- on the built-in catalogue
@pytest.fixture(scope="module")
def rm2():
    return PlanProblem.build(builtin_catalogue(), "rm2", NO_CAP, PAPER_QOS_MS["rm2"], parse_size_mix("deeprecsys"))


def test_service_time_moments_match_the_simulator(rm2):
    wl = make_workload(rm2.profile, rm2.mix, n=40_000, seed=3)
    for t in rm2.types:
        s = ServiceTime.of(rm2, t)
        x = wl.service_ms[:, rm2.profile.type_index(t)] / 1000.0
        assert s.mean_s == pytest.approx(x.mean(), rel=0.02)
        assert s.scv == pytest.approx(x.var() / x.mean() ** 2, rel=0.05)


class LinearEvaluator:
    """QoS-throughput linear in the count: per-instance q/s of each type."""

    def __init__(self, per):
        self.per = per

    def __call__(self, config, policy="kairos"):
        return float(sum(self.per[t] * k for t, k in config.items()))


def test_best_single_type_is_the_cheapest_homogeneous_pool(rm2):
    per = {"c5n.2xlarge": 9.0, "g4dn.xlarge": 14.0, "r5n.large": 2.0, "t3.xlarge": 2.5}
    prices = dict(zip(rm2.types, rm2.prices))
    rate = 100.0
    t, res = best_single_type(rm2, rate, LinearEvaluator(per), evals=2)
    # by hand: ceil(100 / q/s per instance) x price, over the types that can serve the QoS alone
    costs = {u: math.ceil(rate / per[u]) * prices[u] for u in per}
    assert set(res.config) == {t}
    assert res.cost_per_hour == pytest.approx(min(costs[u] for u in costs if u in _qos_capable(rm2)))
    assert res.config[t] == math.ceil(rate / per[t])


def _qos_capable(problem):
    out = set()
    for t in problem.types:
        try:
            PlanProblem.build(problem.catalogue, problem.model, NO_CAP, problem.qos_ms, problem.mix, [t])
            out.add(t)
        except Exception:
            pass
    return out


@pytest.mark.slow
def test_replica_autoscaler_in_the_simulator(rm2):
    """A rise and a fall of load on r5n.large replicas: no query lost, adds then drains."""
    planner = TargetPlanner(rm2, None)
    service = ServiceTime.of(rm2, "r5n.large")
    auto = ReplicaAutoscaler("r5n.large", service)
    # 30 q/s, then 60 q/s for 10 minutes, then 15 q/s for 15 minutes
    counts = np.array([30 * 60] * 3 + [60 * 60] * 10 + [15 * 60] * 15, dtype=float)
    res = simulate_elastic(rm2, planner, RateTrace(60.0, counts), startup_s=60.0, seed=1, autoscaler=auto)
    s = res.summary
    assert s["lost"] == 0
    kinds = [e["action"] for e in res.scale_events]
    assert "add" in kinds and "drain" in kinds
    assert kinds.index("add") < kinds.index("drain")
    assert all(e["type"] == "r5n.large" for e in res.scale_events)
    first_add = next(e for e in res.scale_events if e["action"] == "add")
    assert 180.0 + 30.0 <= first_add["t_s"] <= 180.0 + 60.0  # the rise at 180 s, acted on 30 s later
    # the rise overloads the running replicas: the backlog asks for more than the rate needs, so
    # fewer are wanted soon after they start; a drain needs 600 s of that
    first_drain = next(e for e in res.scale_events if e["action"] == "drain")
    assert first_drain["t_s"] >= first_add["t_s"] + 600.0
    start = auto.initial_pool(30.0)["r5n.large"]
    peak = max(sum(r["ready"].values()) + sum(r["starting"].values()) for r in res.timeline)
    assert peak > start
