"""`kairos reproduce --quick`: run once, then check the tables' shape and invariants.

All QPS values come from the same simulator and max-QPS search, so the optimum (the
exhaustive search) must be at least every method's value and every configuration's
fluid bound at least its measured QPS -- up to the slack of finite simulations.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kairos.profiles import builtin_catalogue
from kairos.reproduce.cache import CellCache
from kairos.reproduce.experiments import DISPATCHERS, QUICK, SENSITIVITY, TABLE1, recovery_units, window_stats
from kairos.reproduce.noise import perturb_profile

KAIROS = [sys.executable, "-m", "kairos.cli.main"]
TOL = 0.05  # finite runs (4,000 queries) may pass slightly above a bound


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    docs = out / "docs" / "results.md"
    t0 = time.perf_counter()
    p = subprocess.run(
        KAIROS + ["reproduce", "--quick", "--out", str(out), "--jobs", "2", "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    return {"out": out, "docs": docs, "wall": wall, "stdout": p.stdout}


def rows(run, name):
    with open(run["out"] / f"{name}.csv") as fh:
        return list(csv.DictReader(fh))


def num(x):
    return float(x) if x not in ("", None) else None


@pytest.mark.slow
def test_outputs_written(run):
    out = run["out"]
    for name in (
        "tables.md",
        "results.md",
        "meta.json",
        "table1_throughput.csv",
        "table2_exploration.csv",
        "table3a_budget.csv",
        "table3b_qos.csv",
        "table3c_noise.csv",
        "table4_load.csv",
        "load_windows.csv",
        "table5_dispatch.csv",
    ):
        assert (out / name).stat().st_size > 0, name
    for fig in ("fig1_throughput", "fig2_exploration", "fig3_sensitivity", "fig4_load", "fig5_dispatch"):
        assert (out / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    meta = json.loads((out / "meta.json").read_text())
    assert meta["settings"]["quick"] is True and meta["status"] == ""
    assert "figures:" in run["stdout"]


@pytest.mark.slow
def test_table1_shape_and_invariants(run):
    t = rows(run, "table1_throughput")
    assert {r["model"] for r in t} == set(QUICK.models)
    for m in QUICK.models:
        got = {r["scheme"]: r for r in t if r["model"] == m}
        assert set(got) == set(TABLE1), m
        opt = num(got["optimum"]["qps"])
        assert opt > 0
        assert num(got["optimum"]["norm_to_optimum"]) == pytest.approx(1.0)
        for s, r in got.items():
            q = num(r["qps"])
            assert 0 <= q <= opt * (1 + TOL), (m, s, q, opt)
            assert num(r["norm_to_optimum"]) <= 1 + TOL
            assert q <= num(r["fluid_bound"]) * (1 + TOL), (m, s)
            assert num(r["cost_per_hour"]) <= 2.5 + 1e-9
        # the schemes' pairing of planner and dispatcher
        assert got["ribbon"]["policy"] == "fcfs" and got["kairos"]["policy"] == "kairos-paper"
        assert got["deeprecsys"]["config"] == got["optimum"]["config"] == got["clockwork"]["config"]
        assert got["ours"]["policy"] == "kairos"


@pytest.mark.slow
def test_exploration_counts(run):
    t = rows(run, "table2_exploration")
    for m in QUICK.models:
        got = {r["scheme"]: int(r["evaluations"]) for r in t if r["model"] == m}
        assert got["kairos"] == 0  # one-shot: no simulation
        assert got["ribbon"] == QUICK.search_evals and got["random"] == QUICK.search_evals
        assert got["optimum"] >= 1 and got["kairos+"] >= 1


@pytest.mark.slow
def test_sensitivity_tables(run):
    for name, key, values in (
        ("table3a_budget", "budget", QUICK.budgets),
        ("table3b_qos", "qos_factor", QUICK.qos_factors),
    ):
        t = rows(run, name)
        for m in QUICK.models:
            for v in values:
                cell = [r for r in t if r["model"] == m and float(r[key]) == v]
                assert cell, (name, m, v)
                if cell[0]["scheme"] == "infeasible":
                    continue
                assert set(SENSITIVITY) <= {r["scheme"] for r in cell}
                opt = num(next(r for r in cell if r["scheme"] == "optimum")["qps"])
                for r in cell:
                    assert num(r["qps"]) <= opt * (1 + TOL), (name, m, v, r["scheme"])
                    assert num(r["qps"]) <= num(r["fluid_bound"]) * (1 + TOL)
    nz = rows(run, "table3c_noise")
    assert len(nz) == len(QUICK.models) * len(QUICK.noise_levels) * len(QUICK.noise_policies)
    for r in nz:
        assert int(r["draws"]) == QUICK.noise_draws and num(r["mean_qps"]) >= 0


@pytest.mark.slow
def test_dispatch_ablation(run):
    t = rows(run, "table5_dispatch")
    for m in QUICK.models:
        got = {r["policy"]: r for r in t if r["model"] == m}
        assert set(got) == set(DISPATCHERS)
        for p, r in got.items():
            assert 0 <= num(r["max_qps"]) <= num(r["fluid_bound"]) * (1 + TOL), (m, p)
            assert num(r["fraction_of_bound"]) <= 1 + TOL


@pytest.mark.slow
def test_load_change(run):
    summ = rows(run, "table4_load")
    win = rows(run, "load_windows")
    assert {r["policy"] for r in summ} == set(DISPATCHERS)
    for p in DISPATCHERS:
        w = [r for r in win if r["policy"] == p]
        assert len(w) == 110
        met = np.array([num(r["met"]) for r in w])
        n = np.array([num(r["arrivals"]) for r in w])
        assert np.all((0 <= met) & (met <= 1))
        assert n[40:50].mean() > 2.0 * n[0:20].mean()  # the 1.2x burst against the 0.5x start
    k = next(r for r in summ if r["policy"] == "kairos")
    assert num(k["met_before_burst"]) >= 0.98  # below its max QPS the planned pool meets QoS
    assert num(k["met_in_burst"]) <= num(k["met_before_burst"])


@pytest.mark.slow
def test_results_page(run):
    md = run["docs"].read_text()
    assert md.count("**Claim:") == 5
    for fig in ("fig1_throughput", "fig3_sensitivity", "fig4_load", "fig5_dispatch"):
        assert f"../{fig}.png)" in md  # links relative to the docs copy
    for verdict_line in [ln for ln in md.splitlines() if ln.startswith("**Claim:")]:
        assert any(v in verdict_line for v in ("holds", "does not hold"))


@pytest.mark.slow
def test_rerun_uses_the_cache(run):
    before = (run["out"] / "table1_throughput.csv").read_text()
    t0 = time.perf_counter()
    p = subprocess.run(
        KAIROS + ["reproduce", "--quick", "--out", str(run["out"]), "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert time.perf_counter() - t0 < max(30.0, 0.25 * run["wall"])
    assert (run["out"] / "table1_throughput.csv").read_text() == before


@pytest.mark.slow
def test_report_only_json_and_its_empty_cache_error(run, tmp_path):
    p = subprocess.run(
        KAIROS + ["reproduce", "--quick", "--out", str(run["out"]), "--report-only", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["out"] == str(run["out"]) and any(f.endswith("results.md") for f in out["files"])
    assert all((run["out"] / Path(f).name).exists() or Path(f).exists() for f in out["files"])
    p = subprocess.run(
        KAIROS + ["reproduce", "--out", str(tmp_path / "empty"), "--report-only"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 2 and "no finished cells" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run(
        KAIROS + ["reproduce", "--out", str(tmp_path / "x"), "--models", ""],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 2 and "--models" in p.stderr and not (tmp_path / "x").exists()


# ------------------------------------------------------------------ small units
def test_perturbed_profile_keeps_shape_and_bounds():
    prof = builtin_catalogue().profile("rm2")
    noisy = perturb_profile(prof, 0.3, 7)
    assert noisy.types == prof.types and np.array_equal(noisy.batches, prof.batches)
    f = noisy.mean_ms / prof.mean_ms
    assert np.all((f >= 0.7 - 1e-12) & (f <= 1.3 + 1e-12)) and f.std() > 0.05
    assert np.allclose(noisy.quantiles_ms / prof.quantiles_ms, f[:, :, None])
    assert np.array_equal(perturb_profile(prof, 0.3, 7).mean_ms, noisy.mean_ms)  # seeded
    assert np.array_equal(perturb_profile(prof, 0.0, 7).mean_ms, prof.mean_ms)


def test_recovery_and_windows():
    frac = np.array([1.0] * 5 + [0.2, 0.5, 0.995, 0.98, 1.0, 1.0, 1.0])
    assert recovery_units(frac, 5, 12) == 2.0  # 0.995 then, on average, >= 99%
    assert recovery_units(np.full(6, 0.5), 2, 6) is None
    arr = np.array([0.0, 500.0, 1500.0, 1600.0, 2500.0])
    lat = np.array([1.0, 20.0, 1.0, 1.0, 30.0])
    n, met, p99 = window_stats(arr, lat, 10.0, 1.0, 3)
    assert n.tolist() == [2, 2, 1] and met.tolist() == [0.5, 1.0, 0.0] and p99.tolist() == [20.0, 1.0, 30.0]


def test_cell_cache_roundtrip(tmp_path):
    c = CellCache(tmp_path / "c.jsonl")
    cell = {"kind": "x", "a": 1, "b": [1, 2]}
    c.put(cell, {"qps": 1.5})
    with open(tmp_path / "c.jsonl", "a") as fh:
        fh.write('{"key": "cut')  # an interrupted write
    again = CellCache(tmp_path / "c.jsonl")
    assert again.get({"b": [1, 2], "a": 1, "kind": "x"}) == {"qps": 1.5} and cell in again
    assert again.get({"kind": "x", "a": 2, "b": [1, 2]}) is None


def _cells(s):
    """Every cell of a run of ``s`` (load cells from a made-up main plan result)."""
    from kairos.reproduce.experiments import load_cells, main_cells, sensitivity_cells

    main = [c for c in main_cells(s) if c["kind"] == "plan"]
    fake = [(c, {"rows": [{"scheme": "ours", "config": {"g4dn.xlarge": 1}, "qps": 10.0}]}) for c in main]
    return main_cells(s) + sensitivity_cells(s) + load_cells(s, fake)


def test_a_cell_is_keyed_on_the_policies_it_uses():
    from kairos.reproduce.experiments import _plan, cell_policies

    main, sweep = _plan(QUICK, "rm2", 2.5, 1.0), _plan(QUICK, "rm2", 1.5, 1.0)
    assert cell_policies(main) == ["clockwork", "deeprecsys", "fcfs", "kairos", "kairos-paper"]  # ribbon: fcfs
    assert cell_policies(sweep) == ["clockwork", "deeprecsys", "kairos", "kairos-paper"]  # no ribbon in the sweeps
    cells = _cells(QUICK)
    assert {c["kind"] for c in cells} == {"plan", "dispatch", "load"}
    for c in cells:
        if c["kind"] != "plan":
            assert cell_policies(c) == [c["policy"]]


def test_cell_cache_misses_only_the_cells_of_a_policy_whose_defaults_change(tmp_path, monkeypatch):
    from kairos.dispatch.baselines import FCFSPolicy
    from kairos.reproduce.experiments import cell_policies

    cells = _cells(QUICK)
    c = CellCache(tmp_path / "c.jsonl", cell_policies)
    for i, cell in enumerate(cells):
        c.put(cell, {"qps": float(i)})
    assert all(
        CellCache(tmp_path / "c.jsonl", cell_policies).get(cell) == {"qps": float(i)} for i, cell in enumerate(cells)
    )
    monkeypatch.setattr(FCFSPolicy, "describe", lambda self: {"new_default": 1})  # fcfs's defaults change
    again = CellCache(tmp_path / "c.jsonl", cell_policies)
    missed = [cell for cell in cells if cell not in again]
    assert missed and all("fcfs" in cell_policies(cell) for cell in missed)
    assert len(missed) == sum("fcfs" in cell_policies(cell) for cell in cells)
    assert {(m["kind"], m.get("policy")) for m in missed} == {("plan", None), ("dispatch", "fcfs"), ("load", "fcfs")}


def test_a_new_policy_leaves_every_cached_cell_valid(tmp_path, monkeypatch):
    """Registering a policy adds its own cells to the comparisons it joins; it changes no other cell's key."""
    from kairos.dispatch import registry
    from kairos.dispatch.baselines import FCFSPolicy
    from kairos.reproduce.experiments import cell_policies

    before = {CellCache(tmp_path / "c.jsonl", cell_policies).key(c) for c in _cells(QUICK)}

    class Newcomer(FCFSPolicy):
        name = "newcomer"

        def describe(self):
            return {"setting": 1}

    monkeypatch.setitem(registry.POLICIES, "newcomer", registry.PolicySpec("newcomer", Newcomer))
    assert {CellCache(tmp_path / "c.jsonl", cell_policies).key(c) for c in _cells(QUICK)} == before


def test_comparisons_come_from_the_registries():
    """The policies of each comparison (PolicySpec.comparisons) and the schemes of each table
    (reproduce's Scheme records), in the order the committed tables have them."""
    from kairos.dispatch.registry import POLICIES, PolicySpec
    from kairos.reproduce.experiments import EXPLORATION, FULL, LOAD_POLICIES, PRIOR, SCHEMES, schemes_in
    from kairos.reproduce.report import LABEL

    assert (
        DISPATCHERS
        == LOAD_POLICIES
        == ("kairos", "kairos-online", "kairos-paper", "fcfs", "deeprecsys", "clockwork", "least-loaded", "p2c")
    )
    assert FULL.noise_policies == ("kairos", "kairos-online", "kairos-paper", "deeprecsys", "clockwork")
    assert QUICK.noise_policies == ("kairos", "kairos-online", "kairos-paper", "clockwork")
    assert tuple(SCHEMES) == TABLE1 + ("random",)
    assert TABLE1 == ("homogeneous", "ribbon", "deeprecsys", "clockwork", "kairos", "kairos+", "ours", "optimum")
    assert SENSITIVITY == ("homogeneous", "deeprecsys", "clockwork", "kairos", "kairos+", "ours", "optimum")
    assert EXPLORATION == ("kairos", "ours", "homogeneous", "kairos+", "ribbon", "random", "optimum")
    assert schemes_in("sweep-figure") == ("homogeneous", "deeprecsys", "clockwork", "kairos", "ours")
    assert PRIOR == ("ribbon", "deeprecsys", "clockwork") and LABEL["ours"] == "ours (milp + kairos)"
    assert all(s.label == s.name for s in POLICIES.values())  # the tables name policies by name
    with pytest.raises(ValueError, match="unknown comparisons"):
        PolicySpec("fcfs", POLICIES["fcfs"].cls, comparisons=("ablation",))
    with pytest.raises(ValueError, match="name = 'fcfs'"):
        PolicySpec("first-come", POLICIES["fcfs"].cls)
