"""Workloads: size mixes, arrival processes, reproducibility."""

import numpy as np
import pytest

from kairos.errors import KairosInputError
from kairos.profiles import builtin_catalogue
from kairos.workload import load_trace, make_workload, parse_schedule, parse_size_mix


def test_deeprecsys_mix_statistics():
    s = parse_size_mix("deeprecsys").sample(200_000, seed=3)
    assert np.all(s % 10 == 0) and s.min() >= 10 and s.max() <= 1000
    # the method doc: mean about 243, median 180
    assert s.mean() == pytest.approx(243, rel=0.03)
    assert np.median(s) == 180
    assert np.mean(s <= 100) == pytest.approx(0.08, abs=0.01)
    assert np.mean(s > 600) == pytest.approx(0.05, abs=0.01)


def test_ribbon_mix_statistics():
    s = parse_size_mix("ribbon").sample(200_000, seed=3)
    assert s.max() <= 500 and s.min() >= 10
    assert np.mean(s < 100) == pytest.approx(0.02, abs=0.005)


def test_fixed_and_file_mixes(tmp_path):
    assert set(parse_size_mix("fixed:70").sample(100).tolist()) == {70}
    f = tmp_path / "sizes.txt"
    f.write_text("# sizes\n10\n20\n\n30\n")
    assert set(parse_size_mix(str(f)).sample(1000).tolist()) == {10, 20, 30}
    for bad in ["fixed:x", "fixed:0", "nope"]:
        with pytest.raises(KairosInputError):
            parse_size_mix(bad)
    f.write_text("10\nabc\n")
    with pytest.raises(KairosInputError, match="line 2"):
        parse_size_mix(str(f))


def test_poisson_rate_and_reproducibility():
    prof = builtin_catalogue().profile("rm2")
    mix = parse_size_mix("deeprecsys")
    a = make_workload(prof, mix, 50_000, seed=5)
    b = make_workload(prof, mix, 50_000, seed=5)
    c = make_workload(prof, mix, 50_000, seed=6)
    assert np.array_equal(a.sizes, b.sizes) and np.array_equal(a.service_ms, b.service_ms)
    assert not np.array_equal(a.sizes, c.sizes)
    t = a.arrivals_ms(200.0)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(5.0, rel=0.02)  # 200 q/s
    assert gaps.std() == pytest.approx(5.0, rel=0.03)  # exponential: std = mean
    # the same arrival pattern at another rate, scaled
    assert np.allclose(a.arrivals_ms(100.0), 2 * t)


def test_schedule_steps_and_ramp():
    sch = parse_schedule("0:100,10:300")
    t = sch.arrivals_ms(20.0, np.random.default_rng(0)) / 1000.0
    assert np.sum(t < 10) == pytest.approx(1000, rel=0.1)
    assert np.sum(t >= 10) == pytest.approx(3000, rel=0.1)
    ramp = parse_schedule("0:0,10:200", ramp=True)
    t = ramp.arrivals_ms(10.0, np.random.default_rng(0)) / 1000.0
    assert len(t) == pytest.approx(1000, rel=0.1)  # area under the ramp
    assert np.sum(t < 5) == pytest.approx(250, rel=0.2)
    for bad in ["", "5:10", "0:1,0:2", "0:x", "0:0"]:
        with pytest.raises(KairosInputError):
            parse_schedule(bad)


def test_trace(tmp_path):
    f = tmp_path / "trace.txt"
    f.write_text("1.5\n1.0\n2.0\n")
    assert load_trace(f).tolist() == [0.0, 500.0, 1000.0]
    f.write_text("1.0\nbad\n")
    with pytest.raises(KairosInputError, match="line 2"):
        load_trace(f)
