"""The planners behind ``kairos plan --method``: one function per method, one :class:`PlanMethod`
record per method in :data:`METHODS`.

Every method takes a :class:`~kairos.plan.space.PlanProblem` and (if it simulates) an
:class:`~kairos.plan.evaluate.Evaluator`, and returns a :class:`PlanResult`. Its record
says what the CLI and ``kairos reproduce`` derive from it: whether it simulates, with which
dispatch policy, and which of ``--evals`` / ``--max-evals`` it reads. A new method is its
function plus one ``PlanMethod(...)`` line in :data:`METHODS`.

* ``milp`` (default) -- the queueing-corrected fluid MILP (:mod:`kairos.plan.milp`),
  one-shot for any number of types, with at most ``evals`` simulations to break ties.
* ``kairos`` -- the paper: rank every configuration within budget by the paper's bound
  (:func:`~kairos.plan.bounds.paper_bound`), take the top 10, choose their centre.
* ``kairos+`` -- the paper's Algorithm 1: evaluate in descending bound order, prune by
  bound and by sub-configuration.
* ``exhaustive`` -- the optimum: simulate every configuration whose fluid bound (a true
  upper bound) is above the best measured QPS, in descending bound order.
* ``homogeneous`` -- the best single-type pool (largest count of each type within
  budget), exact by the same bound pruning.
* ``ribbon`` / ``ribbon-kairos`` -- RIBBON's Bayesian optimisation (:mod:`kairos.plan.bo`),
  evaluated with FCFS dispatch (as RIBBON) or with kairos dispatch.
* ``random`` -- random search with the same number of evaluations as ribbon.

What each reported number is: ``predicted_qps`` is the method's own figure for its choice,
of the kind ``predicted_kind`` names -- ``estimate`` (milp's queueing-corrected fluid bound,
a model, not a bound: it can be below the measured QPS), ``paper_bound`` (the paper's
bound), ``fluid_bound`` (the fluid LP, an upper bound) or ``measured_qps`` (simulated with
the dispatch policy ``policy``). Each candidate carries its figure under that same key and,
if simulated, ``measured_qps`` with the ``policy`` that produced it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kairos.errors import KairosInputError
from kairos.plan.bounds import FluidLP, paper_bound
from kairos.plan.evaluate import Evaluator
from kairos.plan.milp import FluidMILP
from kairos.plan.space import (
    PlanProblem,
    count_configurations,
    dominated_types,
    enumerate_configurations,
    restrict_problem,
)

ENUM_LIMIT = 3_000_000  # configurations the enumerating methods accept


@dataclass
class PlanResult:
    method: str
    config: dict[str, int]
    cost_per_hour: float
    predicted_qps: float  # the method's own figure for its choice, of the kind predicted_kind names
    evaluations: int = 0  # simulated evaluations the method used (distinct configurations)
    elapsed_s: float = 0.0
    measured_qps: float | None = None  # simulated max QPS of the choice, if the method measured it
    policy: str = "kairos"  # dispatch policy of the method's evaluations
    candidates: list[dict] = field(default_factory=list)  # best candidates: config, cost, estimate, measured
    notes: list[str] = field(default_factory=list)
    # what predicted_qps is: "estimate" (queueing-corrected, not a bound), "paper_bound",
    # "fluid_bound" or "measured_qps" (simulated with ``policy``); the candidates' key for it
    predicted_kind: str = "measured_qps"

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "config": self.config,
            "cost_per_hour": round(self.cost_per_hour, 4),
            "predicted_qps": round(self.predicted_qps, 3),
            "evaluations": self.evaluations,
            "elapsed_s": round(self.elapsed_s, 4),
            "measured_qps": None if self.measured_qps is None else round(self.measured_qps, 3),
            "policy": self.policy,
            "predicted_kind": self.predicted_kind,
            "candidates": self.candidates,
            "notes": self.notes,
        }


class Counted:
    """Wraps an evaluator: counts the distinct configurations a method asked for."""

    def __init__(self, evaluator: Evaluator | None, policy: str = "kairos"):
        if evaluator is None:
            raise KairosInputError("this --method simulates configurations; it needs an evaluator")
        self.ev, self.policy = evaluator, policy
        self.asked: dict[tuple, float] = {}

    def many(self, configs: list[dict[str, int]]) -> list[float]:
        vals = self.ev.many(configs, self.policy)
        for c, v in zip(configs, vals):
            self.asked[tuple(sorted(c.items()))] = v
        return vals

    def __call__(self, config: dict[str, int]) -> float:
        return self.many([config])[0]

    @property
    def count(self) -> int:
        return len(self.asked)


ESTIMATE_KINDS = ("estimate", "paper_bound", "fluid_bound")  # the candidates' keys for a method's figure


def _cand(problem: PlanProblem, counts, kind: str, value: float, measured=None, policy: str = "kairos") -> dict:
    """A candidate: config, cost, its ``kind`` figure (one of ESTIMATE_KINDS), and if simulated
    its measured QPS with the dispatch policy that produced it."""
    assert kind in ESTIMATE_KINDS, kind
    d = {
        "config": problem.to_config(counts),
        "cost_per_hour": round(problem.cost(counts), 4),
        kind: round(float(value), 3),
    }
    if measured is not None:
        d["measured_qps"] = round(float(measured), 3)
        d["policy"] = policy
    return d


def _measured(problem: PlanProblem, asked: dict, policy: str) -> list[dict]:
    """The best (up to 8) simulated configurations, each with the dispatch policy that measured it."""
    return [
        {
            "config": dict(k),
            "cost_per_hour": round(problem.cost(problem.to_counts(dict(k))), 4),
            "measured_qps": round(q, 3),
            "policy": policy,
        }
        for k, q in sorted(asked.items(), key=lambda kv: -kv[1])[:8]
    ]


def _enumerate(problem: PlanProblem) -> np.ndarray:
    n = count_configurations(problem.prices, problem.budget)
    if n > ENUM_LIMIT:
        raise KairosInputError(
            f"{n:,} configurations within ${problem.budget:g}/h: too many to enumerate (limit "
            f"{ENUM_LIMIT:,}); use --method milp or fewer --types"
        )
    return enumerate_configurations(problem.prices, problem.budget)


# ---------------------------------------------------------------------- milp (default)
def plan_milp(
    problem: PlanProblem,
    evaluator: Evaluator | None = None,
    evals: int = 4,
    tie_tol: float = 0.15,
    policy: str = "kairos",
    **_,
) -> PlanResult:
    """Corrected fluid MILP; simulate up to ``evals`` candidates (0: one-shot): the best by
    corrected bound within ``tie_tol`` of the top, and the uncorrected fluid optimum."""
    _require_evals("milp", evals)
    t0 = time.perf_counter()
    keep = ~dominated_types(problem)
    m = FluidMILP(restrict_problem(problem, keep))
    sub = m.candidates() if evals > 1 else [(m.value(n)[0], n) for n in m.fixed_point()[-1:]]
    cands = []
    for q, n_sub in sub:  # back to the full type list
        n = np.zeros(problem.T, dtype=np.int64)
        n[keep] = n_sub
        cands.append((q, n))
    if not cands:
        raise KairosInputError(
            "no configuration within budget can serve 99% of the queries within QoS; raise --budget or --qos-ms"
        )
    top = cands[0][0]
    close = [(q, n) for q, n in cands if q >= (1.0 - tie_tol) * top][: max(evals, 1)]
    if evals > 1 and m.fluid_optimum is not None:
        # the correction is a model: always try the uncorrected fluid optimum too (the
        # optimistic end), in the last evaluation slot if it is not already a candidate
        fo = np.zeros(problem.T, dtype=np.int64)
        fo[keep] = m.fluid_optimum
        if not any((n == fo).all() for _, n in close):
            q_fo = next((q for q, n in cands if (n == fo).all()), None)
            if q_fo is None:  # not a candidate: its own corrected figure, not 0
                q_fo = m.value(m.fluid_optimum)[0]
            close = close[: evals - 1] + [(q_fo, fo)]
    measured = {}
    if evaluator is not None and evals > 0 and len(close) > 1:
        ev = Counted(evaluator, policy)
        vals = ev.many([problem.to_config(n) for _, n in close])
        measured = {tuple(n): v for (_, n), v in zip(close, vals)}
        q, n = max(close, key=lambda qn: measured[tuple(qn[1])])
        count = ev.count
    else:
        q, n = close[0]
        count = 0
    res = PlanResult(
        "milp",
        problem.to_config(n),
        problem.cost(n),
        q,
        count,
        time.perf_counter() - t0,
        measured.get(tuple(n)),
        policy,
        predicted_kind="estimate",
    )
    if (~keep).any():
        res.notes.append(f"{int((~keep).sum())} of {problem.T} types dominated (no cheaper, no faster) and dropped")
    res.candidates = [_cand(problem, c, "estimate", b, measured.get(tuple(c)), policy) for b, c in cands[:8]]
    return res


# ---------------------------------------------------------------------- kairos (paper)
def plan_kairos(problem: PlanProblem, evaluator: Evaluator | None = None, top: int = 10, **_) -> PlanResult:
    """The paper's one-shot choice: centre of the top-``top`` configurations by its bound."""
    t0 = time.perf_counter()
    X = _enumerate(problem)
    ub = paper_bound(problem, X)
    order = np.argsort(-ub, kind="stable")[:top]
    T = X[order].astype(float)
    centre = T.mean(axis=0)
    pick = order[int(np.argmin(((T - centre) ** 2).sum(axis=1)))]
    res = PlanResult(
        "kairos",
        problem.to_config(X[pick]),
        problem.cost(X[pick]),
        float(ub[pick]),
        0,
        time.perf_counter() - t0,
        predicted_kind="paper_bound",
    )
    res.candidates = [_cand(problem, X[i], "paper_bound", ub[i]) for i in order]
    return res


def plan_kairos_plus(
    problem: PlanProblem, evaluator: Evaluator | None = None, max_evals: int | None = None, policy: str = "kairos", **_
) -> PlanResult:
    """Algorithm 1: descending paper bound, evaluate, prune by bound and sub-configuration."""
    if max_evals is not None and max_evals < 1:
        raise KairosInputError(f"--max-evals must be >= 1, got {max_evals}")
    t0 = time.perf_counter()
    ev = Counted(evaluator, policy)
    X = _enumerate(problem)
    ub = paper_bound(problem, X)
    alive = ub > 0
    best, best_i = -1.0, None
    notes = []
    while alive.any():
        if max_evals is not None and ev.count >= max_evals:
            notes.append(f"stopped at the evaluation cap ({max_evals}) with {int(alive.sum())} configurations left")
            break
        i = int(np.flatnonzero(alive)[np.argmax(ub[alive])])
        q = ev(problem.to_config(X[i]))
        if q > best:
            best, best_i = q, i
        alive &= ub > best
        alive &= ~np.all(X <= X[i], axis=1)  # sub-configurations of the evaluated one (itself included)
    if best_i is None:
        raise KairosInputError("no configuration within budget has a positive bound; raise --budget or --qos-ms")
    res = PlanResult(
        "kairos+",
        problem.to_config(X[best_i]),
        problem.cost(X[best_i]),
        best,
        ev.count,
        time.perf_counter() - t0,
        best,
        policy,
        notes=notes,
    )
    res.candidates = [
        _cand(problem, np.array(problem.to_counts(dict(k))), "paper_bound", ub[_row(X, problem, k)], v, policy)
        for k, v in sorted(ev.asked.items(), key=lambda kv: -kv[1])[:8]
    ]
    return res


def _row(X, problem, key) -> int:
    c = np.array(problem.to_counts(dict(key)))
    return int(np.flatnonzero(np.all(X == c, axis=1))[0])


# ---------------------------------------------------------------------- exhaustive
def plan_exhaustive(
    problem: PlanProblem, evaluator: Evaluator | None = None, progress: bool = False, policy: str = "kairos", **_
) -> PlanResult:
    """The optimum: every configuration whose fluid bound exceeds the best measured QPS.

    Fluid bounds are computed lazily: each LP's capacity duals ``u`` give the linear upper
    bound ``u . n`` for every configuration, so most LPs are never solved.
    """
    t0 = time.perf_counter()
    ev = Counted(evaluator, policy)
    X = _enumerate(problem)
    lp = FluidLP(problem)
    Xf = X.astype(float)
    upper = np.full(len(X), np.inf)
    exact = np.full(len(X), np.nan)
    batch = max(1, getattr(evaluator, "workers", 1))
    best, best_i = -1.0, None
    evaluated = np.zeros(len(X), dtype=bool)
    lps = 0
    bar = _progress(progress, len(X))
    try:
        while True:
            key = np.where(np.isnan(exact), upper, exact)
            key[evaluated] = -np.inf
            picks: list[int] = []
            while len(picks) < batch:
                k2 = key.copy()
                k2[picks] = -np.inf
                i = int(np.argmax(k2))
                if not k2[i] > best:
                    break
                if np.isnan(exact[i]):
                    q, u = lp.solve(Xf[i])
                    lps += 1
                    exact[i] = q
                    upper = np.minimum(upper, Xf @ u + 1e-9 * (1 + np.abs(Xf @ u)))
                    key = np.where(np.isnan(exact), upper, exact)
                    key[evaluated] = -np.inf
                    continue
                picks.append(i)
            if not picks:
                break
            vals = ev.many([problem.to_config(X[i]) for i in picks])
            for i, v in zip(picks, vals):
                evaluated[i] = True
                if v > best:
                    best, best_i = v, i
            if bar:
                bar.update(int((~(key > best)).sum()), ev.count, best)
    finally:
        if bar:
            bar.close()
    if best_i is None:
        raise KairosInputError("no configuration within budget can serve 99% of the queries within QoS")
    res = PlanResult(
        "exhaustive",
        problem.to_config(X[best_i]),
        problem.cost(X[best_i]),
        best,
        ev.count,
        time.perf_counter() - t0,
        best,
        policy,
    )
    res.notes.append(
        f"{len(X):,} configurations within budget; {lps} fluid LPs solved; "
        f"{ev.count} simulated (the rest have a fluid bound at or below {best:.1f} q/s)"
    )
    ranked = sorted(ev.asked.items(), key=lambda kv: -kv[1])[:8]
    res.candidates = [
        _cand(problem, np.array(problem.to_counts(dict(k))), "fluid_bound", exact[_row(X, problem, k)], v, policy)
        for k, v in ranked
    ]
    return res


class _progress:
    """A one-line progress bar on stderr (rich), or nothing."""

    def __new__(cls, on: bool, total: int):
        if not on:
            return None
        return super().__new__(cls)

    def __init__(self, on: bool, total: int):
        from rich.console import Console
        from rich.progress import Progress

        self.p = Progress(transient=True, console=Console(stderr=True))
        self.p.start()
        self.task = self.p.add_task("exhaustive: pruned 0", total=total)

    def update(self, done: int, evals: int, best: float):
        self.p.update(
            self.task, completed=done, description=f"exhaustive: {evals} simulated, best {best:.1f} q/s, pruned"
        )

    def close(self):
        self.p.stop()


# ---------------------------------------------------------------------- homogeneous
def homogeneous_candidates(problem: PlanProblem) -> list[tuple[float, np.ndarray]]:
    """(fluid bound, counts) of the largest pool of each single type, best bound first."""
    lp = FluidLP(problem)
    out = []
    for t, k in enumerate(problem.max_counts()):
        if k < 1:
            continue
        n = np.zeros(problem.T, dtype=np.int64)
        n[t] = k
        out.append((lp.solve(n.astype(float))[0], n))
    out.sort(key=lambda qn: -qn[0])
    return out


def plan_homogeneous(
    problem: PlanProblem, evaluator: Evaluator | None = None, policy: str = "kairos", **_
) -> PlanResult:
    """Best single-type pool: evaluate in descending fluid bound until the bound cannot win."""
    t0 = time.perf_counter()
    cands = [c for c in homogeneous_candidates(problem) if c[0] > 0]
    if not cands:
        raise KairosInputError("no single instance type within budget can serve 99% of the queries within QoS")
    if evaluator is None:
        q, n = cands[0]
        res = PlanResult(
            "homogeneous",
            problem.to_config(n),
            problem.cost(n),
            q,
            0,
            time.perf_counter() - t0,
            predicted_kind="fluid_bound",
        )
        res.candidates = [_cand(problem, c, "fluid_bound", b) for b, c in cands]
        return res
    ev = Counted(evaluator, policy)
    best, best_n, meas = -1.0, None, {}
    for q, n in cands:
        if q <= best:
            break
        v = ev(problem.to_config(n))
        meas[tuple(n)] = v
        if v > best:
            best, best_n = v, n
    res = PlanResult(
        "homogeneous",
        problem.to_config(best_n),
        problem.cost(best_n),
        best,
        ev.count,
        time.perf_counter() - t0,
        best,
        policy,
    )
    res.candidates = [_cand(problem, c, "fluid_bound", b, meas.get(tuple(c)), policy) for b, c in cands]
    return res


# ---------------------------------------------------------------------- ribbon / random
def plan_ribbon(
    problem: PlanProblem, evaluator: Evaluator | None = None, evals: int = 15, seed: int = 0, policy: str = "fcfs", **_
) -> PlanResult:
    from kairos.plan.bo import bayes_opt

    name = "ribbon" if policy == "fcfs" else f"ribbon-{policy}"
    _require_evals(name, evals)
    t0 = time.perf_counter()
    ev = Counted(evaluator, policy)
    n, v = bayes_opt(problem, ev, evals, seed)
    res = PlanResult(name, problem.to_config(n), problem.cost(n), v, ev.count, time.perf_counter() - t0, v, policy)
    res.candidates = _measured(problem, ev.asked, policy)
    return res


def _require_evals(method: str, evals: int) -> None:
    """--evals below what ``method`` can use (milp: 0 = one-shot; the searches: 1): one clear line."""
    low = MIN_EVALS.get(method, 1)
    if evals < low:
        raise KairosInputError(f"--evals must be >= {low} for --method {method}, got {evals}")


def plan_random(
    problem: PlanProblem,
    evaluator: Evaluator | None = None,
    evals: int = 15,
    seed: int = 0,
    policy: str = "kairos",
    **_,
) -> PlanResult:
    from kairos.plan.bo import candidate_pool

    _require_evals("random", evals)
    t0 = time.perf_counter()
    ev = Counted(evaluator, policy)
    rng = np.random.default_rng(seed + 7919)
    pool = candidate_pool(problem, rng)
    idx = rng.choice(len(pool), size=min(evals, len(pool)), replace=False)
    vals = ev.many([problem.to_config(pool[i]) for i in idx])
    j = int(np.argmax(vals))
    n = pool[idx[j]]
    res = PlanResult(
        "random", problem.to_config(n), problem.cost(n), vals[j], ev.count, time.perf_counter() - t0, vals[j], ev.policy
    )
    res.candidates = _measured(problem, ev.asked, ev.policy)
    return res


Method = Callable[..., PlanResult]


@dataclass(frozen=True)
class PlanMethod:
    """One planner: its function and what the CLI and ``kairos reproduce`` need to know about it.

    ``run(problem, evaluator, policy=..., **options)`` returns a :class:`PlanResult`.
    """

    name: str
    run: Method
    summary: str = ""  # a few words after the name in ``--method``'s help
    simulates: str = "always"  # "always" (needs an evaluator), "optional" (simulates when given one), "never"
    policy: str = "kairos"  # the dispatch policy of its simulations (passed to ``run``)
    min_evals: int | None = None  # it reads --evals, which must be at least this; None: --evals does not apply
    uses_max_evals: bool = False  # it reads --max-evals

    def __post_init__(self):
        if self.simulates not in ("always", "optional", "never"):
            raise ValueError(
                f"method {self.name!r}: simulates must be always, optional or never, got {self.simulates!r}"
            )

    @property
    def dispatch_policies(self) -> tuple[str, ...]:
        """The dispatch policies its simulations use (none if it never simulates)."""
        return () if self.simulates == "never" else (self.policy,)


METHODS: dict[str, PlanMethod] = {
    m.name: m
    for m in (
        PlanMethod("milp", plan_milp, "queueing-corrected MILP", simulates="optional", min_evals=0),  # 0 = one-shot
        PlanMethod("kairos", plan_kairos, simulates="never"),
        PlanMethod("kairos+", plan_kairos_plus, uses_max_evals=True),
        PlanMethod("exhaustive", plan_exhaustive),
        PlanMethod("homogeneous", plan_homogeneous, simulates="optional"),
        PlanMethod("ribbon", plan_ribbon, policy="fcfs", min_evals=1),
        PlanMethod("ribbon-kairos", plan_ribbon, policy="kairos", min_evals=1),
        PlanMethod("random", plan_random, min_evals=1),
    )
}
DEFAULT_METHOD = "milp"
# derived from METHODS: the methods that need an evaluator, and those that read each option
# (the CLI refuses the option, when given, for any other)
SIMULATING = {n for n, m in METHODS.items() if m.simulates == "always"}
MIN_EVALS = {n: m.min_evals for n, m in METHODS.items() if m.min_evals is not None}
USES_EVALS = tuple(sorted(MIN_EVALS))
USES_MAX_EVALS = tuple(sorted(n for n, m in METHODS.items() if m.uses_max_evals))


def plan_method(name: str) -> PlanMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise KairosInputError(f"unknown --method {name!r}; choose one of {', '.join(METHODS)}") from None


def run_method(name: str, problem: PlanProblem, evaluator: Evaluator | None = None, **opts) -> PlanResult:
    m = plan_method(name)
    return m.run(problem, evaluator, policy=m.policy, **opts)
