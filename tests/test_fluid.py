"""The fluid bound against hand-computed cases."""

import numpy as np
import pytest

from kairos.plan.fluid import fluid_bound


def test_single_type_single_size():
    # one type, 10 ms per query, 3 instances: 300 queries/s
    fb = fluid_bound(np.array([[10.0]]), [3], np.array([1.0]), qos_ms=50.0)
    assert fb.qps == pytest.approx(300.0)
    assert fb.utilisation[0] == pytest.approx(1.0)


def test_two_types_split_by_qos():
    # sizes: small (p=0.5) and large (p=0.5); gpu 10/20 ms, cpu 5/100 ms; QoS 50 ms:
    # the cpu may take only small queries (plus <= 1% of traffic as allowed misses).
    # Without misses: cpu takes small at rate x <= 1/0.005 = 200/s; gpu takes the rest.
    # lambda/2 large on gpu: 0.02*lambda/2 + 0.01*(lambda/2 - x) <= 1 with x = min(lambda/2, 200).
    # If the cpu takes all small: lambda/2 <= 200 and 0.01*lambda <= 1 -> lambda = 100 (gpu-bound);
    # with the gpu taking some small ones it cannot do better, so the bound is 100/s.
    svc = np.array([[10.0, 20.0], [5.0, 100.0]])
    fb = fluid_bound(svc, [1, 1], np.array([0.5, 0.5]), qos_ms=50.0, miss_fraction=0.0)
    assert fb.qps == pytest.approx(100.0)
    # gpu saturated, cpu half busy: 50 small/s * 5 ms = 0.25
    assert fb.utilisation[0] == pytest.approx(1.0)
    assert fb.utilisation[1] == pytest.approx(0.25)
    # routing: large all on the gpu
    assert fb.routing[0, 1] == pytest.approx(50.0)
    assert fb.routing[1, 1] == pytest.approx(0.0)


def test_miss_fraction_lets_one_percent_go_anywhere():
    # only a type that violates QoS for everything: 0 without misses, still 0 with 1%
    # (the other 99% cannot be served within QoS by anyone)
    svc = np.array([[100.0]])
    assert fluid_bound(svc, [1], np.array([1.0]), qos_ms=50.0).qps == pytest.approx(0.0)
    # two sizes, the large (1%) infeasible everywhere: the 1% allowance covers it
    svc = np.array([[10.0, 100.0]])
    fb = fluid_bound(svc, [1], np.array([0.99, 0.01]), qos_ms=50.0)
    # capacity: lambda*(0.99*0.01 + 0.01*0.1) = 1 -> lambda = 1/0.0109
    assert fb.qps == pytest.approx(1.0 / 0.0109)
    assert fluid_bound(svc, [1], np.array([0.99, 0.01]), qos_ms=50.0, miss_fraction=0.0).qps == pytest.approx(0.0)


def test_more_instances_never_lower_the_bound():
    rng = np.random.default_rng(1)
    svc = rng.uniform(1, 50, (3, 6))
    p = rng.dirichlet(np.ones(6))
    a = fluid_bound(svc, [1, 1, 1], p, 30.0).qps
    b = fluid_bound(svc, [2, 1, 1], p, 30.0).qps
    assert b >= a - 1e-9


def test_shadow_prices_zero_for_unneeded_type():
    # cpu cannot serve anything within QoS: its time is worth nothing at the optimum
    svc = np.array([[10.0], [100.0]])
    fb = fluid_bound(svc, [1, 1], np.array([1.0]), qos_ms=50.0, miss_fraction=0.0)
    assert fb.prices[0] > 0
    assert fb.prices[1] == pytest.approx(0.0)
