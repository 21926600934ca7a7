"""The paper's experiments as cells: one function per kind of cell, each returning plain rows.

A *cell* is a JSON-able dict of everything that determines its result (model, budget,
QoS, queries, seed, ...). :func:`run_cells` runs the cells that are not cached yet, in
``jobs`` processes, and stores each result in :class:`~kairos.reproduce.cache.CellCache`
as soon as it finishes, so an interrupted run resumes where it stopped.

Kinds of cell:

* ``plan`` -- one (model, budget, QoS): every planner chooses a configuration and every
  choice is measured with the same max-QPS search (:class:`~kairos.plan.evaluate.Evaluator`,
  same queries and seed), each with the dispatch policy of its scheme (see :data:`SCHEMES`).
* ``dispatch`` -- one policy on a fixed pool (the paper's pool for the model), optionally
  with noisy latency estimates (``noise`` > 0): the dispatcher sees a perturbed profile
  while the queries keep their true service times.
* ``load`` -- one policy on the planned pool under a rate schedule (steps, an overload
  burst, a ramp); QoS-met fraction and p99 per window, time to recover after the burst.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from kairos.dispatch.registry import make_policy, policies_in, policy_class
from kairos.errors import KairosInputError
from kairos.paper import MODELS, PAPER_BUDGET, PAPER_CONFIGS, PAPER_QOS_MS
from kairos.plan.evaluate import Evaluator
from kairos.plan.fluid import config_fluid_bound
from kairos.plan.methods import DEFAULT_METHOD, METHODS, PlanResult, run_method
from kairos.plan.space import PlanProblem, count_configurations
from kairos.profiles.catalogue import Catalogue, load_catalogue
from kairos.reproduce.cache import CellCache
from kairos.reproduce.noise import perturb_profile
from kairos.sim.engine import simulate
from kairos.sim.experiment import Experiment
from kairos.sim.search import allowed_misses, max_qps, tune_size_threshold
from kairos.workload.arrivals import RateSchedule
from kairos.workload.sizes import parse_size_mix

MIX = "deeprecsys"
DISPATCHERS = policies_in("dispatch")  # the dispatch ablation (registry: PolicySpec.comparisons)
LOAD_POLICIES = policies_in("load")  # the load change
OPTIMUM = "optimum"  # a scheme's planner: the exhaustive search's configuration, given for free
KAIROS_PLUS_CAP = 60  # evaluations kairos+ may use (keeps the full run finite at large budgets)


@dataclass(frozen=True)
class Scheme:
    """One (planner, dispatch policy) pair of the paper's comparison, and where the report shows it.

    Every scheme runs in the main plan cell (the paper's budget and QoS); ``tables`` says
    where else: ``table1`` (QoS-throughput), ``sweeps`` (the budget and QoS cells, and their
    tables), ``sweep-figure`` (a line in the sensitivity figure). ``exploration`` is its
    column in the exploration-cost table (None: not shown there); ``prior`` marks the
    prior schemes the paper's claim compares against.
    """

    name: str  # the tables' scheme column
    planner: str  # a method of kairos.plan.methods, or OPTIMUM
    policy: str  # the dispatch policy that serves (and measures) its configuration
    label: str  # the tables' and figures' heading
    tables: tuple[str, ...] = ("table1", "sweeps", "sweep-figure")
    exploration: int | None = None
    prior: bool = False
    searches: bool = False  # its planner is given the run's ``search_evals`` evaluations
    max_evals: int | None = None  # a cap on its planner's evaluations

    @property
    def method(self) -> str:
        """The plan method that runs for it (OPTIMUM: the exhaustive search)."""
        return "exhaustive" if self.planner == OPTIMUM else self.planner


# in the tables' order. The prior dispatch schemes run on the optimum's configuration
# (the paper gave them the best configuration of an offline search).
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("homogeneous", "homogeneous", "kairos", "best homogeneous", exploration=2),
        Scheme("ribbon", "ribbon", "fcfs", "RIBBON (BO + FCFS)", ("table1",), exploration=4, prior=True, searches=True),
        Scheme("deeprecsys", OPTIMUM, "deeprecsys", "DeepRecSys*", prior=True),
        Scheme("clockwork", OPTIMUM, "clockwork", "Clockwork*", prior=True),
        Scheme("kairos", "kairos", "kairos-paper", "Kairos (paper)", exploration=0),
        Scheme(
            "kairos+", "kairos+", "kairos", "Kairos+", ("table1", "sweeps"), exploration=3, max_evals=KAIROS_PLUS_CAP
        ),
        Scheme("ours", DEFAULT_METHOD, "kairos", "ours (milp + kairos)", exploration=1),
        Scheme("optimum", "exhaustive", "kairos", "optimum", ("table1", "sweeps"), exploration=6),
        Scheme("random", "random", "kairos", "random search", (), exploration=5, searches=True),
    )
}


def schemes_in(table: str) -> tuple[str, ...]:
    return tuple(n for n, s in SCHEMES.items() if table in s.tables)


TABLE1 = schemes_in("table1")
SENSITIVITY = schemes_in("sweeps")
EXPLORATION = tuple(n for _, n in sorted((s.exploration, n) for n, s in SCHEMES.items() if s.exploration is not None))
PRIOR = tuple(n for n, s in SCHEMES.items() if s.prior)

# the load-change schedule, in window units: (unit, fraction of the pool's max QPS);
# a step is two points 1e-6 units apart (RateSchedule with ramps between points)
_E = 1e-6
LOAD_POINTS = (
    (0, 0.5),
    (20, 0.5),
    (20 + _E, 0.9),
    (40, 0.9),
    (40 + _E, 1.2),
    (50, 1.2),
    (50 + _E, 0.6),
    (70, 0.6),
    (100, 0.95),
    (110, 0.95),
)
BURST = (40.0, 50.0)  # units of the overload burst
RECOVER_BY = 70.0  # recovery must hold until the ramp starts
LOAD_UNITS = 110.0


@dataclass(frozen=True)
class Settings:
    """What one ``kairos reproduce`` run measures."""

    models: tuple[str, ...] = MODELS
    queries: int = 20_000
    seed: int = 0
    budgets: tuple[float, ...] = (1.5, 2.5, 5.0, 10.0)
    qos_factors: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.0)
    noise_levels: tuple[float, ...] = (0.1, 0.2, 0.3)
    noise_draws: int = 2
    noise_policies: tuple[str, ...] = policies_in("noise")
    search_evals: int = 15  # RIBBON's and random search's evaluations
    load_models: tuple[str, ...] = MODELS
    load_per_window: int = 500  # queries per window at 1x (so that 99% per window is not a coin toss)
    profile: str | None = None
    quick: bool = False

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


FULL = Settings()
QUICK = Settings(
    models=("rm2", "ncf"),
    queries=3000,
    budgets=(1.5, 2.5),
    qos_factors=(1.0, 2.0),
    noise_levels=(0.1, 0.3),
    noise_draws=1,
    noise_policies=policies_in("quick-noise"),
    search_evals=6,
    load_models=("rm2",),
    load_per_window=200,
    quick=True,
)


def settings_for(quick: bool, profile: str | None = None, models: tuple[str, ...] | None = None) -> Settings:
    s = QUICK if quick else FULL
    if profile is not None:
        s = replace(s, profile=str(profile))
    if models:
        s = replace(
            s, models=tuple(models), load_models=tuple(m for m in s.load_models if m in models) or tuple(models[:1])
        )
    return s


# ---------------------------------------------------------------------------- helpers
@lru_cache(maxsize=4)
def catalogue(profile: str | None) -> Catalogue:
    return load_catalogue(profile, None)


def _tag(profile: str | None) -> str:
    if profile is None:
        return "builtin"
    return hashlib.sha1(Path(profile).read_bytes()).hexdigest()[:10]


def evaluator(cell: dict, cache_dir: str, qos_ms: float) -> Evaluator:
    path = Path(cache_dir) / f"evals-{_tag(cell.get('profile'))}.jsonl"
    return Evaluator(
        catalogue(cell.get("profile")),
        cell["model"],
        qos_ms,
        parse_size_mix(MIX),
        cell["queries"],
        cell["seed"],
        path,
        1,
    )


# ---------------------------------------------------------------------------- plan cells
def plan_cell(cell: dict, cache_dir: str) -> dict:
    """Every scheme of ``cell['schemes']`` at one (model, budget, QoS)."""
    cat = catalogue(cell.get("profile"))
    mix = parse_size_mix(MIX)
    model, budget, qos = cell["model"], cell["budget"], cell["qos_ms"]
    try:
        prob = PlanProblem.build(cat, model, budget, qos, mix)
    except KairosInputError as exc:
        return {"rows": [], "infeasible": str(exc)}
    ev = evaluator(cell, cache_dir, qos)
    profile = cat.profile(model)
    probs = mix.bucket_probabilities(profile.batches)
    chosen: dict[str, PlanResult | KairosInputError] = {}
    rows = []
    for sch in _run_order(cell["schemes"]):  # the optimum first: others reuse its evaluations
        p = sch.method
        opts = {"seed": cell["seed"]}
        if sch.searches:
            opts["evals"] = cell["search_evals"]
        if sch.max_evals is not None:
            opts["max_evals"] = sch.max_evals
        t0 = time.perf_counter()
        try:
            res = run_method(p, prob, ev, **opts)
        except KairosInputError as exc:
            chosen[p] = exc
            continue
        res.notes.append(f"wall {time.perf_counter() - t0:.1f} s")
        chosen[p] = res
    for s in cell["schemes"]:
        planner, policy = SCHEMES[s].planner, SCHEMES[s].policy
        got = chosen.get(SCHEMES[s].method)
        if not isinstance(got, PlanResult):
            rows.append(
                {
                    "scheme": s,
                    "planner": planner,
                    "policy": policy,
                    "config": None,
                    "qps": 0.0,
                    "bound": 0.0,
                    "cost": 0.0,
                    "evaluations": 0,
                    "planning_s": 0.0,
                    "note": str(got) if got is not None else "not run",
                }
            )
            continue
        res = got
        cfg = res.config
        if planner == OPTIMUM:
            evals, plan_s = 0, 0.0  # given the offline search's configuration for free
        else:
            evals, plan_s = res.evaluations, res.elapsed_s
        qps = float(ev(cfg, policy))  # the same max-QPS search for all (cached: usually a look-up)
        rows.append(
            {
                "scheme": s,
                "planner": planner,
                "policy": policy,
                "config": cfg,
                "qps": qps,
                "bound": config_fluid_bound(profile, cfg, probs, qos).qps,
                "cost": prob.cost(prob.to_counts(cfg)),
                "evaluations": evals,
                "planning_s": plan_s,
                "note": "; ".join(res.notes),
            }
        )
    return {"rows": rows, "infeasible": None, "configurations": count_configurations(prob.prices, budget)}


def _run_order(schemes) -> list[Scheme]:
    """The schemes whose planners a plan cell runs, one per planner: the optimum's first, then
    those of ``schemes`` in order (a scheme on the optimum's configuration runs nothing more)."""
    out: list[Scheme] = []
    for name in ("optimum",) + tuple(schemes):
        sch = SCHEMES[name]
        if sch.planner != OPTIMUM and all(o.method != sch.method for o in out):
            out.append(sch)
    return out


def cell_policies(cell: dict) -> list[str]:
    """The dispatch policies a cell's result depends on: a dispatch or load cell's policy; for a
    plan cell, the policies its planners simulate with and those its schemes are measured with."""
    if cell["kind"] != "plan":
        return [cell["policy"]]
    used = {SCHEMES[s].policy for s in cell["schemes"]}
    for sch in _run_order(cell["schemes"]):
        used.update(METHODS[sch.method].dispatch_policies)
    return sorted(used)


# ---------------------------------------------------------------------------- dispatch cells
def dispatch_cell(cell: dict, cache_dir: str) -> dict:
    """max QPS of one policy on a fixed pool; with ``noise`` > 0 the policy sees perturbed estimates."""
    cat = catalogue(cell.get("profile"))
    exp = Experiment.build(
        cat, cell["model"], cell["config"], cell["qos_ms"], parse_size_mix(MIX), cell["queries"], cell["seed"]
    )
    seen = exp.profile
    if cell["noise"] > 0:
        seen = perturb_profile(exp.profile, cell["noise"], 1000 + cell["draw"])
    t0 = time.perf_counter()
    bound = float(exp.fluid_bound())
    if cell["policy"] != "deeprecsys" and bound > 0:
        # a policy that misses QoS for > 1% of queries even at 0.1% of the bound (e.g. p2c sending large
        # queries to slow instances) has max QPS 0: say so without the search's long walk down
        low = simulate(
            seen,
            exp.config,
            make_policy(cell["policy"]),
            exp.workload,
            exp.qos_ms,
            rate=1e-3 * bound,
            abort_violations=allowed_misses(exp.workload.n),
            seed=exp.seed,
            size_probs=exp.probs,
        )
        if low.aborted:
            return {
                "qps": 0.0,
                "bound": bound,
                "params": {},
                "probes": 1,
                "elapsed_s": time.perf_counter() - t0,
                "note": "fails QoS for > 1% of queries at 0.1% of the fluid bound",
            }
    r = max_qps(seen, exp.config, cell["policy"], exp.workload, exp.qos_ms, exp.probs, seed=exp.seed)
    return {
        "qps": float(r.max_qps),
        "bound": bound,
        "params": r.params,
        "probes": len(r.probes),
        "elapsed_s": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------- load cells
def load_schedule(base_qps: float, unit_s: float) -> RateSchedule:
    return RateSchedule(
        tuple(u * unit_s for u, _ in LOAD_POINTS), tuple(f * base_qps for _, f in LOAD_POINTS), ramp=True
    )


def window_stats(arr_ms: np.ndarray, lat_ms: np.ndarray, qos_ms: float, unit_s: float, units: int):
    """Per window (by arrival time): queries, QoS-met fraction, p99 (ms)."""
    w = np.minimum((arr_ms / (unit_s * 1000.0)).astype(np.int64), units - 1)
    n = np.bincount(w, minlength=units)
    met = np.bincount(w, weights=(lat_ms <= qos_ms).astype(float), minlength=units)
    frac = np.where(n > 0, met / np.maximum(n, 1), 1.0)
    p99 = np.zeros(units)
    order = np.argsort(w, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(n)])
    ls = lat_ms[order]
    for k in range(units):
        seg = ls[bounds[k] : bounds[k + 1]]
        p99[k] = float(np.percentile(seg, 99, method="higher")) if seg.size else 0.0
    return n, frac, p99


def recovery_units(
    frac: np.ndarray, start: int, until: int, n: np.ndarray | None = None, target: float = 0.99
) -> float | None:
    """Windows from ``start`` to the first window k that meets ``target`` and after which the
    windows up to ``until`` meet it together (query-weighted), i.e. QoS is back for good
    (a single unlucky window later does not undo it). None: never."""
    n = np.ones_like(frac) if n is None else np.asarray(n, dtype=float)
    for k in range(start, until):
        tot = n[k:until].sum()
        if frac[k] >= target and tot > 0 and (frac[k:until] * n[k:until]).sum() / tot >= target:
            return float(k - start)
    return None


def load_cell(cell: dict, cache_dir: str) -> dict:
    cat = catalogue(cell.get("profile"))
    mix = parse_size_mix(MIX)
    unit_s = cell["unit_s"]
    sched = load_schedule(cell["base_qps"], unit_s)
    exp = Experiment.build(
        cat,
        cell["model"],
        cell["config"],
        cell["qos_ms"],
        mix,
        1,
        cell["seed"],
        schedule=sched,
        duration_s=LOAD_UNITS * unit_s,
    )
    params = {}
    option = policy_class(cell["policy"]).tuned_size_option
    if option is not None:  # e.g. deeprecsys' threshold, tuned at the steady 0.9x level on Poisson arrivals
        pois = Experiment.build(cat, cell["model"], cell["config"], cell["qos_ms"], mix, 4000, cell["seed"])
        th, _ = tune_size_threshold(
            pois.profile,
            pois.config,
            cell["policy"],
            pois.workload,
            pois.qos_ms,
            0.9 * cell["base_qps"],
            pois.seed,
            allowed_misses(pois.workload.n),
        )
        params = {option: th}
    t0 = time.perf_counter()
    res = exp.run(cell["policy"], None, params)
    arr = exp.workload.arrivals_ms(None)
    units = int(LOAD_UNITS)
    n, frac, p99 = window_stats(arr, res.latency_ms, exp.qos_ms, unit_s, units)
    rec = recovery_units(frac, int(BURST[1]), int(RECOVER_BY), n)
    steady = np.r_[0 : int(BURST[0])]
    return {
        "unit_s": unit_s,
        "queries": int(res.n),
        "met": frac.round(5).tolist(),
        "p99_ms": p99.round(4).tolist(),
        "arrivals": n.tolist(),
        "qos_met_fraction": res.qos_met_fraction,
        "p99_overall_ms": res.percentile(99),
        "met_before_burst": float((frac[steady] * n[steady]).sum() / max(n[steady].sum(), 1)),
        "recovery_units": rec,
        "recovery_s": None if rec is None else round(rec * unit_s, 4),
        "params": params,
        "elapsed_s": time.perf_counter() - t0,
    }


KINDS: dict[str, Callable[[dict, str], dict]] = {"plan": plan_cell, "dispatch": dispatch_cell, "load": load_cell}


def run_cell(cell: dict, cache_dir: str) -> dict:
    t0 = time.perf_counter()
    out = KINDS[cell["kind"]](cell, cache_dir)
    out["wall_s"] = round(time.perf_counter() - t0, 3)
    return out


# ---------------------------------------------------------------------------- the cells of a run
def _plan(s: Settings, m: str, b: float, f: float) -> dict:
    main = b == PAPER_BUDGET and f == 1.0
    schemes = tuple(SCHEMES) if main else SENSITIVITY
    return {
        "kind": "plan",
        "model": m,
        "budget": float(b),
        "qos_factor": float(f),
        "qos_ms": PAPER_QOS_MS[m] * f,
        "queries": s.queries,
        "seed": s.seed,
        "schemes": list(schemes),
        "search_evals": s.search_evals,
        "profile": s.profile,
    }


def _dispatch(s: Settings, m: str, policy: str, noise: float = 0.0, draw: int = 0) -> dict:
    return {
        "kind": "dispatch",
        "model": m,
        "config": PAPER_CONFIGS[m],
        "qos_ms": PAPER_QOS_MS[m],
        "queries": s.queries,
        "seed": s.seed,
        "profile": s.profile,
        "policy": policy,
        "noise": float(noise),
        "draw": int(draw),
    }


def main_cells(s: Settings) -> list[dict]:
    """Table 1 (every scheme at the paper's budget and QoS) and the dispatch ablation."""
    return [_plan(s, m, PAPER_BUDGET, 1.0) for m in s.models] + [
        _dispatch(s, m, p) for m in s.models for p in DISPATCHERS
    ]


def sensitivity_cells(s: Settings) -> list[dict]:
    """Budget, QoS and noise sweeps, cheap ones first (a run stopped early still has those)."""
    budgets = sorted((b for b in s.budgets if b != PAPER_BUDGET), key=lambda b: abs(np.log(b / PAPER_BUDGET)))
    factors = sorted((f for f in s.qos_factors if f != 1.0), key=lambda f: (f < 1, abs(np.log(f))))  # looser first
    cells = []
    for d in range(s.noise_draws):
        if d == 0:
            cells += [_plan(s, m, b, 1.0) for b in budgets[:1] for m in s.models]
            cells += [_plan(s, m, PAPER_BUDGET, f) for f in factors[:1] for m in s.models]
        cells += [_dispatch(s, m, p, x, d) for x in s.noise_levels for m in s.models for p in s.noise_policies]
        if d == 0:
            cells += [_plan(s, m, b, 1.0) for b in budgets[1:2] for m in s.models]
            cells += [_plan(s, m, PAPER_BUDGET, f) for f in factors[1:3] for m in s.models]
    cells += [_plan(s, m, b, 1.0) for b in budgets[2:] for m in s.models]
    cells += [_plan(s, m, PAPER_BUDGET, f) for f in factors[3:] for m in s.models]
    return cells


def load_cells(s: Settings, plan_results: list[tuple[dict, dict]]) -> list[dict]:
    """Needs the main plan cell of each model: the planned pool (ours) and its max QPS."""
    cells = []
    for m in s.load_models:
        main = main_plan(plan_results, m)
        if main is None:
            continue
        row = next((r for r in main["rows"] if r["scheme"] == "ours"), None)
        if row is None or not row["config"] or row["qps"] <= 0:
            continue
        base_qps = round(float(row["qps"]), 3)
        unit_s = round(s.load_per_window / base_qps, 6)  # a window holds load_per_window queries at 1x
        for p in LOAD_POLICIES:
            cells.append(
                {
                    "kind": "load",
                    "model": m,
                    "config": row["config"],
                    "qos_ms": PAPER_QOS_MS[m],
                    "seed": s.seed,
                    "policy": p,
                    "base_qps": base_qps,
                    "unit_s": unit_s,
                    "profile": s.profile,
                    "recovery": "settled",
                }
            )
    return cells


def main_plan(plan_results: list[tuple[dict, dict]], model: str) -> dict | None:
    for cell, res in plan_results:
        if cell["model"] == model and cell["budget"] == PAPER_BUDGET and cell["qos_factor"] == 1.0:
            return res
    return None


def run_cells(
    cells: list[dict],
    cache: CellCache,
    cache_dir: str,
    jobs: int = 1,
    on_done: Callable[[dict, dict | None], None] | None = None,
) -> list[tuple[dict, dict]]:
    """Results of ``cells`` (cached ones read back, the rest run in ``jobs`` processes)."""
    todo = [c for c in cells if c not in cache]
    for c in cells:
        if c in cache and on_done:
            on_done(c, cache.get(c))
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as ex:
            futs = {ex.submit(run_cell, c, cache_dir): c for c in todo}
            for f in as_completed(futs):
                c = futs[f]
                cache.put(c, f.result())
                if on_done:
                    on_done(c, cache.get(c))
    else:
        for c in todo:
            cache.put(c, run_cell(c, cache_dir))
            if on_done:
                on_done(c, cache.get(c))
    return [(c, cache.get(c)) for c in cells]


def run_all(s: Settings, out_dir, jobs: int = 1, progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Every experiment of ``s``: {"plan", "dispatch", "load"} -> list of (cell, result).

    Three stages: the paper's setting (table 1, dispatch ablation); the load change on the
    planned pools; the sensitivity sweeps.
    """
    out_dir = Path(out_dir)
    cache_dir = out_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = CellCache(cache_dir / "cells.jsonl", cell_policies)
    done_cells: list = []

    def stage(name, cells):
        n = [0]
        if progress:
            progress(name, 0, len(cells))

        def done(c, r):
            n[0] += 1
            if progress:
                progress(name, n[0], len(cells))

        done_cells.extend(run_cells(cells, cache, str(cache_dir), jobs, done))

    stage("paper setting", main_cells(s))
    plans = [(c, r) for c, r in done_cells if c["kind"] == "plan"]
    stage("load change", load_cells(s, plans))
    stage("sensitivity", sensitivity_cells(s))
    return collect(done_cells)


def collect(pairs) -> dict:
    out: dict[str, list] = {"plan": [], "dispatch": [], "load": []}
    for c, r in pairs:
        if r is not None:
            out[c["kind"]].append((c, r))
    return out


def cached_results(s: Settings, out_dir) -> dict:
    """What a run of ``s`` has finished so far (read from the cache, nothing simulated)."""
    cache = CellCache(Path(out_dir) / "cache" / "cells.jsonl", cell_policies)
    cells = main_cells(s)
    plans = [(c, cache.get(c)) for c in cells if c["kind"] == "plan" and c in cache]
    cells += load_cells(s, plans) + sensitivity_cells(s)
    return collect([(c, cache.get(c)) for c in cells])
