"""kairos.sim.time_split: per size range, each type's time in the simulation and in the fluid optimum."""

import numpy as np
import pytest

from kairos.plan.fluid import config_fluid_bound
from kairos.sim import time_split
from kairos.sim.experiment import Experiment


@pytest.mark.parametrize("model", ["dien", "rm2"])
def test_rows_add_up_to_the_run_and_to_the_fluid_optimum(model):
    exp = Experiment.paper(model, 3000, 1)
    rate = 0.8 * exp.fluid_bound()
    edges = time_split.default_edges(exp)
    out = time_split.time_split(exp, "kairos", rate, edges)
    # every query in exactly one range; misses as the run counted them
    assert sum(r["queries"] for r in out["rows"]) == 3000
    res = exp.run("kairos", rate)
    assert sum(r["misses"] for r in out["rows"]) == out["misses"] == round(3000 * (1 - res.qos_met_fraction))
    span_s = 3000 / rate
    fb = config_fluid_bound(exp.profile, exp.config, exp.probs, exp.qos_ms)
    for name in exp.config:
        t = exp.profile.type_index(name)
        sim = sum(r[name]["sim_ms_per_s"] for r in out["rows"])
        fluid = sum(r[name]["fluid_ms_per_s"] for r in out["rows"])
        busy = res.busy_ms[
            np.asarray([exp.profile.type_index(n) for n in exp.config for _ in range(exp.config[n])]) == t
        ]
        assert sim == pytest.approx(busy.sum() / span_s, rel=1e-3, abs=0.5)
        # the optimum's time on a type: its utilisation at the bound, scaled to the rate
        assert fluid == pytest.approx(fb.utilisation[t] * exp.config[name] * 1000 * rate / fb.qps, rel=1e-3, abs=0.5)


def test_default_edges_include_each_types_qos_limit():
    exp = Experiment.paper("dien", 100, 0)
    edges = time_split.default_edges(exp)
    assert edges[0] == 0 and edges[-1] >= exp.profile.batches[-1]
    assert 420 in edges  # r5n.large's mean is within 35 ms up to size 420 (the profile's row above is over)
    r5n = exp.profile.type_index("r5n.large")
    i = int(np.flatnonzero(exp.profile.batches == 420)[0])
    assert exp.profile.mean_ms[r5n, i] <= 35 < exp.profile.mean_ms[r5n, i + 1]
