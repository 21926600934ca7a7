"""Allowable throughput: the highest arrival rate at which >= 99% of queries meet QoS.

Bisection on the Poisson rate (same queries at every rate) to a relative precision
of 0.5%, bracketed by the configuration's fluid bound. Runs that can no longer pass
stop early. A policy that declares a ``tuned_size_option`` (the ``deeprecsys`` baseline's
size threshold) has it re-tuned by hill-climbing at every probed rate, as DeepRecSys
tunes it online, unless the user set it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from kairos.dispatch.base import DispatchContext
from kairos.dispatch.registry import make_policy, policy_class
from kairos.plan.fluid import config_fluid_bound
from kairos.profiles.profile import Profile
from kairos.sim.engine import SimResult, pool_type_ids, simulate
from kairos.workload.workload import Workload

QOS_TARGET_FRACTION = 0.99


@dataclass
class MaxQpsResult:
    max_qps: float
    fluid_bound_qps: float
    result: SimResult | None  # the run at max_qps
    probes: list[tuple[float, bool]] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def allowed_misses(n: int, target: float = QOS_TARGET_FRACTION) -> int:
    return int(math.floor((1.0 - target) * n + 1e-9))


def _run(profile, config, policy_name, params, workload, qos_ms, rate, seed, limit, probs=None, handoff_ms=0.0):
    pol = make_policy(policy_name, **params)
    return simulate(
        profile,
        config,
        pol,
        workload,
        qos_ms,
        rate=rate,
        abort_violations=limit,
        seed=seed,
        size_probs=probs,
        handoff_ms=handoff_ms,
    )


def _score(res: SimResult) -> float:
    """Lower is better: violations, and for aborted runs how early they failed."""
    return res.violations + (res.n - res.completed)


def tune_size_threshold(
    profile, config, policy_name, workload, qos_ms, rate, seed, limit, start=None, handoff_ms=0.0, params=None
) -> tuple[int, SimResult]:
    """Hill-climb policy ``policy_name``'s size threshold (its ``tuned_size_option``, over
    measured sizes) at one rate; ``params`` are its other options."""
    cls = policy_class(policy_name)
    option = cls.tuned_size_option
    if option is None:
        raise ValueError(f"policy {policy_name!r} has no size threshold to tune")
    batches = profile.batches
    if start is None:
        type_of = pool_type_ids(profile, config)
        start = cls.default_size_threshold(DispatchContext(profile, type_of, qos_ms, seed))
    k = int(np.searchsorted(batches, start))
    k = min(k, len(batches) - 1)
    cache: dict[int, SimResult] = {}

    def ev(idx):
        if idx not in cache:
            cache[idx] = _run(
                profile,
                config,
                policy_name,
                {**(params or {}), option: int(batches[idx])},
                workload,
                qos_ms,
                rate,
                seed,
                limit,
                handoff_ms=handoff_ms,
            )
        return cache[idx]

    best = ev(k)
    for step in (8, 2, 1):
        improved = True
        while improved:
            improved = False
            for nk in (k - step, k + step):
                if 0 <= nk < len(batches):
                    r = ev(nk)
                    if _score(r) < _score(best):
                        k, best, improved = nk, r, True
                        break
    return int(batches[k]), best


def _bracket(test, bound: float, workload, estimate: float | None) -> tuple[float, float]:
    """A passing ``lo`` and a failing ``hi`` (lo may be 0 if nothing passes)."""
    if estimate is not None:
        step = 0.02
        if test(estimate):
            lo = estimate
            while True:
                cand = lo * (1 + step)
                if not test(cand):
                    return lo, cand
                lo, step = cand, step * 2
        hi = estimate
        while hi > 1e-6 * bound:
            cand = hi / (1 + step)
            if test(cand):
                return cand, hi
            hi, step = cand, step * 2
        return 0.0, hi
    hi = bound * 1.05
    lo = 0.0
    for _ in range(20):  # a finite run can pass slightly above the bound: widen if so
        if not test(hi):
            break
        lo, hi = hi, hi * 1.5
    if lo > 0:
        return lo, hi
    # good policies land at 0.8-1.0 of the bound: step down geometrically from 0.9
    cand = 0.9 * bound
    while cand > 1e-6 * bound:
        if test(cand):
            return cand, hi
        hi, cand = cand, cand * 0.85
    return 0.0, hi


def max_qps(
    profile: Profile,
    config: dict[str, int],
    policy_name: str,
    workload: Workload,
    qos_ms: float,
    probs: np.ndarray,
    policy_params: dict | None = None,
    seed: int = 0,
    rel_tol: float = 0.005,
    target: float = QOS_TARGET_FRACTION,
    coarse: bool = True,
    handoff_ms: float = 0.0,
) -> MaxQpsResult:
    """Bisection for the highest passing rate; ``probs`` is the size-bucket mix for the bound.

    With ``coarse`` (and at least 8,000 queries), a first search on the first fifth of the
    queries to 2% gives an estimate; the full run then only brackets and refines around it.
    The answer always comes from full-length runs.
    """
    t0 = time.perf_counter()
    params = dict(policy_params or {})
    bound = config_fluid_bound(profile, config, probs, qos_ms).qps
    limit = allowed_misses(workload.n, target)
    option = policy_class(policy_name).tuned_size_option
    tune = option is not None and params.get(option) is None
    state: dict[str, int | None] = {"th": None}
    probes: list[tuple[float, bool]] = []
    best: dict = {}

    def test(rate: float) -> bool:
        if tune:
            th, res = tune_size_threshold(
                profile, config, policy_name, workload, qos_ms, rate, seed, limit, state["th"], handoff_ms, params
            )
            state["th"] = th
            used = {**params, option: th}
        else:
            res = _run(profile, config, policy_name, params, workload, qos_ms, rate, seed, limit, probs, handoff_ms)
            used = params
        ok = (not res.aborted) and res.violations <= limit
        probes.append((rate, ok))
        if ok and rate >= best.get("rate", -1):
            best.update(rate=rate, res=res, params=dict(used))
        return ok

    coarse_estimate = None
    if coarse and workload.n >= 8000 and not tune:
        pre = max_qps(
            profile,
            config,
            policy_name,
            workload.head(workload.n // 5),
            qos_ms,
            probs,
            params,
            seed,
            rel_tol=0.02,
            target=target,
            coarse=False,
            handoff_ms=handoff_ms,
        )
        coarse_estimate = pre.max_qps if pre.max_qps > 0 else None
    if bound <= 0:
        return MaxQpsResult(0.0, bound, None, probes, params, time.perf_counter() - t0)
    lo, hi = _bracket(test, bound, workload, coarse_estimate)
    while lo == 0.0 or (hi - lo) > rel_tol * lo:
        mid = 0.5 * (lo + hi) if lo > 0 else hi / 2
        if mid < 1e-6 * bound:
            break
        if test(mid):
            lo = mid
        else:
            hi = mid
    res = best.get("res")
    return MaxQpsResult(lo, bound, res, probes, best.get("params", params), time.perf_counter() - t0)
