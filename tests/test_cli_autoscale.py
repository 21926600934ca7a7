"""`kairos simulate --autoscale`: the JSON contract, the table, the plot and one-line errors (exit 2)."""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from rich.console import Console

WEEK = Path(__file__).resolve().parents[2] / "shared" / "data" / "azure-lmm-2024-per-minute.csv"
# 10 q/s for two minutes, 50 q/s for three, 10 q/s for five: one step up, one down
STEP = [600, 600, 3000, 3000, 3000, 600, 600, 600, 600, 600]
FAST = ("--plan-queries", "0", "--startup-s", "30", "--scale-down-after-s", "60")  # the planner's model, no sims
KEYS = (
    "cost_usd",
    "static_cost_usd",
    "oracle_cost_usd",
    "qos_met_fraction",
    "hours_meeting_qos_fraction",
    "worst_hour_qos_met",
    "lost",
    "scale_events",
    "queries",
    "elapsed_s",
    "events",
    "static_config",
    "controller",
)


def rate_file(tmp_path, counts=STEP, unit="minute", name="rates.csv"):
    f = tmp_path / name
    f.write_text(f"{unit},requests\n" + "".join(f"{k},{c}\n" for k, c in enumerate(counts)))
    return str(f)


def autoscale_json(capsys, *args):
    code, out, err = run_cli(capsys, "simulate", "--autoscale", *args, "--json")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out  # one JSON object, nothing else on stdout
    assert "replaying" not in err  # no progress bar with --json
    return json.loads(lines[0])


def test_json_contract_on_a_step_up_and_down(capsys, tmp_path):
    out = autoscale_json(capsys, "--model", "rm2", "--rates", rate_file(tmp_path), *FAST)
    for k in KEYS:
        assert k in out, k
    expected = sum(STEP)  # Poisson arrivals around the counts: within 4 standard deviations
    assert abs(out["queries"] - expected) < 4 * math.sqrt(expected)
    assert out["lost"] == 0
    assert out["duration_s"] == 600.0 and out["step_s"] == 60.0 and out["replayed_peak_qps"] == 50.0
    assert out["startup_s"] == {t: 30.0 for t in out["types"]}
    assert out["controller"]["scale_down_after_s"] == 60.0 and out["controller"]["interval_s"] == 15.0
    assert 0 < out["oracle_cost_usd"] <= out["static_cost_usd"]
    # the file is one oracle window long: the oracle rents the static peak pool for it
    assert out["oracle_cost_usd"] == pytest.approx(out["static_cost_usd"])
    # a pool for 10 q/s most of the time, for 50 q/s (with headroom) around the step: cheaper than the peak pool
    assert 0 < out["cost_usd"] < out["static_cost_usd"]
    assert out["cost_vs_static"] == pytest.approx(out["cost_usd"] / out["static_cost_usd"], rel=1e-3)
    # the events: up at the first decision that sees the step (it starts at 120 s; decisions every 15 s),
    # down only once the 120 s forecast window no longer holds the peak (load falls at 300 s)
    ev = out["events"]
    assert out["scale_events"] == len(ev) == out["scale_ups"] + out["scale_downs"]
    assert ev[0]["action"] == "add" and 120.0 < ev[0]["t_s"] <= 135.0 and ev[0]["count"] >= 1
    assert ev[-1]["action"] == "drain" and ev[-1]["t_s"] >= 420.0
    assert [e["t_s"] for e in ev] == sorted(e["t_s"] for e in ev)
    assert set(ev[0]) == {"t_s", "action", "type", "count"}
    # one hour of arrivals: the worst hour is the whole run
    assert out["worst_hour_qos_met"] == pytest.approx(out["qos_met_fraction"], abs=1e-4)
    assert out["hours_meeting_qos_fraction"] == (1.0 if out["worst_hour_qos_met"] >= 0.99 else 0.0)
    assert 0.5 < out["qos_met_fraction"] <= 1.0
    assert out["elapsed_s"] > 0


def test_peak_scaling_slice_and_the_library_agree(capsys, tmp_path):
    from kairos.elastic.controller import ControllerSettings
    from kairos.elastic.rates import load_rates
    from kairos.elastic.simulate import TargetPlanner, simulate_elastic
    from kairos.paper import PAPER_QOS_MS
    from kairos.plan.space import PlanProblem
    from kairos.plan.target import NO_CAP
    from kairos.profiles.catalogue import builtin_catalogue
    from kairos.workload.sizes import parse_size_mix

    f = rate_file(tmp_path)
    out = autoscale_json(
        capsys, "--rates", f, "--peak-qps", "25", "--start-minute", "2", "--minutes", "3", *FAST, "--seed", "3"
    )
    assert out["replayed_peak_qps"] == 25.0 and out["peak_qps"] == 25.0
    assert out["duration_s"] == 180.0 and out["start_minute"] == 2 and out["minutes"] == 3.0
    assert abs(out["queries"] - 25 * 180) < 4 * math.sqrt(25 * 180)
    # the same run through the library: the command adds nothing of its own to the figures
    cat, mix = builtin_catalogue(), parse_size_mix("deeprecsys")
    problem = PlanProblem.build(cat, "rm2", NO_CAP, PAPER_QOS_MS["rm2"], mix)
    trace = load_rates(f).scaled_to_peak(25.0).slice(2, 3)
    lib = simulate_elastic(
        problem,
        TargetPlanner(problem, None),
        trace,
        "kairos",
        {},
        30.0,
        ControllerSettings(scale_down_after_s=60.0),
        seed=3,
    )
    for k in ("queries", "cost_usd", "static_cost_usd", "oracle_cost_usd", "qos_met_fraction", "lost", "scale_events"):
        assert out[k] == lib.summary[k], k
    assert out["events"] == lib.scale_events


def test_second_steps_and_the_table(capsys, tmp_path):
    f = rate_file(tmp_path, [5] * 60 + [20] * 60, unit="second")
    code, out, err = run_cli(capsys, "simulate", "--autoscale", "--rates", f, *FAST, "--model", "ncf")
    assert code == 0, err
    text = " ".join(out.split())
    for needle in (
        "kairos simulate --autoscale: ncf",
        "static peak pool",
        "oracle (10-min windows)",
        "QoS met",
        "hours with >= 99% met",
        "lost",
        "scale events",
        "instances launched",
        "busiest step 20 q/s",
    ):
        assert needle in text, needle


def _png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "elastic.png"
    out = autoscale_json(capsys, "--rates", rate_file(tmp_path), *FAST, "--plot", str(png))
    assert out["plot"] == str(png)
    assert _png_size(png) == (1200, 720)  # 10 x 6 inches at 120 dpi
    assert png.stat().st_size > 20_000  # two panels with lines and areas, not an empty canvas


def test_plot_series_from_a_timeline():
    from kairos.elastic.plot import load_series, pool_series

    timeline = [
        {"t_s": 15.0, "arrivals": 30, "forecast_qps": 2.0, "ready": {"a": 1}, "starting": {}},
        {"t_s": 30.0, "arrivals": 60, "forecast_qps": 4.0, "ready": {"a": 1}, "starting": {"b": 2}},
        {"t_s": 45.0, "arrivals": 45, "forecast_qps": 4.0, "ready": {"a": 1, "b": 2}, "starting": {}},
    ]
    t, rate, forecast = load_series(timeline)
    assert list(t) == [15.0, 30.0, 45.0] and list(rate) == [2.0, 4.0, 3.0] and list(forecast) == [2.0, 4.0, 4.0]
    types, ready, starting = pool_series(timeline)
    assert types == ["a", "b"]
    assert ready.tolist() == [[1, 1, 1], [0, 0, 2]] and starting.tolist() == [[0, 0, 0], [0, 2, 0]]


def test_plot_without_matplotlib_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = run_cli(
        capsys, "simulate", "--autoscale", "--rates", rate_file(tmp_path), *FAST, "--plot", str(tmp_path / "x.png")
    )
    assert_one_line_error(code, err, "--plot", "pip install 'kairos-serve[reproduce]'")
    assert not (tmp_path / "x.png").exists()


def test_progress_only_on_a_terminal_after_the_delay():
    from kairos.cli.simulate import _ReplayProgress

    def shown(enabled, delay_s):
        buf = io.StringIO()
        p = _ReplayProgress(600.0, enabled, delay_s, Console(file=buf, force_terminal=True, width=100))
        p(300.0)
        p(600.0)
        p.close()
        return buf.getvalue()

    text = shown(True, 0.0)
    assert "replaying the rates" in text and "pricing the static pool and the oracle" in text
    assert shown(False, 0.0) == ""
    assert shown(True, 3600.0) == ""  # a run faster than the delay shows nothing


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--autoscale"], "--autoscale needs --rates"),
        (["--rates", "{rates}"], "--rates applies only with --autoscale"),
        (["--qps", "10", "--peak-qps", "5"], "--peak-qps applies only with --autoscale"),
        (["--qps", "10", "--plot", "x.png"], "--plot applies only with --autoscale"),
        (["--qps", "10", "--startup-s", "30"], "--startup-s applies only with --autoscale"),
        (["--qps", "10", "--headroom", "0.3"], "--headroom applies only with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--peak-qps", "0"], "--peak-qps must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--peak-qps", "-3"], "--peak-qps must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--peak-qps", "nan"], "--peak-qps must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--startup-s", "-1"], "--startup-s must be a finite number >= 0"),
        (["--autoscale", "--rates", "{rates}", "--startup-s", "inf"], "--startup-s must be a finite number >= 0"),
        (["--autoscale", "--rates", "{rates}", "--interval-s", "0"], "--interval-s must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--window-s", "nan"], "--window-s must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--headroom", "-0.1"], "--headroom must be a finite number >= 0"),
        (
            ["--autoscale", "--rates", "{rates}", "--scale-down-after-s", "-5"],
            "--scale-down-after-s must be a finite number > 0",
        ),
        (["--autoscale", "--rates", "{rates}", "--down-margin", "inf"], "--down-margin must be a finite number >= 0"),
        (["--autoscale", "--rates", "{rates}", "--budget", "0"], "--budget must be a finite number > 0"),
        (["--autoscale", "--rates", "{rates}", "--qps", "10"], "--qps does not apply with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--max-qps"], "--max-qps does not apply with --autoscale"),
        (
            ["--autoscale", "--rates", "{rates}", "--config", "g4dn.xlarge=1"],
            "--config does not apply with --autoscale",
        ),
        (["--autoscale", "--rates", "{rates}", "--plan", "{rates}"], "--plan does not apply with --autoscale"),
        (
            ["--autoscale", "--rates", "{rates}", "--schedule", "0:10", "--duration", "5"],
            "--schedule does not apply with --autoscale",
        ),
        (["--autoscale", "--rates", "{rates}", "--trace", "{rates}"], "--trace does not apply with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--queries", "100"], "--queries does not apply with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--window-bound"], "--window-bound does not apply with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--handoff-ms", "1"], "--handoff-ms does not apply with --autoscale"),
        (["--autoscale", "--rates", "{rates}", "--start-minute", "10"], "--start-minute 10: the rate file"),
        (
            ["--autoscale", "--rates", "{rates}", "--start-minute", "4", "--minutes", "7"],
            "--minutes 7 from --start-minute 4 runs past the end",
        ),
        (["--autoscale", "--rates", "{rates}", "--minutes", "0"], "Invalid value for '--minutes'"),
        (["--autoscale", "--rates", "{rates}", "--plan-queries", "-1"], "Invalid value for '--plan-queries'"),
        (["--autoscale", "--rates", "{rates}", "--budget", "0.3"], "--budget 0.3: no pool within $0.3/h"),
        (["--autoscale", "--rates", "{rates}", "--types", "nope.large"], "--types: nope.large not in the profile"),
        (["--autoscale", "--rates", "{rates}", "--policy-option", "nope=1"], "is not an option of policy 'kairos'"),
        (
            ["--autoscale", "--rates", "{quiet}", "--start-minute", "1", "--minutes", "2"],
            "no requests in the minutes replayed",
        ),
        (["--autoscale", "--rates", "{bad}"], "header must be 'minute,requests' or 'second,requests'"),
        (["--autoscale", "--rates", "{missing}"], "--rates"),
        (["--autoscale", "--rates", "{rates}", "--peak-qps", "1e6"], "--peak-qps: the busiest step replayed"),
        (["--autoscale", "--rates", "{rates}", "--plot", "{missing}/x.png"], "/missing.csv does not exist"),
    ],
)
def test_bad_input_one_line_exit_2(capsys, tmp_path, args, needle):
    paths = {
        "rates": rate_file(tmp_path),
        "quiet": rate_file(tmp_path, [60, 0, 0, 60], name="quiet.csv"),
        "missing": str(tmp_path / "missing.csv"),
    }
    (tmp_path / "bad.csv").write_text("hour,requests\n0,5\n")
    paths["bad"] = str(tmp_path / "bad.csv")
    fast = ["--plan-queries", "0"] if "--autoscale" in args else []  # the planner's model alone: no simulations
    code, out, err = run_cli(capsys, "simulate", *fast, *[a.format(**paths) for a in args])  # a later flag wins
    assert_one_line_error(code, err, needle)
    assert out == ""


@pytest.mark.slow
def test_a_slice_of_the_real_week_with_the_simulating_planner(capsys, tmp_path):
    # rm2, the week scaled to a peak of 100 q/s, its first 20 minutes, planner checked by 4,000-query simulations
    if not WEEK.exists():
        pytest.skip("../shared/data is not beside the checkout")
    png = tmp_path / "week.png"
    out = autoscale_json(
        capsys, "--model", "rm2", "--rates", str(WEEK), "--peak-qps", "100", "--minutes", "20", "--plot", str(png)
    )
    assert out["duration_s"] == 1200.0 and out["plan_queries"] == 4000
    assert out["lost"] == 0 and out["queries"] > 30_000
    assert 0 < out["oracle_cost_usd"] <= out["static_cost_usd"]
    assert 0 < out["cost_usd"] <= 1.5 * out["static_cost_usd"]
    assert out["qos_met_fraction"] >= 0.98 and out["scale_ups"] >= 1
    assert _png_size(png) == (1200, 720)
