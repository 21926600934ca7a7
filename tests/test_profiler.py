"""kairos profile: batch-grid parsing, the CSV schema, append, flag errors, run time."""

import csv
import json
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kairos.cli.main import main  # noqa: E402
from kairos.errors import KairosInputError  # noqa: E402
from kairos.profiles import load_profiles  # noqa: E402
from kairos.profiles.profiler import COLUMNS, parse_batches, profile_model  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def keep_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def run_cli(args, capsys):
    """(exit code, stdout, stderr) of `kairos ARGS`."""
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_parse_batches():
    assert parse_batches("10,20,50") == [10, 20, 50]
    assert parse_batches("10:50:10") == [10, 20, 30, 40, 50]
    assert parse_batches("30, 10:20:10,30") == [10, 20, 30]
    assert parse_batches("10:1000:10") == list(range(10, 1001, 10))
    for bad in ("", "a", "0", "10:5", "1:10:0", "1:2:3:4", "-5", "200000"):
        with pytest.raises(KairosInputError):
            parse_batches(bad)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_profile_schema_and_summary(tmp_path, capsys):
    out = tmp_path / "ncf.csv"
    code, stdout, err = run_cli(
        [
            "profile",
            "--model",
            "ncf",
            "--instance",
            "cpu-1t",
            "--threads",
            "1",
            "--batches",
            "10,30",
            "--reps",
            "3",
            "--warmup",
            "1",
            "--max-rows",
            "1000",
            "--out",
            str(out),
            "--json",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    header, rows = read_csv(out)
    assert tuple(header) == COLUMNS == ("model", "instance", "batch", "rep", "infer_ms", "load_ms")
    assert len(rows) == 2 * 3
    assert [(r[0], r[1], int(r[2]), int(r[3])) for r in rows] == [
        ("ncf", "cpu-1t", b, k) for b in (10, 30) for k in range(3)
    ]
    infer = np.array([float(r[4]) for r in rows])
    load = np.array([float(r[5]) for r in rows])
    assert (infer > 0).all() and (load > 0).all()
    s = json.loads(stdout)
    assert s["model"] == "ncf" and s["instance"] == "cpu-1t" and s["device"] == "cpu"
    assert s["threads"] == 1 and s["batches"] == [10, 30] and s["reps"] == 3 and s["rows"] == 6
    assert s["elapsed_s"] > 0
    for i, pb in enumerate(s["per_batch"]):
        assert pb["batch"] == (10, 30)[i]
        assert pb["infer_ms"] == pytest.approx(infer[3 * i : 3 * i + 3].mean(), rel=1e-3, abs=1e-3)
        assert pb["load_ms"] == pytest.approx(load[3 * i : 3 * i + 3].mean(), rel=1e-3, abs=1e-3)
    prof = load_profiles(out)["ncf"]  # the catalogue loader reads it unchanged
    assert prof.types == ("cpu-1t",) and prof.batches.tolist() == [10, 30]
    assert prof.mean_ms[0, 0] == pytest.approx(np.sort(infer[:3] + load[:3])[:-1].mean(), rel=1e-6)


def test_append_two_local_types_then_simulate(tmp_path, capsys):
    out = tmp_path / "local.csv"
    common = [
        "--model",
        "ncf",
        "--batches",
        "10,20",
        "--reps",
        "4",
        "--warmup",
        "1",
        "--max-rows",
        "1000",
        "--out",
        str(out),
        "--quiet",
    ]
    assert run_cli(["profile", "--instance", "cpu-1t", "--threads", "1"] + common, capsys)[0] == 0
    assert run_cli(["profile", "--instance", "cpu-2t", "--threads", "2", "--append"] + common, capsys)[0] == 0
    # re-profiling a type replaces its rows, others are kept
    assert run_cli(["profile", "--instance", "cpu-1t", "--threads", "1", "--append"] + common, capsys)[0] == 0
    header, rows = read_csv(out)
    assert len(rows) == 2 * 2 * 4
    assert sorted({r[1] for r in rows}) == ["cpu-1t", "cpu-2t"]
    prices = tmp_path / "prices.csv"
    prices.write_text("instance,usd_per_hour\ncpu-1t,0.05\ncpu-2t,0.10\n")
    code, stdout, err = run_cli(
        [
            "simulate",
            "--profile",
            str(out),
            "--prices",
            str(prices),
            "--model",
            "ncf",
            "--config",
            "cpu-1t=1,cpu-2t=1",
            "--qos-ms",
            "1000",
            "--qps",
            "5",
            "--queries",
            "200",
            "--workload",
            "fixed:20",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    res = json.loads(stdout)
    assert res["config"] == {"cpu-1t": 1, "cpu-2t": 1}
    assert res["cost_per_hour"] == pytest.approx(0.15)
    # a different grid for another type would make the profile unusable: refused
    code, _, err = run_cli(
        [
            "profile",
            "--model",
            "ncf",
            "--instance",
            "cpu-3t",
            "--batches",
            "10",
            "--reps",
            "1",
            "--max-rows",
            "1000",
            "--out",
            str(out),
            "--append",
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "different batch sizes" in err
    code, _, err = run_cli(
        ["profile", "--model", "ncf", "--instance", "x", "--out", str(tmp_path / "no" / "x.csv"), "--quiet"], capsys
    )
    assert code == 2 and "does not exist" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model"),
        (["--model", "ncf", "--batches", "10,x"], "--batches"),
        (["--model", "ncf", "--batches", "0"], "--batches"),
        (["--model", "ncf", "--reps", "0"], "--reps must be >= 1"),
        (["--model", "ncf", "--threads", "0"], "--threads must be >= 1"),
        (["--model", "ncf", "--device", "tpu"], "unknown device"),
    ],
)
def test_flag_errors_one_line_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "x.csv"
    code, stdout, err = run_cli(["profile", "--instance", "x", "--out", str(out), "--quiet"] + args, capsys)
    assert code == 2
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_unavailable_one_line(tmp_path, capsys):
    code, _, err = run_cli(
        ["profile", "--model", "ncf", "--instance", "gpu", "--device", "cuda", "--out", str(tmp_path / "g.csv")], capsys
    )
    assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1


def test_ten_size_grid_under_a_minute():
    """RM2, the heaviest model, at its default size: 10 sizes spanning the published range."""
    t0 = time.perf_counter()
    run = profile_model("rm2", "cpu-1t", threads=1, batches=range(100, 1001, 100), reps=2, warmup=0)
    elapsed = time.perf_counter() - t0
    assert len(run.rows) == 10 * 2 and run.batches == list(range(100, 1001, 100))
    assert elapsed < 60, f"10-size grid took {elapsed:.1f} s"
    per = run.per_batch()
    assert per[-1]["infer_ms"] > per[0]["infer_ms"]  # 10x the samples costs more


def test_all_five_models_into_one_profile(tmp_path, capsys):
    """Every model profiles on CPU; one file holds them all and the catalogue loader reads it."""
    from kairos.models import MODELS

    out = tmp_path / "all.csv"
    for m in MODELS:
        code, _, err = run_cli(
            [
                "profile",
                "--model",
                m,
                "--instance",
                "cpu-1t",
                "--threads",
                "1",
                "--batches",
                "1,8",
                "--reps",
                "2",
                "--warmup",
                "0",
                "--max-rows",
                "500",
                "--out",
                str(out),
                "--append",
                "--quiet",
                "--json",
            ],
            capsys,
        )
        assert code == 0, err
    profiles = load_profiles(out)
    assert sorted(profiles) == sorted(MODELS)
    for p in profiles.values():
        assert p.types == ("cpu-1t",) and p.batches.tolist() == [1, 8] and (p.mean_ms > 0).all()


def test_interleaved_order_gives_the_same_schema():
    run = profile_model("ncf", "cpu-1t", threads=1, batches=[4, 2, 8], reps=3, warmup=1, max_rows=500, interleave=True)
    assert [(r[2], r[3]) for r in run.rows] == [(b, k) for b in (2, 4, 8) for k in range(3)]
    assert run.summary()["interleave"] is True
    assert all(r[4] > 0 and r[5] > 0 for r in run.rows)
