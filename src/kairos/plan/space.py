"""The configuration space: every {type: count} pool whose $/hour is within budget.

A :class:`PlanProblem` gathers what every planner needs (the model's profile restricted
to the allowed types, their prices, the size-bucket mix, the QoS target and budget)
and checks the inputs once, so that every method fails the same way on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kairos.errors import KairosInputError
from kairos.plan.fluid import servable_fraction
from kairos.profiles.catalogue import Catalogue
from kairos.profiles.profile import Profile
from kairos.workload.sizes import SizeMix

MISS_FRACTION = 0.01  # the 1% of queries allowed to miss QoS
_EPS = 1e-9


@dataclass
class PlanProblem:
    """One planning problem: which counts of which types to rent."""

    catalogue: Catalogue
    model: str
    profile: Profile  # restricted to ``types``
    types: tuple[str, ...]
    prices: np.ndarray  # [T] $/hour, same order as ``types``
    probs: np.ndarray  # [B] probability of each measured size
    mix: SizeMix
    qos_ms: float
    budget: float

    @classmethod
    def build(
        cls, catalogue: Catalogue, model: str, budget: float, qos_ms: float, mix: SizeMix, types=None
    ) -> PlanProblem:
        full = catalogue.profile(model)
        if types is None:
            types = [t for t in full.types if t in catalogue.prices]
            if not types:
                raise KairosInputError(
                    f"no instance type of model {model!r} has a price; give a --prices file that "
                    f"prices some of: {', '.join(full.types)}"
                )
        else:
            types = list(dict.fromkeys(t.strip() for t in types if t.strip()))
            if not types:
                raise KairosInputError("--types is empty; give a comma-separated list of instance types")
            missing = [t for t in types if t not in full.types]
            if missing:
                raise KairosInputError(
                    f"--types: {', '.join(missing)} not in the profile of {model!r}; known types: "
                    f"{', '.join(full.types)}"
                )
            unpriced = [t for t in types if t not in catalogue.prices]
            if unpriced:
                raise KairosInputError(
                    f"--types: no price for {', '.join(unpriced)}; add it to the --prices file "
                    f"(columns instance, usd_per_hour)"
                )
        if not (budget > 0 and np.isfinite(budget)):
            raise KairosInputError(f"--budget must be a positive $/hour, got {budget}")
        if not (qos_ms > 0 and np.isfinite(qos_ms)):
            raise KairosInputError(f"--qos-ms must be > 0, got {qos_ms}")
        prices = np.array([catalogue.price(t) for t in types], dtype=float)
        cheapest = float(prices.min())
        if budget + _EPS < cheapest:
            name = types[int(prices.argmin())]
            raise KairosInputError(
                f"--budget ${budget:g}/h is below the cheapest allowed instance ({name} at "
                f"${cheapest:g}/h); raise --budget to at least {cheapest:g}"
            )
        profile = full.restrict(types)
        probs = mix.bucket_probabilities(profile.batches)
        prob = cls(catalogue, model, profile, tuple(types), prices, probs, mix, float(qos_ms), float(budget))
        # a QoS that no allowed type can meet for 99% of queries -> nothing to plan
        best_cover = servable_fraction(profile.mean_ms, probs, qos_ms)
        if best_cover < 1.0 - MISS_FRACTION - 1e-6:
            raise KairosInputError(
                f"--qos-ms {qos_ms:g}: no allowed instance type serves 99% of the {mix.name} queries "
                f"of {model!r} within it (at most {100 * best_cover:.1f}% can meet it); raise --qos-ms "
                f"or allow faster --types"
            )
        return prob

    @property
    def T(self) -> int:
        return len(self.types)

    def cost(self, counts) -> float:
        return float(np.dot(np.asarray(counts, dtype=float), self.prices))

    def within_budget(self, counts) -> bool:
        return self.cost(counts) <= self.budget + _EPS

    def to_config(self, counts) -> dict[str, int]:
        return {t: int(k) for t, k in zip(self.types, counts) if int(k) > 0}

    def to_counts(self, config: dict[str, int]) -> tuple[int, ...]:
        c = [0] * self.T
        for t, k in config.items():
            c[self.types.index(t)] = int(k)
        return tuple(c)

    def max_counts(self) -> np.ndarray:
        return np.floor((self.budget + _EPS) / self.prices).astype(np.int64)


def count_configurations(prices: np.ndarray, budget: float) -> int:
    """Number of non-empty integer count vectors with cost <= budget (dynamic programme)."""
    cents = np.round(np.asarray(prices) * 1e4).astype(np.int64)
    cap = int(np.floor(budget * 1e4 + 1e-6))
    ways = np.zeros(cap + 1, dtype=object)
    ways[0] = 1
    for c in cents:
        for v in range(c, cap + 1):
            ways[v] += ways[v - c]
    return int(sum(ways)) - 1


def enumerate_configurations(prices: np.ndarray, budget: float, limit: int | None = None) -> np.ndarray:
    """All non-empty count vectors within budget, as an int array [N, T].

    Built type by type with numpy (no Python loop over configurations). ``limit``
    guards against explosion: more rows than that -> KairosInputError.
    """
    prices = np.asarray(prices, dtype=float)
    rows = np.zeros((1, 0), dtype=np.int64)
    spent = np.zeros(1)
    for p in prices:
        kmax = np.floor((budget + _EPS - spent) / p).astype(np.int64)
        reps = kmax + 1
        total = int(reps.sum())
        if limit is not None and total > limit:
            raise KairosInputError(
                f"the configuration space has more than {limit:,} configurations within budget; "
                f"use the default method (a MILP) or fewer --types"
            )
        idx = np.repeat(np.arange(len(rows)), reps)
        starts = np.cumsum(reps) - reps
        k = np.arange(total) - np.repeat(starts, reps)
        rows = np.concatenate([rows[idx], k[:, None]], axis=1)
        spent = spent[idx] + k * p
    return rows[rows.sum(axis=1) > 0]


def dominated_types(problem: PlanProblem) -> np.ndarray:
    """Mask [T] of types another allowed type dominates: no dearer and no slower at any size.

    Replacing each instance of a dominated type by its dominator keeps the cost within
    budget and every service time (hence feasibility, slack and capacity) at least as
    good, so dropping dominated types never changes the best fluid (or corrected) bound.
    Among identical types the first is kept.
    """
    s = problem.profile.mean_ms[:, problem.probs > 0]
    p = problem.prices
    T = problem.T
    dom = np.zeros(T, dtype=bool)
    for t in range(T):
        better = (p <= p[t] + 1e-12) & np.all(s <= s[t] + 1e-12, axis=1)
        better[t] = False
        same = better & (np.abs(p - p[t]) <= 1e-12) & np.all(np.abs(s - s[t]) <= 1e-12, axis=1)
        better &= ~same | (np.arange(T) < t)
        dom[t] = bool(better.any())
    return dom


def restrict_problem(problem: PlanProblem, keep) -> PlanProblem:
    """The same problem over the types where ``keep`` is true."""
    keep = np.asarray(keep, dtype=bool)
    types = tuple(t for t, k in zip(problem.types, keep) if k)
    return PlanProblem(
        problem.catalogue,
        problem.model,
        problem.profile.restrict(types),
        types,
        problem.prices[keep],
        problem.probs,
        problem.mix,
        problem.qos_ms,
        problem.budget,
    )
