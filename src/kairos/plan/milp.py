"""The default planner (``milp``): the fluid bound as a mixed-integer programme over counts.

Variables: routing rates ``x_tb`` (size bucket b to type t, within QoS), ``y_tb``
(traffic allowed to miss), the total rate ``lambda`` and integer counts ``n_t``.
Maximise ``lambda`` subject to

* ``sum_t x_tb + y_tb = p_b lambda`` (every bucket routed),
* ``sum_b s'_tb (x_tb + y_tb) <= n_t`` (work fits in the instances),
* ``sum y <= 1% lambda`` (the queries allowed to miss),
* ``sum_t price_t n_t <= budget``, ``n_t`` integer.

With ``s' = s`` this is exactly "the configuration with the highest fluid bound", for
any number of types and without enumerating. The queueing correction
(:mod:`kairos.plan.queueing`) inflates each pair's service time to
``s'_tb = s_tb / rho_tb(n_t)``: utilisation headroom that grows with the query's
slack and with the number of instances. Because ``rho`` depends on ``n``, the MILP is
solved as a fixed point: counts -> rho -> MILP -> counts (a few rounds). Every
candidate is re-scored with ``rho`` at its own counts (the corrected bound).
Near-ties are then broken by at most a handful of simulations: the candidates are
the fixed-point iterates and the optimum of each branch around the best one
(``n_i <= n*_i - 1`` and ``n_i >= n*_i + 1`` for types it uses, ``n_j >= 1`` for the
most valuable types it does not use), within ``tie_tol`` of the best corrected bound.

The dual (:mod:`kairos.plan.target`, ``kairos plan --target-qps``) keeps the constraints
and swaps the objective: minimise ``sum_t price_t n_t`` subject to ``lambda >= rate``
(:meth:`FluidMILP.cheapest`, solved as the same kind of fixed point,
:meth:`FluidMILP.cheapest_fixed_point`); the budget row then caps the cost.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix, csr_matrix, hstack, vstack

from kairos.plan.bounds import FluidLP
from kairos.plan.queueing import EPS, KAPPA, pair_utilisation
from kairos.plan.space import PlanProblem

# HiGHS's primal heuristics (sub-MIPs, rounding, feasibility jump) find nothing the root LP
# and its cuts do not on these small models (a handful of integer counts) and took half
# the time; switching them off halves the planning time and leaves the 20 built-in
# (model, budget) plans unchanged (benchmarks/plan_scale.py, tests/test_plan_methods.py).
HIGHS_MIP_OPTIONS = {
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_zi_round": False,
    "mip_heuristic_run_shifting": False,
    "mip_heuristic_run_feasibility_jump": False,
}


class FluidMILP:
    """The (corrected) fluid MILP of one problem."""

    def __init__(
        self, problem: PlanProblem, corrected: bool = True, eps: float = EPS, kappa: float = KAPPA, gap: float = 1e-4
    ):
        self.problem, self.corrected, self.eps, self.kappa, self.gap = problem, corrected, eps, kappa, gap
        self.nmax = problem.max_counts()
        self._lp_cache: dict[tuple, tuple[float, np.ndarray]] = {}
        self._rho: dict[tuple[int, int], np.ndarray] = {}
        self.fluid_optimum: np.ndarray | None = None

    # --------------------------------------------------------------- pieces
    def service(self, counts) -> np.ndarray:
        s = self.problem.profile.mean_ms
        if not self.corrected:
            return s
        rows = []
        for t, n in enumerate(counts):
            key = (t, max(int(n), 1))
            if key not in self._rho:
                self._rho[key] = pair_utilisation(s[t : t + 1], self.problem.qos_ms, [key[1]], self.eps, self.kappa)[0]
            rows.append(self._rho[key])
        return s / np.array(rows)

    def value(self, counts) -> tuple[float, np.ndarray]:
        """(Corrected) bound of fixed counts -- an LP -- and its capacity duals."""
        key = tuple(int(k) for k in counts)
        if key not in self._lp_cache:
            lp = FluidLP(self.problem, service_ms=self.service(counts))
            self._lp_cache[key] = lp.solve(np.asarray(counts, dtype=float))
        return self._lp_cache[key]

    def _programme(self, ref_counts):
        """The MILP's pieces with service times taken at ``ref_counts``: the routing LP, its
        equality and inequality constraints (capacity rows, miss row, cost row <= budget)
        over the variables [LP variables..., n_1..n_T]."""
        p = self.problem
        T = p.T
        lp = FluidLP(p, service_ms=self.service(ref_counts))
        nv0 = lp.nv
        nvar = nv0 + T
        A_eq = hstack([lp.A_eq, csr_matrix((lp.A_eq.shape[0], T))])
        minus_n = coo_matrix((-np.ones(T), (np.arange(T), np.arange(T))), shape=(T + 1, T))
        A_cap = hstack([lp.A_ub, minus_n])
        A_cost = coo_matrix((p.prices, (np.zeros(T, int), nv0 + np.arange(T))), shape=(1, nvar))
        A = vstack([A_cap, A_cost]).tocsr()
        cons = [
            LinearConstraint(A_eq.tocsr(), 0.0, 0.0),
            LinearConstraint(A, -np.inf, np.concatenate([np.zeros(T + 1), [p.budget + 1e-9]])),
        ]
        return lp, nv0, nvar, cons

    def _run(self, c, cons, nv0, nvar, lb, ub, relax: bool = False) -> np.ndarray | None:
        """Solve with objective ``c`` and bounds; the counts, or None if infeasible or empty."""
        integrality = np.zeros(nvar)
        if not relax:
            integrality[nv0:] = 1
        if np.any(lb[nv0:] > ub[nv0:]):
            return None
        with warnings.catch_warnings():  # scipy passes HiGHS's own options on, with a warning
            warnings.filterwarnings("ignore", "Unrecognized options", RuntimeWarning)
            res = milp(
                c,
                constraints=cons,
                integrality=integrality,
                bounds=Bounds(lb, ub),
                options={"mip_rel_gap": self.gap, **HIGHS_MIP_OPTIONS},
            )
        if res.status != 0 or res.x is None:
            return None
        if relax:
            return res.x[nv0:]
        n = np.round(res.x[nv0:]).astype(np.int64)
        return n if n.sum() > 0 else None

    def solve(self, ref_counts, lo=None, hi=None) -> np.ndarray | None:
        """Counts maximising the bound with service times taken at ``ref_counts``."""
        lp, nv0, nvar, cons = self._programme(ref_counts)
        c = np.zeros(nvar)
        c[lp.lam] = -1.0
        lb = np.zeros(nvar)
        ub = np.full(nvar, np.inf)
        lb[nv0:] = 0 if lo is None else lo
        ub[nv0:] = self.nmax if hi is None else np.minimum(hi, self.nmax)
        return self._run(c, cons, nv0, nvar, lb, ub)

    # ------------------------------------------------------- the dual: a target rate
    def cheapest(self, rate: float, ref_counts, lo=None, hi=None, relax: bool = False) -> np.ndarray | None:
        """Counts of least cost whose bound, with service times taken at ``ref_counts``, is
        at least ``rate`` (within the budget and ``lo``/``hi``); None if there are none.
        ``relax``: the LP relaxation (fractional counts)."""
        lp, nv0, nvar, cons = self._programme(ref_counts)
        c = np.zeros(nvar)
        c[nv0:] = self.problem.prices
        lb = np.zeros(nvar)
        ub = np.full(nvar, np.inf)
        lb[lp.lam] = rate
        lb[nv0:] = 0 if lo is None else lo
        ub[nv0:] = self.nmax if hi is None else np.minimum(hi, self.nmax)
        return self._run(c, cons, nv0, nvar, lb, ub, relax)

    def cheapest_fixed_point(self, rate: float, rounds: int = 4, start=None) -> list[np.ndarray]:
        """The dual of :meth:`fixed_point`: counts -> rho(counts) -> cheapest counts reaching
        ``rate``, until they repeat; returns every iterate. It starts from utilisations at the
        counts ``start`` or, by default, from the cheapest counts by the uncorrected bound
        (then the first iterate)."""
        if start is None:
            first = FluidMILP(self.problem, corrected=False, gap=self.gap).cheapest(
                rate, np.ones(self.problem.T, dtype=np.int64)
            )
            if first is None:
                return []
            out, ref = [first], first
        else:
            out, ref = [], np.asarray(start, dtype=np.int64)
        if not self.corrected:
            return out
        return out + _iterate(lambda r: self.cheapest(rate, r), ref, rounds)

    def with_budget(self, budget: float) -> FluidMILP:
        """The same MILP under another budget, sharing the utilisation and bound caches
        (neither depends on the budget)."""
        m = FluidMILP(replace(self.problem, budget=float(budget)), self.corrected, self.eps, self.kappa, self.gap)
        m._rho, m._lp_cache = self._rho, self._lp_cache
        return m

    def fixed_point(self, rounds: int = 4, lo=None, hi=None) -> list[np.ndarray]:
        """Iterates counts -> rho(counts) -> MILP until they repeat; returns every iterate."""
        ref = np.ones(self.problem.T, dtype=np.int64)
        first = FluidMILP(self.problem, corrected=False, gap=self.gap).solve(ref, lo, hi)
        if first is None:
            return []
        self.fluid_optimum = first  # the configuration with the highest (uncorrected) fluid bound
        if not self.corrected:
            return [first]
        return [first, *_iterate(lambda r: self.solve(r, lo, hi), first, rounds)]

    def candidates(self, extra_outside: int = 2) -> list[tuple[float, np.ndarray]]:
        """Distinct candidate counts with their corrected bound, best first."""
        pts = self.fixed_point()
        if not pts:
            return []
        scored = {tuple(n): self.value(n)[0] for n in pts}
        best = np.array(max(scored, key=lambda k: scored[k]))
        T = self.problem.T
        branches: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        for i in np.flatnonzero(best > 0):
            hi = self.nmax.copy()
            hi[i] = best[i] - 1
            branches.append((None, hi))
            lo = np.zeros(T, dtype=np.int64)
            lo[i] = best[i] + 1
            branches.append((lo, None))
        outside = np.flatnonzero(best == 0)
        if outside.size and extra_outside:
            _, u = self.value(best)
            order = outside[np.argsort(-(u[outside] / self.problem.prices[outside]))][:extra_outside]
            for j in order:
                lo = np.zeros(T, dtype=np.int64)
                lo[j] = 1
                branches.append((lo, None))
        for lower, upper in branches:
            found = self.solve(best, lower, upper)  # rho at the best counts: one MILP per branch
            if found is not None and tuple(found) not in scored:
                scored[tuple(found)] = self.value(found)[0]
        out = [(q, np.array(n)) for n, q in scored.items() if q > 0]
        out.sort(key=lambda qn: -qn[0])
        return out


def _iterate(step, ref: np.ndarray, rounds: int) -> list[np.ndarray]:
    """step(ref), step(step(ref)), ... (at most ``rounds``) until one repeats an earlier
    value (itself included) or step finds nothing; every value found, in order."""
    seen, out = set(), []
    for _ in range(rounds):
        seen.add(tuple(ref))
        n = step(ref)
        if n is None:
            break
        out.append(n)
        if tuple(n) in seen:
            break
        ref = n
    return out
