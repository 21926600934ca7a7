"""An elastic pool in the simulator: the controller resizes it while a rate trace plays.

The same discrete-event simulator (:func:`kairos.sim.engine.simulate`) runs the queries;
:class:`ElasticTimers` is its third event source: every ``interval_s`` the controller sees
the arrivals since its last decision and its actions are applied through the
:class:`~kairos.dispatch.Dispatcher` (an added instance is billed from its launch and
serves after its type's start-up delay; a drained one finishes what it runs, then stops).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kairos.dispatch import Dispatcher, make_policy
from kairos.elastic.billing import BillingRule, instance_cost
from kairos.elastic.controller import Action, Autoscaler, Controller, ControllerSettings, PoolPlanner
from kairos.elastic.rates import RateTrace
from kairos.errors import KairosInputError
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import DEFAULT_METHOD, PlanResult, run_method
from kairos.plan.space import PlanProblem
from kairos.plan.target import NO_CAP, plan_for_rate
from kairos.profiles.profile import Profile
from kairos.sim.engine import PoolTimers, simulate
from kairos.sim.search import QOS_TARGET_FRACTION
from kairos.workload.workload import make_workload

ORACLE_WINDOW_S = 600.0  # the oracle re-plans every 10 minutes for that window's busiest step
DEFAULT_STARTUP_S = 120.0  # from launch to serving, per instance type, unless told otherwise


class TargetPlanner(PoolPlanner):
    """:func:`kairos.plan.target.plan_for_rate` as the controller's planner: verified by
    simulation (``evals`` tie-breaks), rates rounded up to a geometric grid of ``grid``
    relative steps so that a day of decisions asks for a few dozen distinct rates, every
    answer and every configuration's QoS-throughput cached. Under a budget cap
    (``problem.budget``), a rate that no pool within it serves gets the best pool the budget
    buys (the default budget planner's)."""

    def __init__(
        self,
        problem: PlanProblem,
        evaluator: Evaluator | None,
        evals: int = 2,
        grid: float = 0.02,
        floor_qps: float = 1.0,
    ):
        self.problem = problem
        self.evaluator = evaluator
        self.evals = evals
        self.grid = grid
        self.floor_qps = floor_qps
        self._plans: dict[int, dict[str, int]] = {}
        self._capacity: dict[tuple, float] = {}
        self._within_budget: PlanResult | None = None
        self._prices = dict(zip(problem.types, (float(p) for p in problem.prices)))

    @classmethod
    def for_model(
        cls,
        catalogue,
        model: str,
        qos_ms: float,
        mix,
        cap: float | None = None,
        types: str | None = None,
        queries: int = 4000,
        seed: int = 0,
        cache_path=None,
    ) -> TargetPlanner:
        """The planner of ``kairos simulate --autoscale`` and ``kairos serve --autoscale``: every
        type of ``model`` with a price (or the comma-separated ``types``), ``cap`` $/hour at most
        (None: no cap), each pool checked by simulations of ``queries`` queries (0: the
        planner's queueing model alone), cached in ``cache_path`` if given."""
        problem = PlanProblem.build(
            catalogue, model, NO_CAP if cap is None else cap, qos_ms, mix, None if types is None else types.split(",")
        )
        evaluator = Evaluator(catalogue, model, qos_ms, mix, queries, seed, cache_path) if queries > 0 else None
        return cls(problem, evaluator)

    def prices(self) -> dict[str, float]:
        return self._prices

    def _cell(self, rate_qps: float) -> int:
        return math.ceil(math.log(max(rate_qps, self.floor_qps)) / math.log1p(self.grid) - 1e-9)

    def cheapest_for(self, rate_qps: float) -> dict[str, int]:
        k = self._cell(rate_qps)
        if k not in self._plans:
            rate = math.exp(k * math.log1p(self.grid))
            try:
                res = plan_for_rate(self.problem, rate, self.evaluator, self.evals)
            except KairosInputError:
                if self.problem.budget >= NO_CAP:
                    raise
                res = self._best_within_budget()  # more than the budget buys: the most it buys
            self._plans[k] = {t: n for t, n in res.config.items() if n > 0}
        return dict(self._plans[k])

    def _best_within_budget(self) -> PlanResult:
        if self._within_budget is None:
            self._within_budget = run_method(DEFAULT_METHOD, self.problem, self.evaluator)
        return self._within_budget

    def capacity(self, config: dict[str, int]) -> float:
        cfg = {t: int(n) for t, n in config.items() if n > 0}
        if not cfg:
            return 0.0
        key = tuple(sorted(cfg.items()))
        if key not in self._capacity:
            if self.evaluator is not None:
                self._capacity[key] = float(self.evaluator(cfg))
            else:
                from kairos.plan.target import rate_context

                ctx = rate_context(self.problem)
                counts = np.array([cfg.get(t, 0) for t in self.problem.types])
                self._capacity[key] = float(ctx.milp.value(counts[ctx.keep])[0])
        return self._capacity[key]


@dataclass
class _Instance:
    type_name: str
    launched_s: float
    ready_s: float
    stopped_s: float | None = None


class ElasticTimers(PoolTimers):
    """Controller ticks and instances becoming ready, as the simulator's third event source."""

    def __init__(
        self,
        controller: Autoscaler,
        profile: Profile,
        startup_s: dict[str, float],
        initial: dict[str, int],
        progress: Callable[[float], None] | None = None,
    ):
        self.controller = controller
        self.progress = progress
        self.profile = profile
        self.startup_s = startup_s
        self.interval_ms = controller.interval_s * 1000.0
        self.events: list[tuple[float, int, str, int]] = [(self.interval_ms, 0, "tick", -1)]
        self.seq = 1
        self.instances: list[_Instance] = []
        for t, k in initial.items():
            for _ in range(k):
                self.instances.append(_Instance(t, 0.0, 0.0))
        self.last_arrived = 0
        self.scale_events: list[dict] = []
        self.timeline: list[dict] = []

    def next_ms(self) -> float:
        return self.events[0][0] if self.events else math.inf

    def _counts(self, d: Dispatcher) -> tuple[dict[str, int], dict[str, int]]:
        names = self.profile.types
        ready, starting = d.counts()
        return {names[t]: k for t, k in ready.items()}, {names[t]: k for t, k in starting.items()}

    def fire(self, now_ms: float, dispatcher: Dispatcher, arrived: int) -> None:
        while self.events and self.events[0][0] <= now_ms:
            _, _, kind, j = heapq.heappop(self.events)
            if kind == "ready":
                dispatcher.instance_up(j, now_ms)
                continue
            now_s = now_ms / 1000.0
            prev = self.last_arrived
            self.controller.observe(now_s, arrived - prev)
            self.last_arrived = arrived
            if self.progress is not None:
                self.progress(now_s)
            ready, starting = self._counts(dispatcher)
            acts = self.controller.decide(now_s, ready, starting)
            for a in acts:
                self._apply(a, now_ms, dispatcher)
            ready, starting = self._counts(dispatcher)
            self.timeline.append(
                {
                    "t_s": now_s,
                    "arrivals": arrived - prev,
                    "forecast_qps": self.controller.forecast_qps,
                    "ready": ready,
                    "starting": starting,
                }
            )
            heapq.heappush(self.events, (now_ms + self.interval_ms, self.seq, "tick", -1))
            self.seq += 1

    def _apply(self, a: Action, now_ms: float, d: Dispatcher) -> None:
        now_s = now_ms / 1000.0
        self.scale_events.append({"t_s": now_s, "action": a.kind, "type": a.instance_type, "count": a.count})
        tid = self.profile.type_index(a.instance_type)
        if a.kind == "add":
            for _ in range(a.count):
                j = d.add_instance(tid)
                up = self.startup_s.get(a.instance_type, 0.0)
                self.instances.append(_Instance(a.instance_type, now_s, now_s + up))
                heapq.heappush(self.events, (now_ms + up * 1000.0, self.seq, "ready", j))
                self.seq += 1
            return
        for j in d.least_loaded(tid, a.count):
            d.drain(j)
            if d.is_stopped(j):
                self.stopped(j, now_ms)

    def stopped(self, j: int, now_ms: float) -> None:
        if self.instances[j].stopped_s is None:
            self.instances[j].stopped_s = now_ms / 1000.0


@dataclass
class ElasticResult:
    summary: dict
    timeline: list[dict] = field(default_factory=list)
    scale_events: list[dict] = field(default_factory=list)


def pool_cost(config: dict[str, int], prices: dict[str, float], seconds: float) -> float:
    return sum(prices[t] * k for t, k in config.items()) * seconds / 3600.0


def oracle_cost(planner: PoolPlanner, rates: RateTrace, window_s: float = ORACLE_WINDOW_S) -> float:
    """A clairvoyant lower bound: per window, the cheapest pool for its busiest step, no start-up."""
    per = max(1, int(round(window_s / rates.step_s)))
    total = 0.0
    r = rates.rates
    for a in range(0, len(r), per):
        seg = r[a : a + per]
        total += pool_cost(planner.cheapest_for(float(seg.max())), planner.prices(), len(seg) * rates.step_s)
    return total


def simulate_elastic(
    problem: PlanProblem,
    planner: PoolPlanner,
    rates: RateTrace,
    policy: str = "kairos",
    policy_options: dict | None = None,
    startup_s: float | dict[str, float] = DEFAULT_STARTUP_S,
    settings: ControllerSettings | None = None,
    seed: int = 0,
    billing: BillingRule = BillingRule(),
    autoscaler: Autoscaler | None = None,
    progress: Callable[[float], None] | None = None,
) -> ElasticResult:
    """Replay ``rates`` (Poisson arrivals within each step) on a pool that ``autoscaler``
    (default: Kairos's :class:`Controller` over ``planner`` with ``settings``) resizes.
    ``planner`` also prices the static peak pool and the oracle. ``progress(t_s)`` is
    called at every decision with the simulated time."""
    t0 = time.perf_counter()
    settings = settings or ControllerSettings()
    types = list(problem.types)
    start = {t: float(startup_s) for t in types} if not isinstance(startup_s, dict) else dict(startup_s)
    if autoscaler is None:
        autoscaler = Controller(planner, start, settings)
    arrivals_ms = rates.arrivals_s(seed) * 1000.0
    if arrivals_ms.size == 0:
        raise KairosInputError("--rates: the rate file has no requests to replay")
    profile = problem.profile
    wl = make_workload(profile, problem.mix, seed=seed, trace_ms=arrivals_ms)
    initial = autoscaler.initial_pool(float(rates.rates[0]))
    autoscaler.start(0.0)
    timers = ElasticTimers(autoscaler, profile, start, initial, progress)
    pol = make_policy(policy, **(policy_options or {}))
    res = simulate(
        profile, initial, pol, wl, problem.qos_ms, rate=None, seed=seed, size_probs=problem.probs, timers=timers
    )
    end_s = max(rates.duration_s, res.makespan_ms / 1000.0)
    prices = planner.prices()
    cost = sum(
        instance_cost(h.launched_s, h.stopped_s if h.stopped_s is not None else end_s, prices[h.type_name], billing)
        for h in timers.instances
    )
    peak = float(rates.rates.max())
    static_cfg = planner.cheapest_for(peak)
    static = pool_cost(static_cfg, prices, rates.duration_s)
    oracle = oracle_cost(planner, rates)
    # QoS per hour of arrivals (unfinished queries count as misses)
    lat = np.full(res.n, np.inf)
    done = res.served_by >= 0
    lat[done] = res.latency_ms
    met = lat <= problem.qos_ms
    hour = (arrivals_ms // 3_600_000).astype(np.int64)
    per_hour = np.bincount(hour, weights=met, minlength=hour.max() + 1) / np.maximum(
        np.bincount(hour, minlength=hour.max() + 1), 1
    )
    has = np.bincount(hour, minlength=hour.max() + 1) > 0
    per_hour = per_hour[has]
    summary = {
        "queries": int(res.n),
        "cost_usd": round(cost, 4),
        "static_cost_usd": round(static, 4),
        "static_config": static_cfg,
        "oracle_cost_usd": round(oracle, 4),
        "cost_vs_static": round(cost / static, 4) if static > 0 else None,
        "cost_vs_oracle": round(cost / oracle, 4) if oracle > 0 else None,
        "qos_met_fraction": round(float(met.mean()), 5),
        "hours_meeting_qos_fraction": round(float((per_hour >= QOS_TARGET_FRACTION).mean()), 4),
        "worst_hour_qos_met": round(float(per_hour.min()), 5),
        "lost": int(res.n - res.completed),
        "scale_events": len(timers.scale_events),
        "scale_ups": sum(1 for e in timers.scale_events if e["action"] == "add"),
        "scale_downs": sum(1 for e in timers.scale_events if e["action"] == "drain"),
        "instances_launched": len(timers.instances),
        "instance_seconds": round(
            sum((h.stopped_s if h.stopped_s is not None else end_s) - h.launched_s for h in timers.instances), 1
        ),
        "duration_s": rates.duration_s,
        "startup_s": start,
        "policy": policy,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
    return ElasticResult(summary, timers.timeline, timers.scale_events)
