"""`kairos plan`: options a method cannot use are refused in one line (exit 2), and every
reported number says what it is and which dispatch policy produced it."""

import json

import pytest
from cli_helpers import assert_one_line_error as one_line_error
from cli_helpers import run_cli as run


@pytest.mark.parametrize("method", ["random", "ribbon", "ribbon-kairos"])
@pytest.mark.parametrize("evals", ["0", "-2"])
def test_searches_need_at_least_one_evaluation(capsys, method, evals):
    code, out, err = run(capsys, "plan", "--queries", "2000", "--no-compare", "--method", method, "--evals", evals)
    one_line_error(code, err, f"--evals must be >= 1 for --method {method}")


def test_milp_evals_negative(capsys):
    code, out, err = run(capsys, "plan", "--no-compare", "--evals", "-1")
    one_line_error(code, err, "--evals must be >= 0 for --method milp")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_kairos_plus_max_evals_at_least_one(capsys, value):
    code, out, err = run(
        capsys, "plan", "--queries", "2000", "--no-compare", "--method", "kairos+", "--max-evals", value
    )
    one_line_error(code, err, "--max-evals must be >= 1")
    assert "positive bound" not in err


@pytest.mark.parametrize("method", ["kairos", "kairos+", "exhaustive", "homogeneous"])
def test_evals_refused_where_unused(capsys, method):
    code, out, err = run(capsys, "plan", "--no-compare", "--method", method, "--evals", "7")
    one_line_error(code, err, "--evals applies only to --method milp, random, ribbon, ribbon-kairos")


@pytest.mark.parametrize("method", ["milp", "kairos", "exhaustive", "homogeneous", "ribbon", "random"])
@pytest.mark.parametrize("value", ["1", "-1"])
def test_max_evals_refused_where_unused(capsys, method, value):
    code, out, err = run(capsys, "plan", "--no-compare", "--method", method, "--max-evals", value)
    one_line_error(code, err, "--max-evals applies only to --method kairos+")


def test_format_without_emit_refused(capsys):
    code, out, err = run(capsys, "plan", "--no-compare", "--evals", "0", "--format", "yaml")
    one_line_error(code, err, "--format")


def test_defaults_are_not_refused(capsys):
    # neither option given: the defaults never trip the checks, whatever the method
    code, out, err = run(capsys, "plan", "--no-compare", "--method", "kairos", "--json")
    assert code == 0, err
    assert json.loads(out)["evaluations"] == 0
    code, out, err = run(
        capsys,
        "plan",
        "--queries",
        "2000",
        "--no-compare",
        "--method",
        "kairos+",
        "--max-evals",
        "1",
        "--budget",
        "1.5",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["evaluations"] == 1


@pytest.mark.slow
def test_ribbon_numbers_name_their_dispatch_policy(capsys, monkeypatch):
    code, out, err = run(
        capsys, "plan", "--queries", "2000", "--method", "ribbon", "--budget", "1.5", "--evals", "4", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    # the method's own numbers: fcfs (as RIBBON); the comparison: kairos, and each says so
    assert d["policy"] == "fcfs" and d["predicted_kind"] == "measured_qps"
    assert d["predicted_qps"] == d["measured_qps"]
    assert d["simulated_policy"] == "kairos" and d["homogeneous"]["policy"] == "kairos"
    assert d["candidates"] and all(c["policy"] == "fcfs" and "measured_qps" in c for c in d["candidates"])
    assert all("cost_per_hour" in c and "bound" not in c for c in d["candidates"])
    # the table: one column per dispatch policy, headed by it
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run(capsys, "plan", "--queries", "2000", "--method", "ribbon", "--budget", "1.5", "--evals", "4")
    assert code == 0, err
    assert "simulated max QPS, fcfs dispatch" in out and "simulated max QPS, kairos dispatch" in out
    chosen = next(line for line in out.splitlines() if "chosen" in line and "=" in line)
    assert f"{d['measured_qps']:.1f}" in chosen and f"{d['simulated_qps']:.1f}" in chosen


@pytest.mark.slow
def test_candidate_figures_are_named_by_kind(capsys, monkeypatch):
    # milp: a queueing-corrected estimate (not a bound), under "estimate"
    code, out, err = run(
        capsys, "plan", "--queries", "2000", "--budget", "1.5", "--evals", "3", "--no-compare", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["predicted_kind"] == "estimate" and d["policy"] == "kairos"
    assert d["candidates"] and all("estimate" in c and "bound" not in c for c in d["candidates"])
    assert all(c["policy"] == "kairos" for c in d["candidates"] if "measured_qps" in c)
    assert any("measured_qps" in c for c in d["candidates"])
    # exhaustive: the fluid LP, a true upper bound of what was measured
    code, out, err = run(
        capsys, "plan", "--queries", "2000", "--budget", "1.5", "--method", "exhaustive", "--no-compare", "--json"
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["predicted_kind"] == "measured_qps"
    assert all("fluid_bound" in c and "bound" not in c for c in d["candidates"])
    assert all(c["fluid_bound"] * 1.03 >= c["measured_qps"] for c in d["candidates"])
    # kairos: the paper's bound, nothing simulated, so no measured column in the table
    code, out, err = run(capsys, "plan", "--budget", "1.5", "--method", "kairos", "--no-compare", "--json")
    d = json.loads(out)
    assert d["predicted_kind"] == "paper_bound" and all("paper_bound" in c for c in d["candidates"])
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run(capsys, "plan", "--budget", "1.5", "--method", "kairos", "--no-compare")
    assert code == 0, err
    assert "paper bound (q/s)" in out and "simulated max QPS" not in out
