"""What users run today, as autoscalers of the elastic simulator: Ray Serve's replica autoscaler
on the best single instance type, and the static peak pool.

:class:`ReplicaAutoscaler` is Ray Serve's default autoscaling policy
(``replica_queue_length_autoscaling_policy``) with its default settings, on one instance
type. Sources (ray-project/ray):

* defaults of ``ray.serve.config.AutoscalingConfig`` --
  https://docs.ray.io/en/latest/serve/api/doc/ray.serve.config.AutoscalingConfig.html:
  ``target_ongoing_requests=2``, ``metrics_interval_s=10``, ``look_back_period_s=30``,
  ``smoothing_factor=1`` (``upscaling_factor`` / ``downscaling_factor`` default to it),
  ``upscale_delay_s=30``, ``downscale_delay_s=600``, ``initial_replicas=None``
  (= ``min_replicas``), aggregation ``mean``;
* ``num_replicas="auto"`` sets ``min_replicas=1, max_replicas=100`` and
  ``max_ongoing_requests=5`` -- doc/source/serve/autoscaling-guide.md
  (https://docs.ray.io/en/latest/serve/autoscaling-guide.html);
* the decision -- python/ray/serve/autoscaling_policy.py: desired replicas =
  ``ceil(total ongoing requests / target_ongoing_requests)`` (the running replicas times
  the error ratio, moved by the up/down scaling factor, at least one less when it would
  otherwise not move down), clipped to ``[min_replicas, max_replicas]``; then the delay: a
  new target is taken only once the desired count has stayed above (below) the current
  target -- running plus starting replicas -- at every control loop for
  ``upscale_delay_s`` (``downscale_delay_s``); a change of direction or a loop at the
  target restarts the count. The loop runs every ``CONTROL_LOOP_INTERVAL_S = 0.1`` s
  (python/ray/serve/_private/constants.py); its input changes only when replicas report,
  every ``metrics_interval_s``, so this class decides every ``metrics_interval_s`` and
  counts the delay as the time since the condition first held.

**In-flight queries.** Ray counts the requests in flight (running or queued at a replica
or a handle), averaged over ``look_back_period_s``. The :class:`Autoscaler` interface
reports arrivals only, so the count is estimated from them (:class:`InFlightModel`): Ray
routes each request to one replica, which runs one query at a time, so a replica with
utilisation ``rho = rate x mean service time / running replicas`` holds an M/G/1 queue's
mean number in system (Pollaczek-Khinchine, with the mean and squared coefficient of
variation of the type's service time under the workload's size mix), at most
``max_ongoing_requests``; arrivals beyond the running replicas' capacity pile up at the
handle (a fluid backlog, counted too, drained by spare capacity). At equilibrium the
default target of 2 in flight per replica holds each replica where its M/G/1 queue has 2
in system: utilisation 2/3 for exponential service times, 0.71 at a squared coefficient
of variation of 0.5.

**Start.** :meth:`ReplicaAutoscaler.initial_pool` starts at the replica count Ray's rule
settles at for the starting rate (as if the deployment had been running at it), not at
``initial_replicas`` (= 1): the benchmark compares behaviour under a changing load, not a
cold start.

**The type** (:func:`best_single_type`): the type whose homogeneous pool serves a rate
(the trace's busiest step) at the least $/hour -- the most QoS-throughput per dollar at the
size the deployment runs at (pools of one instance and of fifty do not pool queries
equally well, so one instance's throughput per dollar can rank types differently). It is
:func:`kairos.plan.target.plan_for_rate` on the problem restricted to each type.

:class:`StaticAutoscaler` keeps one pool all along (the static peak pool Kairos as
published rents) and never acts.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from kairos.elastic.controller import Action, Autoscaler
from kairos.errors import KairosInputError
from kairos.plan.evaluate import Evaluator
from kairos.plan.methods import PlanResult
from kairos.plan.space import PlanProblem
from kairos.plan.target import NO_CAP, plan_for_rate


@dataclass(frozen=True)
class RayServeSettings:
    """Ray Serve's autoscaling settings; the defaults are Ray's (``num_replicas="auto"``), see
    the module docstring for the sources."""

    target_ongoing_requests: float = 2.0
    max_ongoing_requests: int = 5  # a deployment setting: at most this many in flight at a replica
    min_replicas: int = 1
    max_replicas: int = 100
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    upscaling_factor: float = 1.0
    downscaling_factor: float = 1.0

    def __post_init__(self):
        for name in (
            "target_ongoing_requests",
            "metrics_interval_s",
            "look_back_period_s",
            "upscaling_factor",
            "downscaling_factor",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("upscale_delay_s", "downscale_delay_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (1 <= self.min_replicas <= self.max_replicas):
            raise ValueError(f"need 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")
        if self.max_ongoing_requests < 1:
            raise ValueError(f"max_ongoing_requests must be >= 1, got {self.max_ongoing_requests}")


@dataclass(frozen=True)
class ServiceTime:
    """Mean (s) and squared coefficient of variation of one type's service time under a size mix."""

    mean_s: float
    scv: float

    @classmethod
    def of(cls, problem: PlanProblem, instance_type: str) -> ServiceTime:
        """The exact moments of the distribution the simulator draws service times from
        (:meth:`~kairos.profiles.profile.Profile.sample_service_ms`: linear between the stored
        quantiles), mixed over the size buckets with the problem's probabilities."""
        prof = problem.profile
        q = prof.quantiles_ms[prof.type_index(instance_type)]  # [buckets, levels]
        mass = np.diff(prof.levels)  # [levels - 1]
        lo, hi = q[:, :-1], q[:, 1:]
        m1 = (mass * (lo + hi) / 2.0).sum(axis=1)  # [buckets]
        m2 = (mass * (lo * lo + lo * hi + hi * hi) / 3.0).sum(axis=1)
        p = np.asarray(problem.probs, dtype=float)
        mean_ms, second = float(p @ m1), float(p @ m2)
        return cls(mean_ms / 1000.0, max(second / mean_ms**2 - 1.0, 0.0))


class InFlightModel:
    """Requests in flight at a pool of single-query replicas fed Poisson arrivals with
    per-replica routing (see the module docstring): an M/G/1 queue per replica, at most
    ``max_ongoing`` each, plus a fluid backlog of the arrivals beyond the pool's capacity."""

    def __init__(self, service: ServiceTime, max_ongoing: int):
        self.service = service
        self.max_ongoing = max_ongoing
        self.backlog = 0.0  # requests waiting beyond the replicas (at the handle)

    def per_replica(self, utilisation: float) -> float:
        """Mean number in system of an M/G/1 queue at ``utilisation`` (at most ``max_ongoing``)."""
        rho = utilisation
        if rho >= 1.0:
            return float(self.max_ongoing)
        n = rho + rho * rho * (1.0 + self.service.scv) / (2.0 * (1.0 - rho))
        return min(n, float(self.max_ongoing))

    def stationary(self, rate_qps: float, replicas: int) -> float:
        """In flight at ``replicas`` running replicas and ``rate_qps``, no backlog."""
        if replicas <= 0:
            return 0.0
        return replicas * self.per_replica(rate_qps * self.service.mean_s / replicas)

    def step(self, rate_qps: float, replicas: int, span_s: float) -> float:
        """In flight at the end of ``span_s`` seconds at ``rate_qps`` on ``replicas`` running
        replicas (the backlog grows by the excess arrivals, drains by the spare capacity)."""
        capacity = replicas / self.service.mean_s if replicas > 0 else 0.0
        self.backlog = max(0.0, self.backlog + (rate_qps - capacity) * span_s)
        return self.stationary(rate_qps, replicas) + self.backlog


class ReplicaAutoscaler(Autoscaler):
    """Ray Serve's default replica autoscaler on one instance type (module docstring)."""

    def __init__(self, instance_type: str, service: ServiceTime, settings: RayServeSettings | None = None):
        self.instance_type = instance_type
        self.settings = s = settings or RayServeSettings()
        self.model = InFlightModel(service, s.max_ongoing_requests)
        self.interval_s = s.metrics_interval_s
        self.window: deque[float] = deque(maxlen=max(1, round(s.look_back_period_s / s.metrics_interval_s)))
        self._last_s: float | None = None
        self._rate = 0.0  # arrivals per second over the last observed interval
        self._span = s.metrics_interval_s
        self._rates: deque[float] = deque(maxlen=self.window.maxlen)
        self._direction = 0  # +1 wanting more replicas, -1 fewer, 0 at the target
        self._since: float | None = None  # when the current direction first held
        self.desired = 0  # Ray's desired count at the last decision (reported)
        self.in_flight = 0.0  # the averaged in-flight count of the last decision (reported)

    # ------------------------------------------------------------------ Ray's rule
    def desired_replicas(self, total_in_flight: float, running: int) -> int:
        """``replica_queue_length_autoscaling_policy`` with the scaling factors and bounds."""
        s = self.settings
        want = total_in_flight / s.target_ongoing_requests  # running x error ratio
        factor = s.upscaling_factor if want > running else s.downscaling_factor
        n = math.ceil(running + factor * (want - running))
        if math.ceil(want) < running and n == running:  # a small factor must still move down
            n -= 1
        return max(s.min_replicas, min(s.max_replicas, n))

    def equilibrium(self, rate_qps: float) -> int:
        """The smallest replica count Ray's rule keeps (does not scale up from) at a steady
        ``rate_qps``."""
        s = self.settings
        for n in range(s.min_replicas, s.max_replicas + 1):
            if self.desired_replicas(self.model.stationary(rate_qps, n), n) <= n:
                return n
        return s.max_replicas

    # ------------------------------------------------------------------ Autoscaler
    def initial_pool(self, rate_qps: float) -> dict[str, int]:
        return {self.instance_type: self.equilibrium(rate_qps)}

    def start(self, now_s: float) -> None:
        self._last_s = now_s

    def observe(self, now_s: float, arrivals: int) -> None:
        span = now_s - self._last_s if self._last_s is not None else self.settings.metrics_interval_s
        self._last_s = now_s
        if span > 0:
            self._rate, self._span = arrivals / span, span

    def decide(self, now_s: float, ready: dict[str, int], starting: dict[str, int]) -> list[Action]:
        s, t = self.settings, self.instance_type
        running = ready.get(t, 0)
        target = running + starting.get(t, 0)
        self.window.append(self.model.step(self._rate, running, self._span))
        self._rates.append(self._rate)
        self.forecast_qps = sum(self._rates) / len(self._rates)
        if running == 0:  # nothing reports yet; Ray keeps its target while replicas start
            return []
        self.in_flight = sum(self.window) / len(self.window)
        self.desired = n = self.desired_replicas(self.in_flight, running)
        direction = (n > target) - (n < target)
        if direction == 0:
            self._direction, self._since = 0, None
            return []
        if direction != self._direction or self._since is None:
            self._direction, self._since = direction, now_s
        delay = s.upscale_delay_s if direction > 0 else s.downscale_delay_s
        if now_s - self._since < delay:
            return []
        self._direction, self._since = 0, None
        if direction > 0:
            return [Action("add", t, n - target)]
        drain = min(target - n, running)  # starting replicas finish starting and serve
        return [Action("drain", t, drain)] if drain > 0 else []


class StaticAutoscaler(Autoscaler):
    """One pool all along: starts with ``config`` and never acts."""

    interval_s = 60.0

    def __init__(self, config: dict[str, int]):
        if not any(k > 0 for k in config.values()):
            raise ValueError("the static pool needs at least one instance")
        self.config = {t: int(k) for t, k in config.items() if k > 0}

    def initial_pool(self, rate_qps: float) -> dict[str, int]:
        return dict(self.config)

    def start(self, now_s: float) -> None:
        pass

    def observe(self, now_s: float, arrivals: int) -> None:
        pass

    def decide(self, now_s: float, ready: dict[str, int], starting: dict[str, int]) -> list[Action]:
        return []


def best_single_type(
    problem: PlanProblem, rate_qps: float, evaluator: Evaluator | None = None, evals: int = 1
) -> tuple[str, PlanResult]:
    """The type whose homogeneous pool reaches ``rate_qps`` at the least $/hour (higher
    QoS-throughput on a tie), with that pool: :func:`~kairos.plan.target.plan_for_rate` on the
    problem restricted to each type that can serve 99% of the queries within QoS alone."""
    best: tuple[float, float, str, PlanResult] | None = None
    for t in problem.types:
        try:
            one = PlanProblem.build(problem.catalogue, problem.model, NO_CAP, problem.qos_ms, problem.mix, [t])
            res = plan_for_rate(one, rate_qps, evaluator, evals)
        except KairosInputError:  # too slow for the QoS alone, or absurd counts at this rate
            continue
        q = res.measured_qps if res.measured_qps is not None else res.predicted_qps
        key = (res.cost_per_hour, -q, t, res)
        if best is None or key[:3] < best[:3]:
            best = key
    if best is None:
        raise KairosInputError(f"no single instance type of {problem.model!r} serves {rate_qps:g} q/s within QoS")
    return best[2], best[3]
