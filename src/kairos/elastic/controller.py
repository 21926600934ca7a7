"""The elastic controller: observed arrivals in, add/drain actions out.

Every ``interval_s`` the driver (the simulator, the gateway) reports how many queries
arrived since the last call and asks for a decision. The controller

1. forecasts the rate over the time a new instance needs to start: the highest rate of
   the last ``window_s`` (plus, with ``trend``, when the load has risen at each of the
   last three intervals by more than its Poisson noise, its trend over that horizon);
2. asks its :class:`PoolPlanner` for the cheapest pool that serves that forecast with
   ``headroom`` to spare;
3. turns the difference with the pool it has (ready + starting) into actions:
   - scale up at once: start the instances the target has and the pool lacks;
   - scale down with hysteresis: only when a cheaper target (by ``down_margin`` at
     least) has held for ``scale_down_after_s`` and nothing is starting; then the
     surplus over the dearest target of that period is drained (it takes no new query,
     finishes what it has, then stops), so a drain never goes below what the recent
     load needed.
A change of mix (other types) is made before it is broken: the new instances start
first, the old ones are drained once the target holds without them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class PoolPlanner:
    """What the controller asks of a planner (``kairos.plan``'s target-rate planner in the
    product; a table in tests)."""

    def prices(self) -> dict[str, float]:
        """$/hour of every instance type the planner may use."""
        raise NotImplementedError

    def cheapest_for(self, rate_qps: float) -> dict[str, int]:
        """The cheapest configuration whose QoS-throughput is at least ``rate_qps``."""
        raise NotImplementedError

    def capacity(self, config: dict[str, int]) -> float:
        """The QoS-throughput (q/s) the planner predicts for ``config``."""
        raise NotImplementedError

    def cost(self, config: dict[str, int]) -> float:
        p = self.prices()
        return sum(p[t] * k for t, k in config.items())


@dataclass(frozen=True)
class ControllerSettings:
    interval_s: float = 15.0  # how often the controller decides
    window_s: float = 120.0  # the forecast's level: the highest rate over this past window
    # plan for the forecast x (1 + headroom): the least of 0.15/0.25/0.30 that kept 99% of
    # rm2's queries within QoS over a 3-hour slice of the Azure week at a 120 s start-up
    # (docs/elastic.md, "Defaults")
    headroom: float = 0.30
    scale_down_after_s: float = 300.0  # a cheaper target must hold this long before a drain
    down_margin: float = 0.10  # ... and be at least this much cheaper than the pool
    min_rate_qps: float = 0.0  # never plan for less (keeps a floor pool up through lulls)
    # add a rising load's trend over the start-up horizon to the forecast. Off by default:
    # in the Azure week the hourly mean changes by well under 1% over a 2-minute start-up,
    # while per-minute steps read as steep ramps over 15 s intervals (docs/elastic.md)
    trend: bool = False

    def __post_init__(self):
        for name in ("interval_s", "window_s", "scale_down_after_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("headroom", "down_margin", "min_rate_qps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True)
class Action:
    kind: str  # "add" or "drain"
    instance_type: str
    count: int


class Autoscaler:
    """What a driver (the simulator, the gateway) asks of an autoscaler: it is told when
    counting starts and how many queries arrived at each decision, and answers with
    actions for the pool it describes. :class:`Controller` is Kairos's; baselines (one
    type, a replica count) implement the same three methods."""

    interval_s: float = 15.0  # how often the driver asks for a decision
    forecast_qps: float = 0.0  # the rate the last decision planned for (reported)

    def start(self, now_s: float) -> None:
        raise NotImplementedError

    def observe(self, now_s: float, arrivals: int) -> None:
        raise NotImplementedError

    def decide(self, now_s: float, ready: dict[str, int], starting: dict[str, int]) -> list[Action]:
        raise NotImplementedError

    def initial_pool(self, rate_qps: float) -> dict[str, int]:
        """The pool to begin with at a known starting rate."""
        raise NotImplementedError


class Controller(Autoscaler):
    """One object, used unchanged by the simulator and the gateway (see module docstring)."""

    def __init__(self, planner: PoolPlanner, startup_s: dict[str, float], settings: ControllerSettings | None = None):
        self.planner = planner
        self.settings = settings or ControllerSettings()
        self.startup_s = dict(startup_s)
        self.horizon_s = max(self.startup_s.values(), default=0.0) + self.settings.interval_s
        keep = max(2, math.ceil(self.settings.window_s / self.settings.interval_s))
        self.history: deque[tuple[float, float]] = deque(maxlen=keep)  # (time s, rate q/s)
        self._last_s: float | None = None
        self._low_since: float | None = None  # when a cheaper target first held
        self._hold_target: dict[str, int] = {}  # the dearest target since then: what a drain keeps
        self.target: dict[str, int] = {}
        self.forecast_qps = 0.0
        self.interval_s = self.settings.interval_s

    def initial_pool(self, rate_qps: float) -> dict[str, int]:
        return self.planner.cheapest_for(max(rate_qps * (1.0 + self.settings.headroom), self.settings.min_rate_qps))

    def start(self, now_s: float) -> None:
        """Counting starts now (the first :meth:`observe` covers the time since)."""
        self._last_s = now_s

    def observe(self, now_s: float, arrivals: int) -> None:
        """``arrivals`` queries came in since the previous call (or since :meth:`start`)."""
        span = now_s - self._last_s if self._last_s is not None else self.settings.interval_s
        self._last_s = now_s
        if span > 0:
            self.history.append((now_s, arrivals / span))

    def forecast(self) -> float:
        """Rate (q/s) to plan for over the next start-up horizon, before headroom."""
        if not self.history:
            return 0.0
        level = max(r for _, r in self.history)
        slope = 0.0
        last = [r for _, r in list(self.history)[-3:]]
        # a ramp, not noise: rising at each of the last three intervals, by more than three
        # standard deviations of the Poisson noise of two intervals' counts at that rate
        noise = 3.0 * math.sqrt(2.0 * max(last[-1], 1e-9) / self.settings.interval_s) if last else 0.0
        if self.settings.trend and len(last) == 3 and last[0] < last[1] < last[2] and last[2] - last[0] > noise:
            ts = [t for t, _ in self.history]
            rs = [r for _, r in self.history]
            tm, rm = sum(ts) / len(ts), sum(rs) / len(rs)
            den = sum((t - tm) ** 2 for t in ts)
            if den > 0:
                slope = sum((t - tm) * (r - rm) for t, r in zip(ts, rs)) / den
        return level + max(0.0, slope) * self.horizon_s

    def decide(self, now_s: float, ready: dict[str, int], starting: dict[str, int]) -> list[Action]:
        """Actions for a pool with ``ready`` instances per type serving and ``starting`` on
        their way (draining ones not counted)."""
        s = self.settings
        self.forecast_qps = self.forecast()
        want = max(self.forecast_qps * (1.0 + s.headroom), s.min_rate_qps)
        have = {t: ready.get(t, 0) + starting.get(t, 0) for t in set(ready) | set(starting)}
        if self.planner.capacity(have) < want:  # short (or about to be): scale up now
            self._low_since = None
            self.target = self.planner.cheapest_for(want)
            return [Action("add", t, k - have.get(t, 0)) for t, k in sorted(self.target.items()) if k > have.get(t, 0)]
        target = self.planner.cheapest_for(want)
        if self.planner.cost(target) > (1.0 - s.down_margin) * self.planner.cost(have):
            self._low_since = None  # not worth a change
            return []
        if self._low_since is None or self.planner.cost(target) > self.planner.cost(self._hold_target):
            if self._low_since is None:
                self._low_since = now_s
            self._hold_target = target  # the dearest target while the load has stayed low
        if now_s - self._low_since < s.scale_down_after_s or any(starting.values()):
            return []
        target = self._hold_target
        self.target = target
        adds = [Action("add", t, k - have.get(t, 0)) for t, k in sorted(target.items()) if k > have.get(t, 0)]
        if adds:  # a new mix: start it first; the old instances are drained at a later decision
            return adds
        self._low_since = None
        return [Action("drain", t, k - target.get(t, 0)) for t, k in sorted(have.items()) if k > target.get(t, 0)]
