"""The elastic controller on hand-made loads: up, down, spike, flat, a change of mix."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from kairos.elastic import Action, BillingRule, Controller, ControllerSettings, instance_cost, load_rates
from kairos.elastic.controller import PoolPlanner
from kairos.errors import KairosInputError


class OneType(PoolPlanner):
    """Instances of one type, 100 q/s each, $1/hour."""

    def prices(self):
        return {"cpu": 1.0}

    def cheapest_for(self, rate_qps):
        return {"cpu": max(1, math.ceil(rate_qps / 100.0))}

    def capacity(self, config):
        return 100.0 * config.get("cpu", 0)


class TwoTypes(PoolPlanner):
    """gpu: 1,000 q/s for $5/h; cpu: 100 q/s for $1/h. Below 400 q/s cpus are cheaper."""

    def prices(self):
        return {"gpu": 5.0, "cpu": 1.0}

    def cheapest_for(self, rate_qps):
        if rate_qps <= 400:
            return {"cpu": max(1, math.ceil(rate_qps / 100.0))}
        return {"gpu": math.ceil(rate_qps / 1000.0)}

    def capacity(self, config):
        return 1000.0 * config.get("gpu", 0) + 100.0 * config.get("cpu", 0)


SET = ControllerSettings(interval_s=10.0, window_s=30.0, headroom=0.0, scale_down_after_s=60.0, down_margin=0.1)


def run(ctrl, rates, ready, startup_steps=0):
    """Feed one rate per 10 s step; apply actions at once (adds ready after startup_steps)."""
    log = []
    pending = []  # (ready at step, type, count)
    for k, r in enumerate(rates):
        now = 10.0 * (k + 1)
        for p in [p for p in pending if p[0] <= k]:
            ready[p[1]] = ready.get(p[1], 0) + p[2]
            pending.remove(p)
        starting = {}
        for _, t, c in pending:
            starting[t] = starting.get(t, 0) + c
        ctrl.observe(now, int(r * 10))
        acts = ctrl.decide(now, dict(ready), starting)
        for a in acts:
            if a.kind == "add":
                pending.append((k + startup_steps, a.instance_type, a.count))
            else:
                ready[a.instance_type] -= a.count
        log.append((k, acts))
    return log, ready


def test_flat_load_no_action():
    ctrl = Controller(OneType(), {"cpu": 0.0}, SET)
    log, ready = run(ctrl, [250.0] * 30, {"cpu": 3})
    assert all(acts == [] for _, acts in log)
    assert ready == {"cpu": 3}


def test_step_up_adds_at_once():
    ctrl = Controller(OneType(), {"cpu": 0.0}, SET)
    log, ready = run(ctrl, [250.0] * 5 + [650.0] * 5, {"cpu": 3})
    assert log[5][1] == [Action("add", "cpu", 4)]  # the first step at 650 q/s
    assert ready == {"cpu": 7}


def test_step_down_drains_after_the_hysteresis_only():
    ctrl = Controller(OneType(), {"cpu": 0.0}, SET)
    log, ready = run(ctrl, [650.0] * 5 + [150.0] * 20, {"cpu": 7})
    acts = [(k, a) for k, a in log if a]
    # the window (30 s) still sees 650 q/s for 3 steps, then 60 s of a cheaper target
    assert acts == [(13, [Action("drain", "cpu", 5)])]
    assert ready == {"cpu": 2}


def test_spike_shorter_than_the_hysteresis_scales_up_then_down_once():
    ctrl = Controller(OneType(), {"cpu": 0.0}, SET)
    log, ready = run(ctrl, [150.0] * 5 + [950.0] + [150.0] * 20, {"cpu": 2})
    acts = [(k, a) for k, a in log if a]
    assert acts[0] == (5, [Action("add", "cpu", 8)])
    assert [a for _, a in acts[1:]] == [[Action("drain", "cpu", 8)]]  # one drain, no flapping
    assert ready == {"cpu": 2}


def test_rising_load_is_forecast_over_the_startup_time():
    ctrl = Controller(OneType(), {"cpu": 120.0}, replace(SET, trend=True))
    ctrl.observe(10.0, 1000)
    ctrl.observe(20.0, 1500)
    ctrl.observe(30.0, 2000)  # 100, 150, 200 q/s: +5 q/s per s
    assert ctrl.forecast() == pytest.approx(200.0 + 5.0 * (120.0 + 10.0))
    ctrl.observe(40.0, 2000)  # a flat step: the level only
    assert ctrl.forecast() == pytest.approx(200.0)
    off = Controller(OneType(), {"cpu": 120.0}, SET)  # trend off (the default): the level
    for t, n in ((10.0, 1000), (20.0, 1500), (30.0, 2000)):
        off.observe(t, n)
    assert off.forecast() == pytest.approx(200.0)


def test_a_drain_keeps_what_the_load_needed_during_the_hold():
    ctrl = Controller(OneType(), {"cpu": 0.0}, SET)
    # 650 q/s, then a lull whose level wanders between 150 and 350 q/s
    log, ready = run(ctrl, [650.0] * 5 + [150.0, 350.0, 150.0, 150.0, 150.0, 150.0] + [150.0] * 10, {"cpu": 7})
    drains = [a for _, acts in log for a in acts if a.kind == "drain"]
    assert drains[0] == Action("drain", "cpu", 3)  # down to 4 (350 q/s), not to 2
    assert ready["cpu"] >= 2


def test_change_of_mix_is_made_before_it_is_broken():
    ctrl = Controller(TwoTypes(), {"gpu": 0.0, "cpu": 0.0}, SET)
    log, ready = run(ctrl, [300.0] * 3 + [900.0] * 30, {"cpu": 3}, startup_steps=2)
    acts = [(k, a) for k, a in log if a]
    assert acts[0] == (3, [Action("add", "gpu", 1)])  # 300 cpu q/s + 1,000 gpu q/s cover 900 q/s
    drains = [(k, a) for k, a in acts if a[0].kind == "drain"]
    assert drains and drains[0][1] == [Action("drain", "cpu", 3)]
    assert drains[0][0] >= 3 + 2  # only once the gpu is up
    assert ready == {"cpu": 0, "gpu": 1}


def test_billing_minimum_and_per_second():
    assert instance_cost(0.0, 30.0, 3.6) == pytest.approx(0.06)  # 60 s minimum
    assert instance_cost(100.0, 1000.0, 3.6) == pytest.approx(0.9)
    assert BillingRule(minimum_s=0.0).billed_seconds(5.0, 5.0) == 0.0
    with pytest.raises(ValueError):
        instance_cost(10.0, 5.0, 1.0)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="interval_s"):
        ControllerSettings(interval_s=0)
    with pytest.raises(ValueError, match="headroom"):
        ControllerSettings(headroom=-0.1)


def test_rate_file_reading_and_scaling(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("minute,requests\n0,60\n1,120\n2,30\n")
    tr = load_rates(f)
    assert tr.step_s == 60.0 and list(tr.rates) == [1.0, 2.0, 0.5]
    assert list(tr.scaled_to_peak(10.0).rates) == [5.0, 10.0, 2.5]
    arr = tr.arrivals_s(seed=1)
    assert np.all(np.diff(arr) >= 0) and 150 < arr.size < 270 and arr[-1] < 180.0
    assert tr.arrivals_s(seed=1, time_scale=0.1)[-1] < 18.0


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty"),
        ("hour,requests\n0,1\n", "header must be"),
        ("minute,requests\n", "no rows"),
        ("minute,requests\n0,1\n2,1\n", "out of order"),
        ("minute,requests\n0,-1\n", ">= 0"),
        ("minute,requests\n0,abc\n", "must be an integer"),
        ("minute,requests\n0,1,2\n", "expected 2 fields"),
    ],
)
def test_bad_rate_files_one_clear_error(tmp_path, text, needle):
    f = tmp_path / "r.csv"
    f.write_text(text)
    with pytest.raises(KairosInputError, match=needle):
        load_rates(f)


def test_the_azure_week_reads_as_a_week():
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "azure-lmm-2024-per-minute.csv"
    if not path.exists():
        pytest.skip("../shared/data is not beside the checkout")
    tr = load_rates(path)
    assert tr.step_s == 60.0 and len(tr.counts) == 10080 and tr.counts.sum() == 1_000_000


def test_a_trace_compressed_keeps_its_rates_and_a_replayed_part_names_its_flags(tmp_path):
    from kairos.elastic.rates import replayed_part

    f = tmp_path / "r.csv"
    f.write_text("minute,requests\n0,60\n1,120\n2,30\n")
    tr = load_rates(f)
    fast = tr.compressed(5.0)
    assert fast.step_s == 5.0 and list(fast.rates) == list(tr.rates) and fast.duration_s == 15.0
    part = replayed_part(tr, f, 10.0, 1, 2)
    assert list(part.rates) == [10.0, 2.5]
    with pytest.raises(KairosInputError, match="--start-minute 3"):
        replayed_part(tr, f, None, 3, None)
    with pytest.raises(KairosInputError, match="--minutes 3"):
        replayed_part(tr, f, None, 1, 3)
    with pytest.raises(KairosInputError, match="--step-s"):
        tr.compressed(0.0)
