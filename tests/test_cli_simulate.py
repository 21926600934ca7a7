"""`kairos simulate`: the JSON contract and one-line errors with exit code 2."""

import json

import pytest
from cli_helpers import run_kairos


def run(*args, check=False):
    p = run_kairos(*args)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_max_qps_json_contract():
    p = run(
        "simulate",
        "--model",
        "rm2",
        "--config",
        "g4dn.xlarge=1,r5n.large=3",
        "--qos-ms",
        "350",
        "--policy",
        "kairos",
        "--max-qps",
        "--queries",
        "2000",
        "--json",
        check=True,
    )
    out = json.loads(p.stdout)
    for key in (
        "model",
        "config",
        "policy",
        "qos_ms",
        "queries",
        "max_qps",
        "fluid_bound_qps",
        "p99_ms",
        "qos_met_fraction",
        "elapsed_s",
    ):
        assert key in out, key
    assert out["config"] == {"g4dn.xlarge": 1, "r5n.large": 3}
    assert out["queries"] == 2000
    assert 0 < out["max_qps"] <= out["fluid_bound_qps"] * 1.03
    assert out["qos_met_fraction"] >= 0.99
    assert out["p99_ms"] <= 350.0


@pytest.mark.slow
def test_window_bound_is_reported_and_never_below_what_the_run_achieved():
    # dien's pool above its fluid bound: some misses are forced on any dispatcher
    p = run("simulate", "--model", "dien", "--qps", "850", "--queries", "1500", "--window-bound", "--json", check=True)
    out = json.loads(p.stdout)
    within = out["qos_met_fraction"] * out["queries"]
    assert within <= out["window_bound_within_qos"] + 1e-6
    assert out["window_bound_within_qos"] < out["queries"]
    assert out["window_bound_misses"] == pytest.approx(out["queries"] - out["window_bound_within_qos"], abs=0.11)
    # at the rate --max-qps finds, the bound allows the 99% the run reached
    p = run(
        "simulate",
        "--model",
        "rm2",
        "--config",
        "g4dn.xlarge=1,r5n.large=3",
        "--max-qps",
        "--queries",
        "1500",
        "--window-bound",
        "--json",
        check=True,
    )
    out = json.loads(p.stdout)
    assert out["window_bound_within_qos"] >= out["qos_met_fraction"] * out["queries"] - 1e-6
    p = run("simulate", "--model", "ncf", "--qps", "1000", "--queries", "300", "--window-bound", check=True)
    assert "window bound" in p.stdout and "misses" in p.stdout
    # a policy that passes no rate (max QPS 0): nothing to bound, said so, not an error
    p = run(
        "simulate",
        "--model",
        "ncf",
        "--policy",
        "p2c",
        "--max-qps",
        "--queries",
        "2000",
        "--window-bound",
        "--json",
        check=True,
    )
    out = json.loads(p.stdout)
    assert out["max_qps"] == 0 and out["window_bound_within_qos"] is None and out["window_bound_misses"] is None


def test_fixed_rate_json_and_table():
    p = run("simulate", "--model", "ncf", "--qps", "1000", "--queries", "2000", "--json", check=True)
    out = json.loads(p.stdout)
    assert out["qps"] == 1000 and "max_qps" not in out
    assert out["config"] == {"g4dn.xlarge": 1, "r5n.large": 13}  # the paper's pool for ncf
    assert out["qos_ms"] == 5.0
    assert len(out["instances"]) == 14
    p = run("simulate", "--model", "ncf", "--qps", "1000", "--queries", "500", check=True)
    assert "fluid bound" in p.stdout and "QoS met" in p.stdout


def test_handoff_costs_qos_and_is_reported():
    base = ["simulate", "--model", "dien", "--qps", "620", "--queries", "3000", "--json"]
    plain = json.loads(run(*base, check=True).stdout)
    slow = json.loads(run(*base, "--handoff-ms", "2", check=True).stdout)
    assert "handoff_ms" not in plain and slow["handoff_ms"] == 2.0
    # every start on an idle instance held 2 ms longer: more waiting, fewer queries in time
    assert slow["mean_wait_ms"] > plain["mean_wait_ms"] and slow["qos_met_fraction"] < plain["qos_met_fraction"]


def test_workload_file_and_schedule(tmp_path):
    f = tmp_path / "sizes.txt"
    f.write_text("100\n200\n")
    p = run("simulate", "--model", "rm2", "--qps", "50", "--queries", "500", "--workload", str(f), "--json", check=True)
    assert json.loads(p.stdout)["workload"] == str(f)
    p = run("simulate", "--model", "rm2", "--schedule", "0:40,5:80", "--duration", "10", "--json", check=True)
    out = json.loads(p.stdout)
    assert 400 < out["queries"] < 800
    assert (out["qps"], out["schedule"], out["duration_s"], out["ramp"]) == (None, "0:40,5:80", 10.0, False)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--model", "nope"], "unknown model"),
        (["--config", "g4dn.xlarge=2,foo.large=1"], "instance type 'foo.large'"),
        (["--config", ""], "empty"),
        (["--config", "g4dn.xlarge=0"], "no instances"),
        (["--qos-ms", "0"], "--qos-ms must be a finite number > 0"),
        (["--qos-ms", "-5"], "--qos-ms must be a finite number > 0"),
        (["--qos-ms", "inf"], "--qos-ms must be a finite number > 0"),
        (["--qos-ms", "nan"], "--qos-ms must be a finite number > 0"),
        (["--qos-ms", "1"], "cannot be met"),
        (["--qps", "0"], "--qps must be a finite number > 0"),
        (["--qps", "-3"], "--qps must be a finite number > 0"),
        (["--qps", "inf"], "--qps must be a finite number > 0"),
        (["--queries", "0"], "--queries must be >= 1"),
        (["--qps", "100", "--handoff-ms", "-1"], "--handoff-ms must be a finite number >= 0"),
        (["--qps", "100", "--handoff-ms", "nan"], "--handoff-ms must be a finite number >= 0"),
        (["--workload", "fixed:5000"], "beyond the largest measured size"),
        (["--profile", "/nonexistent.csv"], "not found"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle):
    p = run("simulate", *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert needle in lines[0]
    assert "Traceback" not in p.stderr


def test_negative_seed_rejected_by_the_option_parser():
    p = run("simulate", "--seed", "-1", "--qps", "10")
    assert p.returncode == 2 and "Invalid value for '--seed'" in p.stderr and "Traceback" not in p.stderr


def test_trace_with_a_non_finite_timestamp(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("0.1\nnan\n")
    p = run("simulate", "--trace", str(f))
    assert p.returncode == 2 and "line 2" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "content,needle",
    [
        ("", "empty profile"),
        ("model,instance,batch,latency_ms\n", "no rows"),
        ("model,instance,batch,latency_ms\nrm2,g4dn.xlarge,10,x\n", "must be a number"),
        ("model,instance,batch,latency_ms\nrm2,g4dn.xlarge,10,1\nrm2,r5n.large,20,1\n", "no measurement"),
    ],
)
def test_bad_profile_files(tmp_path, content, needle):
    f = tmp_path / "p.csv"
    f.write_text(content)
    p = run("simulate", "--profile", str(f), "--config", "g4dn.xlarge=1", "--qps", "1")
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def test_help_explains_every_flag():
    p = run("simulate", "--help", check=True)
    for flag in (
        "--model",
        "--config",
        "--qos-ms",
        "--policy",
        "--qps",
        "--max-qps",
        "--profile",
        "--prices",
        "--workload",
        "--queries",
        "--seed",
        "--json",
        "--trace",
        "--schedule",
    ):
        assert flag in p.stdout


def test_unusable_output_path_one_line_exit_2():
    p = run("reproduce", "--quick", "--out", "/proc/kairos-no-such-dir/out")
    assert p.returncode == 2, p.stderr
    assert "cannot use" in p.stderr and "/proc/kairos-no-such-dir" in p.stderr and "Traceback" not in p.stderr


def test_policy_option_reaches_the_policy():
    p = run(
        "simulate",
        "--model",
        "ncf",
        "--qps",
        "3000",
        "--queries",
        "2000",
        "--policy-option",
        "risk_penalty=none",
        "--policy-option",
        "age_weight=2",
        "--policy-option",
        "urgency=1",
        "--json",
        check=True,
    )
    out = json.loads(p.stdout)
    # none of them the default (risk_penalty 0.5, age_weight 3, urgency 0.5)
    assert out["policy_params"]["risk_penalty"] is None and out["policy_params"]["age_weight"] == 2
    assert out["policy_params"]["urgency"] == 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--policy-option", "nope=1"], "is not an option of policy 'kairos'"),
        (["--policy-option", "risk_penalty"], "must look like KEY=VALUE"),
        (["--policy-option", "risk_penalty=-1"], "risk_penalty must be None or a finite number >= 0"),
        (["--policy", "fcfs", "--policy-option", "x=1"], "its options: none"),
        (["--policy-option", "tail_quantile=5"], "tail_quantile must be in (0, 1]"),
        (["--policy-option", "age_weight=nan"], "age_weight must be a finite number >= 0"),
        (["--policy-option", "learn=maybe"], "learn must be true or false"),
        (["--policy", "deeprecsys", "--policy-option", "threshold=-5"], "threshold must be a query size >= 1"),
    ],
)
def test_bad_policy_option(args, needle):
    p = run("simulate", "--qps", "10", *args)
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr


def _trace(tmp_path, rate=50.0, n=400):
    import numpy as np

    f = tmp_path / "trace.txt"
    f.write_text("\n".join(f"{t:.6f}" for t in np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))))
    return f


# Bad combinations and files found by a black-box review (2026-11-29): each was accepted
# (or crashed) before; now one line naming the option, exit code 2.
@pytest.mark.parametrize(
    "args,files,needle",
    [
        (["--qos-ms", "200", "--queries", "500"], {}, "at most 97.1% can meet it"),  # rm2: 2.9% of sizes > 200 ms
        (["--workload", ""], {}, "--workload is empty"),
        (["--schedule", ""], {}, "--schedule is empty"),
        (["--duration", "10"], {}, "--duration applies only with --schedule"),
        (["--ramp", "--qps", "10"], {}, "--ramp applies only with --schedule"),
        (["--trace", "{trace}", "--schedule", "0:50", "--duration", "10"], {}, "either --trace or --schedule"),
        (["--trace", "{trace}", "--queries", "100"], {}, "--queries: the number of queries comes from"),
        (["--workload", "{f}", "--qps", "5"], {"f": "10\n20.5\n"}, "line 2: query size must be a positive integer"),
        (
            [
                "--profile",
                "{f}",
                "--config",
                "g4dn.xlarge=1",
                "--workload",
                "fixed:10",
                "--qos-ms",
                "100",
                "--qps",
                "5",
            ],
            {"f": "model,instance,batch,latency_ms\nrm2,g4dn.xlarge,10,0\n"},
            "line 2: latency must be > 0",
        ),
        (
            [
                "--profile",
                "{f}",
                "--config",
                "g4dn.xlarge=1",
                "--workload",
                "fixed:10",
                "--qos-ms",
                "100",
                "--qps",
                "5",
            ],
            {"f": "model,instance,batch,latency_ms\nrm2,g4dn.xlarge,10,5,7\n"},
            "line 2: more fields than the header",
        ),
        (
            ["--prices", "{f}", "--qps", "5"],
            {"f": "instance,usd_per_hour\ng4dn.xlarge,1\ng4dn.xlarge,2\n"},
            "line 3: a second price for 'g4dn.xlarge'",
        ),
        (
            ["--qps", "5", "--policy-option", "urgency=1", "--policy-option", "urgency=0"],
            {},
            "'urgency' is given twice",
        ),
        (["--qps", "abc"], {}, "Invalid value for '--qps'"),
        (["--policy", "nope"], {}, "Invalid value for '--policy'"),
        (["--no-such-flag"], {}, "No such option '--no-such-flag'"),
    ],
)
def test_more_bad_input_one_line_exit_2(tmp_path, args, files, needle):
    paths = {"trace": str(_trace(tmp_path))}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths[name] = str(tmp_path / name)
    p = run("simulate", *[a.format(**paths) for a in args])
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert needle in lines[0] and "Traceback" not in p.stderr


def test_trace_scaled_to_a_rate_keeps_its_times_at_its_own_rate(tmp_path):
    # the trace's own mean rate (399 gaps over its span) reproduces the replay; twice the rate halves every time
    import numpy as np

    f = _trace(tmp_path)
    t = np.loadtxt(f)
    own = (len(t) - 1) / (t[-1] - t[0])
    a = json.loads(run("simulate", "--trace", str(f), "--json", check=True).stdout)
    b = json.loads(run("simulate", "--trace", str(f), "--qps", f"{own:.9f}", "--json", check=True).stdout)
    assert a["p50_ms"] == pytest.approx(b["p50_ms"], rel=1e-6) and a["qos_met_fraction"] == b["qos_met_fraction"]
    c = json.loads(run("simulate", "--trace", str(f), "--qps", f"{20 * own:.9f}", "--json", check=True).stdout)
    assert c["p50_ms"] > a["p50_ms"]  # 20x denser: rm2's 11 instances queue (~1,000 q/s against a bound of ~120)
    m = json.loads(run("simulate", "--trace", str(f), "--max-qps", "--json", check=True).stdout)
    assert m["max_qps"] > own and m["qos_met_fraction"] >= 0.99


def test_plan_sets_the_workload_and_conflicts_with_model(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "model": "ncf",
                "qos_ms": 5,
                "config": {"g4dn.xlarge": 1, "r5n.large": 2},
                "workload": "fixed:500",
                "cost_per_hour": 1.0,
            }
        )
    )
    p = run("simulate", "--plan", str(plan), "--qps", "500", "--queries", "300", "--json", check=True)
    out = json.loads(p.stdout)
    assert out["workload"] == "fixed:500" and out["model"] == "ncf" and out["qos_ms"] == 5.0
    assert "the plan's cost was $1/h" in p.stderr  # the built-in prices give another cost
    p = run(
        "simulate",
        "--plan",
        str(plan),
        "--qps",
        "500",
        "--queries",
        "300",
        "--qos-ms",
        "7",
        "--workload",
        "fixed:100",
        "--json",
        check=True,
    )
    out = json.loads(p.stdout)
    assert out["workload"] == "fixed:100" and out["qos_ms"] == 7.0  # explicit options override the plan's
    p = run("simulate", "--plan", str(plan), "--model", "rm2")
    assert p.returncode == 2 and "the plan sets --model" in p.stderr
    plan.write_text(json.dumps({"model": "ncf", "qos_ms": 5, "config": {"r5n.large": 2}, "workload": "fixed:0"}))
    p = run("simulate", "--plan", str(plan), "--qps", "10")
    assert p.returncode == 2 and "plan workload" in p.stderr and "Traceback" not in p.stderr


def test_one_line_for_click_errors_and_help_without_double_percent():
    p = run("simulate", "--help", check=True)
    text = " ".join(p.stdout.split())
    assert "99% of queries" in text and "%%" not in text


def test_a_search_in_which_no_rate_passed_says_so():
    # p2c on ncf's 5 ms QoS: more than 1% of queries miss even at a trickle (sizes sent to slow instances)
    p = run("simulate", "--model", "ncf", "--policy", "p2c", "--queries", "2000", check=True)
    text = " ".join(p.stdout.split()).replace("│", "")
    assert "0: no rate passed" in text and "millionth of the fluid bound" in " ".join(text.split())
