"""The dual of the default planner: the cheapest configuration whose QoS-throughput is at least a rate.

``kairos plan --target-qps R`` (and an elastic controller, online) asks for the configuration
of least $/hour whose QoS-throughput -- the simulated max QPS at which 99% of queries meet
QoS, :func:`kairos.sim.search.max_qps` through an :class:`~kairos.plan.evaluate.Evaluator`
-- is at least ``R``. :func:`plan_for_rate` answers with the same model as the budget
planner (:mod:`kairos.plan.milp`) turned around:

1. **Model.** The *frontier* ``F(tau)`` is the cheapest configuration whose
   queueing-corrected estimate is at least ``tau``: the MILP "minimise cost subject to a
   routed rate >= tau" (:meth:`~kairos.plan.milp.FluidMILP.cheapest`), solved as a fixed
   point in the utilisations like the budget planner (from both ends), each iterate
   repaired and pruned at its own counts (:meth:`RateContext.frontier`). ``F(R)`` is the
   one-shot answer (no simulation).
2. **Verification.** The estimate is a model, not a bound, and can be off either way, so
   ``F(R)`` is simulated. If it misses ``R`` the target is raised by the
   shortfall (``tau <- tau * R / measured``); if it passes with room, lowered by the
   surplus. Once one frontier configuration passes and a cheaper one fails, the frontier
   between them is bisected (by estimate) until they are neighbours.
3. **Tie-breaks.** The frontier orders configurations by the model; a cheaper one off the
   frontier may still pass. As the budget planner does, the candidates of the budget MILP
   just below the cost of the cheapest passing configuration (those within ``tie_tol`` of
   its best estimate, and the uncorrected fluid optimum) whose fluid bound reaches ``R``
   are simulated, best estimate first, at most ``evals`` in all; one that passes becomes
   the answer and the step repeats below it.

Everything that depends only on (profile, types, prices, QoS, size mix) -- dominated
types, the cost of one q/s by the fluid bound, the utilisations and bounds of every
configuration met, the frontier -- is cached across calls (:func:`rate_context`), and
the evaluator caches simulations per configuration (rate-independent), so repeated calls
at other rates reuse them. ``problem.budget`` caps the cost; :data:`NO_CAP` plans without
a cap.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np

from kairos.errors import KairosInputError, require_positive
from kairos.plan.bounds import FluidLP
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import PlanResult, plan_exhaustive
from kairos.plan.milp import FluidMILP
from kairos.plan.space import PlanProblem, dominated_types, restrict_problem

NO_CAP = 1e12  # $/hour: a budget no pool reaches -- plan for the rate without a cost cap
MAX_INSTANCES = 2000  # a rate whose fluid bound alone needs more instances than this is refused
SPANS = (4.0, 16.0)  # counts are searched up to SPAN x the fluid bound's least cost (then the next span)
MAX_STEPS = 12  # simulations after F(R) to find a passing configuration and its failing neighbour
_EPS_COST = 1e-6  # $/hour: "strictly cheaper than"
_CONTEXTS_KEPT = 16


# ---------------------------------------------------------------------- per-problem cache
@dataclass
class RateContext:
    """What target planning reuses across rates and caps for one (profile, types, prices, QoS, mix)."""

    keep: np.ndarray  # [T] types that no other allowed type dominates
    milp: FluidMILP  # corrected MILP over the kept types (its own caches of rho and bounds)
    unit_cost: float  # $/hour per q/s: least cost of one q/s by the fluid bound (LP relaxation)
    unit_instances: float  # instances per q/s: least number for one q/s by the same
    cheapest_price: float
    dearest_price: float
    _fluid_lp: FluidLP | None = field(repr=False, default=None)
    _fluid: dict = field(repr=False, default_factory=dict)
    _frontier: dict = field(repr=False, default_factory=dict)
    _below: dict = field(repr=False, default_factory=dict)

    def fluid(self, sub_counts) -> float:
        """Uncorrected fluid bound of counts over the kept types."""
        key = tuple(int(k) for k in sub_counts)
        if key not in self._fluid:
            assert self._fluid_lp is not None  # set by rate_context
            self._fluid[key] = self._fluid_lp.solve(np.asarray(sub_counts, dtype=float))[0]
        return self._fluid[key]

    def estimate(self, sub_counts) -> float:
        """Queueing-corrected estimate (utilisations at the counts' own values)."""
        return self.milp.value(sub_counts)[0]

    def fluid_cost(self, rate: float) -> float:
        """Least $/hour of any configuration whose fluid bound reaches ``rate`` (a lower bound)."""
        return self.unit_cost * rate

    def frontier(self, tau: float, cap: float, near=None) -> np.ndarray | None:
        """Cheapest counts (kept types) whose corrected estimate is at least ``tau``, within
        ``cap`` $/hour; None if the model finds none there.

        The utilisations depend on the counts, most at small counts (one instance of a type
        can be worth a fifth of two), which a fixed point in them can step over. So the
        fixed point runs from both ends -- or, given counts ``near`` the answer (a frontier
        configuration at a nearby target), from those -- and each iterate is then repaired
        (the instance of best estimate gain per dollar added until it reaches ``tau``) and
        pruned (instances removed while it still does), each scored at its own counts; the
        cheapest is taken.
        """
        key = (float(tau), float(cap), None if near is None else tuple(int(k) for k in near))
        if key in self._frontier:
            return self._frontier[key]
        best = None
        prices = self.milp.problem.prices
        for span in SPANS:
            limit = min(cap, span * self.fluid_cost(tau) + self.dearest_price)
            m = self.milp.with_budget(limit)
            if near is not None:
                its = m.cheapest_fixed_point(tau, start=near)
            else:  # from the fluid-cheapest counts (utilisations too low: more than enough) and
                # from the most each type could have (too high: too few)
                its = m.cheapest_fixed_point(tau) + m.cheapest_fixed_point(tau, start=np.floor(limit / prices))
            found = {}
            for n in its:
                if tuple(n) not in found:
                    found[tuple(n)] = self._repair(n, tau, limit)
            ok = [(float(n @ prices), -self.estimate(n), tuple(n)) for n in found.values() if n is not None]
            if ok:
                best = np.array(min(ok)[2], dtype=np.int64)
                break
            if limit >= cap:
                break
        _remember(self._frontier, key, best)
        return best

    def _repair(self, n, tau: float, limit: float) -> np.ndarray | None:
        """``n`` grown (best estimate gain per dollar first) until its estimate reaches ``tau``
        within ``limit`` $/hour, then pruned (dearest first) while it still does; None if it
        cannot reach ``tau``."""
        prices = self.milp.problem.prices
        n = np.array(n, dtype=np.int64)
        q = self.estimate(n)
        while q < tau:
            best_gain, best_t = 0.0, None
            for t in range(len(n)):
                if float(n @ prices) + prices[t] > limit + 1e-9:
                    continue
                n[t] += 1
                gain = (self.estimate(n) - q) / prices[t]
                n[t] -= 1
                if gain > best_gain:
                    best_gain, best_t = gain, t
            if best_t is None:
                return None
            n[best_t] += 1
            q = self.estimate(n)
        for t in np.argsort(-prices, kind="stable"):
            while n[t] > 0:
                n[t] -= 1
                if n.sum() == 0 or self.estimate(n) < tau:
                    n[t] += 1
                    break
        return n

    def below(self, budget: float) -> tuple[list[tuple[float, np.ndarray]], np.ndarray | None]:
        """The budget planner's candidates at ``budget`` -- (corrected estimate, kept-type counts),
        best first (:meth:`~kairos.plan.milp.FluidMILP.candidates`) -- and its uncorrected fluid
        optimum."""
        key = float(budget)
        if key not in self._below:
            m = self.milp.with_budget(budget)
            _remember(self._below, key, (m.candidates(), m.fluid_optimum))
        return self._below[key]


_MEMO_KEPT = 4096  # entries per memo of a context (an online caller asks for ever new rates)


def _remember(memo: dict, key, value) -> None:
    if len(memo) >= _MEMO_KEPT:
        memo.clear()
    memo[key] = value


_CONTEXTS: OrderedDict = OrderedDict()


def _context_key(problem: PlanProblem) -> tuple:
    return (
        problem.model,
        problem.types,
        problem.prices.tobytes(),
        problem.qos_ms,
        problem.probs.tobytes(),
        problem.profile.mean_ms.tobytes(),
    )


def rate_context(problem: PlanProblem) -> RateContext:
    """The cached :class:`RateContext` of ``problem`` (built on first use; the budget plays no part)."""
    key = _context_key(problem)
    ctx = _CONTEXTS.get(key)
    if ctx is not None:
        _CONTEXTS.move_to_end(key)
        return ctx
    keep = ~dominated_types(problem)
    sub = restrict_problem(problem, keep)
    sub = replace(sub, budget=NO_CAP)
    milp = FluidMILP(sub)
    ones = np.ones(sub.T, dtype=np.int64)
    frac = FluidMILP(sub, corrected=False).cheapest(1.0, ones, relax=True)
    count = FluidMILP(replace(sub, prices=np.ones(sub.T)), corrected=False).cheapest(1.0, ones, relax=True)
    if frac is None or count is None:  # PlanProblem.build checked that 99% of the queries can be served
        raise KairosInputError("no configuration of the allowed types can serve 99% of the queries within QoS")
    ctx = RateContext(
        keep,
        milp,
        float(frac @ sub.prices),
        float(count.sum()),
        float(sub.prices.min()),
        float(sub.prices.max()),
        FluidLP(sub),
    )
    _CONTEXTS[key] = ctx
    while len(_CONTEXTS) > _CONTEXTS_KEPT:
        _CONTEXTS.popitem(last=False)
    return ctx


# ---------------------------------------------------------------------- input checks
def check_rate(problem: PlanProblem, rate) -> tuple[float, RateContext]:
    """``rate`` as a float and the problem's context, or a KairosInputError naming --target-qps:
    not a number > 0, more than ``problem.budget`` can reach by the fluid bound, or a pool
    of absurd size."""
    rate = require_positive("--target-qps", rate)
    ctx = rate_context(problem)
    need = ctx.fluid_cost(rate)
    capped = problem.budget < NO_CAP
    if capped and need > problem.budget + 1e-9:
        raise KairosInputError(
            f"--target-qps {rate:g}: no pool within --budget ${problem.budget:g}/h reaches it (the fluid bound, "
            f"an upper limit, needs at least ${need:.3f}/h); raise --budget or lower --target-qps"
        )
    least_instances = ctx.unit_instances * rate
    if least_instances > MAX_INSTANCES:
        raise KairosInputError(
            f"--target-qps {rate:g} needs at least {least_instances:,.0f} instances by the fluid bound; the "
            f"planner takes pools up to {MAX_INSTANCES:,} instances: lower --target-qps"
        )
    return rate, ctx


def _check_size(counts, rate: float) -> None:
    if int(np.sum(counts)) > MAX_INSTANCES:
        raise KairosInputError(
            f"--target-qps {rate:g} needs {int(np.sum(counts)):,} instances by the queueing-corrected estimate; "
            f"the planner takes pools up to {MAX_INSTANCES:,} instances: lower --target-qps"
        )


# ---------------------------------------------------------------------- the planner
class _Search:
    """One call's state: configurations (over all types) simulated so far."""

    def __init__(self, problem: PlanProblem, ctx: RateContext, rate: float, evaluator: Evaluator | None):
        self.problem, self.ctx, self.rate, self.ev = problem, ctx, rate, evaluator
        self.measured: dict[tuple, float] = {}  # full counts -> simulated max QPS
        self.cap = problem.budget

    def full(self, sub_counts) -> np.ndarray:
        n = np.zeros(self.problem.T, dtype=np.int64)
        n[self.ctx.keep] = sub_counts
        return n

    def sub(self, counts) -> np.ndarray:
        return np.asarray(counts)[self.ctx.keep]

    def cost(self, counts) -> float:
        return self.problem.cost(counts)

    def estimate(self, counts) -> float:
        return self.ctx.estimate(self.sub(counts))

    def frontier(self, tau: float, near=None) -> np.ndarray | None:
        n = self.ctx.frontier(tau, self.cap, None if near is None else self.sub(near))
        return None if n is None else self.full(n)

    def measure(self, counts) -> float:
        key = tuple(int(k) for k in counts)
        if key not in self.measured:
            assert self.ev is not None  # only plan_for_rate with an evaluator measures
            self.measured[key] = float(self.ev(self.problem.to_config(counts)))
        return self.measured[key]

    def known(self, counts) -> bool:
        return tuple(int(k) for k in counts) in self.measured

    def passing(self) -> np.ndarray | None:
        """The cheapest simulated configuration reaching the rate (higher QPS on equal cost)."""
        ok = [(self.cost(k), -q, k) for k, q in self.measured.items() if q >= self.rate]
        return np.array(min(ok)[2]) if ok else None

    def failing(self, below: float) -> np.ndarray | None:
        """Among simulated configurations missing the rate and costing less than ``below``,
        the one of highest estimate."""
        bad = [
            (self.estimate(k), -self.cost(k), k)
            for k, q in self.measured.items()
            if q < self.rate and self.cost(k) < below - _EPS_COST
        ]
        return np.array(max(bad)[2]) if bad else None

    # ---------------------------------------------------------------- verification
    def next_probe(self) -> np.ndarray | None:
        """The next frontier configuration to simulate, or None when the passing one's frontier
        neighbour below has been simulated (or nothing more can be tried)."""
        hi = self.passing()
        lo = self.failing(self.cost(hi) if hi is not None else math.inf)
        if hi is None:  # raise the target by the shortfall
            assert lo is not None  # something was measured, and it missed the rate
            q = self.measured[tuple(lo)]
            e = self.estimate(lo)
            tau = e * self.rate / q * 1.005 if q > 0 else 2.0 * e
            n = self.frontier(max(tau, e * (1 + 1e-6)), near=lo)
            while n is not None and self.known(n):  # already simulated (and failed): the next one up
                n = self.frontier(self.estimate(n) * (1 + 1e-6), near=n)
            return n
        e_hi = self.estimate(hi)
        if lo is None:  # passing with room: lower the target by the surplus
            n = self.frontier(e_hi * self.rate / self.measured[tuple(hi)], near=hi)
            if n is None or self.known(n) or self.cost(n) >= self.cost(hi) - _EPS_COST:
                n = self.frontier_below(hi)
            return n
        e_lo = self.estimate(lo)
        if e_lo >= e_hi:
            return None
        for tau in (0.5 * (e_lo + e_hi), e_lo * (1 + 1e-6)):  # bisect; else the neighbour just above lo
            n = self.frontier(tau, near=hi)
            if n is not None and not self.known(n) and self.cost(n) < self.cost(hi) - _EPS_COST:
                return n
        return None

    def frontier_below(self, hi) -> np.ndarray | None:
        """The frontier configuration just below ``hi``: the best estimate costing less."""
        budget = self.cost(hi) - _EPS_COST
        if budget < self.ctx.cheapest_price:
            return None
        cands, _ = self.ctx.below(budget)
        if not cands:
            return None
        n = self.full(cands[0][1])
        return None if self.known(n) else n

    # ---------------------------------------------------------------- tie-breaks
    def tie_break_candidates(self, hi, tie_tol: float) -> list[np.ndarray]:
        """Configurations costing less than ``hi`` worth simulating: the budget MILP's
        candidates there within ``tie_tol`` of its best estimate, and its uncorrected fluid
        optimum, whose fluid bound reaches the rate; best estimate first."""
        budget = self.cost(hi) - _EPS_COST
        if budget < self.ctx.cheapest_price:
            return []
        cands, fluid_optimum = self.ctx.below(budget)
        if not cands:
            return []
        top = cands[0][0]
        pool = [n for q, n in cands if q >= (1.0 - tie_tol) * top]
        if fluid_optimum is not None and not any((fluid_optimum == n).all() for n in pool):
            pool.append(fluid_optimum)
        out = [self.full(n) for n in pool if self.ctx.fluid(n) >= self.rate]
        out = [n for n in out if not self.known(n)]
        out.sort(key=lambda n: (-self.estimate(n), self.cost(n)))
        return out


def _candidate(problem: PlanProblem, counts, estimate: float, measured: float | None) -> dict:
    d = {
        "config": problem.to_config(counts),
        "cost_per_hour": round(problem.cost(counts), 4),
        "estimate": round(float(estimate), 3),
    }
    if measured is not None:
        d["measured_qps"] = round(float(measured), 3)
        d["policy"] = "kairos"
    return d


def plan_for_rate(
    problem: PlanProblem, rate: float, evaluator: Evaluator | None = None, evals: int = 4, tie_tol: float = 0.15
) -> PlanResult:
    """The cheapest configuration (within ``problem.budget``) whose QoS-throughput is at least ``rate``.

    Without an evaluator, or with ``evals=0``, the model's answer (the frontier at ``rate``,
    not simulated). Otherwise the answer has been simulated (``measured_qps >= rate``), with
    up to ``evals`` tie-break simulations of cheaper candidates on top of the verification
    ones. ``PlanResult.evaluations`` counts the distinct configurations simulated (asked of the
    evaluator, cached or not). KairosInputError (naming the flag) for a rate that is not a
    number > 0, one no pool within the budget reaches, or one needing absurd counts.
    """
    if evals < 0:
        raise KairosInputError(f"--evals must be >= 0 with --target-qps, got {evals}")
    t0 = time.perf_counter()
    rate, ctx = check_rate(problem, rate)
    s = _Search(problem, ctx, rate, evaluator)
    capped = problem.budget < NO_CAP
    where = f"within --budget ${problem.budget:g}/h " if capped else ""
    n0 = s.frontier(rate)
    if n0 is None:
        raise KairosInputError(
            f"--target-qps {rate:g}: the model finds no configuration {where}that reaches it; "
            + ("raise --budget or lower --target-qps" if capped else "lower --target-qps")
        )
    _check_size(n0, rate)
    notes = [f"fluid bound: at least ${ctx.fluid_cost(rate):.3f}/h for {rate:g} q/s"]
    if (~ctx.keep).any():
        notes.append(f"{int((~ctx.keep).sum())} of {problem.T} types dominated (no cheaper, no faster) and dropped")
    if evaluator is None or evals == 0:
        res = PlanResult(
            "milp",
            problem.to_config(n0),
            problem.cost(n0),
            s.estimate(n0),
            0,
            time.perf_counter() - t0,
            predicted_kind="estimate",
            notes=notes,
        )
        res.candidates = [_candidate(problem, n0, s.estimate(n0), None)]
        return res
    s.measure(n0)
    for _ in range(MAX_STEPS):
        n = s.next_probe()
        if n is None:
            break
        s.measure(n)
    hi = s.passing()
    if hi is None:
        best = max(s.measured.items(), key=lambda kv: kv[1])
        raise KairosInputError(
            f"--target-qps {rate:g}: no configuration {where}found that reaches it in {len(s.measured)} simulations "
            f"(the best, {problem.to_config(best[0])}, serves {best[1]:.1f} q/s); "
            + ("raise --budget or lower --target-qps" if capped else "lower --target-qps")
        )
    spent = 0
    while spent < evals:
        found = None
        for n in s.tie_break_candidates(hi, tie_tol):
            if spent >= evals:
                break
            spent += 1
            if s.measure(n) >= rate:
                found = n
                break
        if found is None:
            break
        hi = s.passing()
    assert hi is not None  # a passing configuration was found above and stays the cheapest
    res = PlanResult(
        "milp",
        problem.to_config(hi),
        problem.cost(hi),
        s.estimate(hi),
        len(s.measured),
        time.perf_counter() - t0,
        s.measured[tuple(hi)],
        predicted_kind="estimate",
        notes=notes,
    )
    ranked = sorted(s.measured.items(), key=lambda kv: problem.cost(kv[0]))
    res.candidates = [_candidate(problem, k, s.estimate(k), q) for k, q in ranked][:8]
    return res


# ---------------------------------------------------------------------- exhaustive
class _Recorder(Evaluator):
    """An evaluator that asks ``evaluator`` (and its cache) and remembers which
    configurations were asked of it."""

    def __init__(self, evaluator: Evaluator):
        super().__init__(
            evaluator.catalogue,
            evaluator.model,
            evaluator.qos_ms,
            evaluator.mix,
            evaluator.queries,
            evaluator.seed,
            None,
            evaluator.workers,
        )
        self.ev = evaluator
        self.asked: dict[tuple, float] = {}

    def many(self, configs: list[dict[str, int]], policy: str = "kairos") -> list[float]:
        vals = self.ev.many(configs, policy)
        for c, v in zip(configs, vals):
            self.asked[tuple(sorted(c.items()))] = v
        return vals

    def __call__(self, config: dict[str, int], policy: str = "kairos") -> float:
        return self.many([config], policy)[0]


def plan_for_rate_exhaustive(
    problem: PlanProblem, rate: float, evaluator: Evaluator | None, start_cost: float | None = None
) -> PlanResult:
    """The exact answer (under the exhaustive planner's pruning by the fluid bound): the least
    cost ``C`` such that the exhaustive budget planner (:func:`~kairos.plan.methods.plan_exhaustive`)
    at budget ``C`` measures at least ``rate``.

    From ``start_cost`` (default: the cap, or 1.25x the fluid bound's least cost, raised by
    half until a pool passes), the exhaustive optimum at budget ``B`` is taken; while it
    reaches the rate, ``B`` drops to just below its cost. The last one that reached the rate
    is the cheapest configuration that does.
    """
    if evaluator is None:
        raise KairosInputError("--method exhaustive simulates configurations; it needs an evaluator")
    t0 = time.perf_counter()
    rate, ctx = check_rate(problem, rate)
    capped = problem.budget < NO_CAP
    rec = _Recorder(evaluator)
    b = start_cost if start_cost is not None else (problem.budget if capped else 1.25 * ctx.fluid_cost(rate))
    b = max(b, ctx.cheapest_price)
    while True:
        res = plan_exhaustive(replace(problem, budget=b), rec)
        if res.measured_qps is not None and res.measured_qps >= rate:
            break
        if capped and b >= problem.budget:
            raise KairosInputError(
                f"--target-qps {rate:g}: no configuration within --budget ${problem.budget:g}/h reaches it "
                f"(the best serves {res.measured_qps:.1f} q/s); raise --budget or lower --target-qps"
            )
        b = min(1.5 * b, problem.budget)
    best = res
    while True:
        b = best.cost_per_hour - _EPS_COST
        if b < ctx.cheapest_price:
            break
        res = plan_exhaustive(replace(problem, budget=b), rec)
        if res.measured_qps is None or res.measured_qps < rate:
            break
        best = res
    assert best.measured_qps is not None  # it reached the rate
    out = PlanResult(
        "exhaustive",
        best.config,
        best.cost_per_hour,
        best.measured_qps,
        len(rec.asked),
        time.perf_counter() - t0,
        best.measured_qps,
    )
    out.notes.append(
        f"every configuration costing less than ${best.cost_per_hour:.4f}/h measures below {rate:g} "
        f"q/s or has a fluid bound below the best measured at its budget"
    )
    out.candidates = [
        {
            "config": dict(k),
            "cost_per_hour": round(problem.cost(problem.to_counts(dict(k))), 4),
            "measured_qps": round(q, 3),
            "policy": "kairos",
        }
        for k, q in sorted(rec.asked.items(), key=lambda kv: -kv[1])[:8]
    ]
    return out


# ---------------------------------------------------------------------- methods
RATE_METHODS = ("milp", "exhaustive")  # the --method values that plan for a --target-qps


def run_for_rate(
    method: str, problem: PlanProblem, rate, evaluator: Evaluator | None, evals: int | None = None
) -> PlanResult:
    """``kairos plan --target-qps``: :func:`plan_for_rate` (``milp``, the default) or
    :func:`plan_for_rate_exhaustive`; another method is refused in one line."""
    if method == "milp":
        return plan_for_rate(problem, rate, evaluator, **({} if evals is None else {"evals": evals}))
    if method == "exhaustive":
        return plan_for_rate_exhaustive(problem, rate, evaluator)
    raise KairosInputError(
        f"--target-qps applies only to --method {' or '.join(RATE_METHODS)}; drop --method {method} or --target-qps"
    )
