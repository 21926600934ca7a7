"""`kairos plan`: the JSON contract, --emit into `kairos simulate --plan`, one-line errors (exit 2)."""

import json
import sys

import pytest
from cli_helpers import run_cli as run


def test_plan_json_one_shot(capsys):
    code, out, err = run(capsys, "plan", "--model", "rm2", "--budget", "1.5", "--evals", "0", "--no-compare", "--json")
    assert code == 0, err
    d = json.loads(out)
    for key in (
        "model",
        "method",
        "budget",
        "qos_ms",
        "config",
        "cost_per_hour",
        "predicted_qps",
        "evaluations",
        "elapsed_s",
    ):
        assert key in d, key
    assert d["method"] == "milp" and d["evaluations"] == 0 and d["qos_ms"] == 350.0
    assert d["cost_per_hour"] <= 1.5
    assert d["config"] and all(isinstance(v, int) and v > 0 for v in d["config"].values())
    assert d["predicted_qps"] > 0


@pytest.mark.slow
def test_plan_compare_and_emit_into_simulate(capsys, tmp_path):
    plan = tmp_path / "plan.yaml"
    code, out, err = run(
        capsys,
        "plan",
        "--model",
        "ncf",
        "--budget",
        "1.5",
        "--queries",
        "2000",
        "--evals",
        "2",
        "--emit",
        str(plan),
        "--format",
        "yaml",
        "--json",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["evaluations"] <= 2
    assert d["simulated_qps"] > 0 and d["homogeneous"]["simulated_qps"] > 0
    assert len(d["homogeneous"]["config"]) == 1
    assert d["vs_homogeneous"] == pytest.approx(d["simulated_qps"] / d["homogeneous"]["simulated_qps"], rel=1e-3)
    text = plan.read_text()
    assert text.startswith("model: ncf")
    code, out, err = run(capsys, "simulate", "--plan", str(plan), "--queries", "2000", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["model"] == "ncf" and s["qos_ms"] == 5.0 and s["config"] == d["config"]
    assert s["max_qps"] == pytest.approx(d["simulated_qps"], rel=1e-3)  # same evaluation, same seed


def test_plan_table(capsys):
    code, out, err = run(capsys, "plan", "--model", "wnd", "--budget", "2", "--method", "kairos", "--no-compare")
    assert code == 0, err
    assert "chosen" in out and "kairos plan" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--budget", "0.1"), "--budget"),
        (("--model", "ncf", "--qos-ms", "0.5"), "--qos-ms"),
        (("--types", "g4dn.xlarge,p3.2xlarge"), "--types"),
        (("--budget", "-1"), "--budget"),
        (("--model", "nope"), "unknown model"),
    ],
)
def test_plan_errors_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, "plan", "--no-compare", *args)
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_plan_types_without_price(capsys, tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text("instance,usd_per_hour\ng4dn.xlarge,0.526\n")
    code, out, err = run(capsys, "plan", "--no-compare", "--prices", str(prices), "--types", "g4dn.xlarge,r5n.large")
    assert code == 2 and "no price for r5n.large" in err and err.count("\n") == 1


def test_ribbon_without_scikit_learn(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.gaussian_process", None)
    code, out, err = run(capsys, "plan", "--method", "ribbon", "--no-compare", "--queries", "500")
    assert code == 2 and "scikit-learn" in err and err.count("\n") == 1
