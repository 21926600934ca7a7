"""The elastic controller live: the gateway's twin of the simulator's ``ElasticTimers``.

Every ``interval_s`` from the first query the gateway admits, :class:`LiveScaler` tells
the controller (:class:`kairos.elastic.controller.Autoscaler`, the same object the
simulator drives) how many queries arrived since its previous decision and what the pool
holds (instances ready; instances starting, or restarting after a failure; draining ones
not counted), and applies the actions it answers exactly as
:class:`kairos.elastic.simulate.ElasticTimers` does:

- ``add`` -> :meth:`Gateway.add_instance <kairos.serve.gateway.Gateway.add_instance>`: a
  new instance index in the Dispatcher, its worker spawned now by the supervisor, serving
  from its HELLO, which comes no earlier than the type's start-up delay (emulated);
- ``drain`` -> :meth:`Gateway.drain_instance <kairos.serve.gateway.Gateway.drain_instance>`
  on the least loaded ready instances of the type (fewest queries held, then the lowest
  index): no new query, its waiting queries dispatched again, the one it runs finished
  there; its worker is stopped after that last answer.

The controller plans (a simulation per new rate), which would stall the event loop and
every query in flight: it lives in a helper process of its own (:class:`HelperDecider`,
:mod:`kairos.serve.offload`), installed there once, and each decision is a call to it. A
decision is applied when its answer arrives; a tick that comes while one is still being
planned is skipped (its arrivals are counted in the next), so that no decision is made
for a pool that the previous one is about to change.

Arrivals are the queries that reached the gateway: admitted, plus those refused with 503
(queue full) -- load that the pool did not keep up with is load all the same.

Billing: every instance from its worker's spawn to its stop (drained and done, or the
gateway's stop) by :func:`kairos.elastic.billing.instance_cost` (per second, a minimum per
instance). Figures: :meth:`LiveScaler.pool` (``/healthz``), :meth:`LiveScaler.describe`
(``/v1/info``) and :class:`ScalerCollector` (``/metrics``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from kairos.elastic.billing import BillingRule, instance_cost
from kairos.elastic.controller import Action, Autoscaler

if TYPE_CHECKING:
    from kairos.serve.gateway import Gateway

STATES = ("ready", "starting", "draining")


@dataclass
class AutoscaleSpec:
    """What ``kairos serve --autoscale`` runs with: the controller (its planner inside; the
    gateway started with its ``initial_pool``), each type's start-up delay and price."""

    controller: Autoscaler
    startup_s: dict[str, float]
    prices: dict[str, float]
    billing: BillingRule = field(default_factory=BillingRule)
    settings: dict = field(default_factory=dict)  # what to report of how it was set up (/v1/info)


@dataclass(frozen=True)
class Decision:
    """The controller's answer to one tick."""

    actions: list[Action]
    forecast_qps: float
    seconds: float  # how long it took to decide (planning included)


# ---------------------------------------------------------------------- where it decides
_INSTALLED: dict[int, Autoscaler] = {}  # in the process that decides (the helper): controller by key


def install_controller(key: int, controller: Autoscaler, now_s: float) -> int:
    """Keep ``controller`` in this process under ``key``, counting arrivals from ``now_s``."""
    controller.start(now_s)
    _INSTALLED[key] = controller
    return key


def decide_controller(
    key: int, now_s: float, arrivals: int, ready: dict[str, int], starting: dict[str, int]
) -> Decision:
    """One decision of the controller installed under ``key`` (as ElasticTimers.fire)."""
    t0 = time.perf_counter()
    c = _INSTALLED.get(key)
    if c is None:
        raise LookupError(f"no controller {key} in this process (it was restarted)")
    c.observe(now_s, arrivals)
    acts = c.decide(now_s, ready, starting)
    return Decision(list(acts), float(c.forecast_qps), time.perf_counter() - t0)


def forget_controller(key: int) -> None:
    _INSTALLED.pop(key, None)


class Decider:
    """Where the controller decides. :meth:`install` it (again after a failure), then
    :meth:`decide` calls ``done(Decision)`` -- or ``failed(reason)`` -- on the event loop."""

    async def start(self) -> None:
        raise NotImplementedError

    def install(self, controller: Autoscaler, now_s: float) -> None:
        raise NotImplementedError

    def decide(
        self,
        now_s: float,
        arrivals: int,
        ready: dict[str, int],
        starting: dict[str, int],
        done: Callable[[Decision], None],
        failed: Callable[[str], None],
    ) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The process that decides (None: the gateway's own)."""
        return None


class HelperDecider(Decider):
    """The controller in a helper process of its own (:class:`~kairos.serve.offload.Offloader`):
    installed there (pickled once), then one call per decision; calls run in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log=None):
        from kairos.serve.offload import Offloader

        self.offloader = Offloader(loop, log, log_done=False)
        self.key = id(self)

    async def start(self) -> None:
        await self.offloader.start()

    def install(self, controller: Autoscaler, now_s: float) -> None:
        self.offloader(install_controller, (self.key, controller, now_s), lambda _: None)

    def decide(self, now_s, arrivals, ready, starting, done, failed) -> None:
        self.offloader(decide_controller, (self.key, now_s, arrivals, ready, starting), done, failed)

    async def close(self) -> None:
        await self.offloader.close()

    @property
    def pid(self) -> int | None:
        return self.offloader.pid


class InlineDecider(Decider):
    """The controller in the gateway's process, answered on the next turn of the event loop:
    for tests, and planners that answer from tables."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.key = id(self)

    async def start(self) -> None:
        pass

    def install(self, controller: Autoscaler, now_s: float) -> None:
        install_controller(self.key, controller, now_s)

    def decide(self, now_s, arrivals, ready, starting, done, failed) -> None:
        try:
            d = decide_controller(self.key, now_s, arrivals, ready, starting)
        except Exception as exc:  # as the helper reports it
            self.loop.call_soon(failed, f"{type(exc).__name__}: {exc}")
            return
        self.loop.call_soon(done, d)

    async def close(self) -> None:
        forget_controller(self.key)


# ---------------------------------------------------------------------- the live driver
class LiveScaler:
    """Drives ``spec.controller`` from the gateway's event loop (module docstring).
    ``decider``: where it decides (default: :class:`HelperDecider`, made at :meth:`start`)."""

    def __init__(self, gw: Gateway, spec: AutoscaleSpec, decider: Decider | None = None):
        self.gw = gw
        self.spec = spec
        self.interval_ms = spec.controller.interval_s * 1000.0
        self.decider = decider
        self.t0_ms: float | None = None  # the controller's time 0: the first query admitted
        self.ticks = 0  # ticks so far (tick k is due at t0 + k * interval)
        self.pending = False  # a decision is being made
        self.decisions = 0
        self.skipped = 0  # ticks skipped while a decision was being made
        self.failures = 0
        self.last_arrived = 0
        self.forecast_qps = 0.0
        self.plan_s = 0.0  # how long the last decision took
        self.scale_events: list[dict] = []
        self.timeline: list[dict] = []  # per decision, as the simulator's: t_s, arrivals, forecast_qps, ready, starting
        self.touched: Counter[str] = Counter()  # instances added / drained, by action
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start where the controller decides and install it (the pool is the gateway's
        initial one); decisions begin with the first query (:meth:`begin`)."""
        if self.decider is None:
            assert self.gw.loop is not None
            self.decider = HelperDecider(self.gw.loop, self.gw.log)
        await self.decider.start()
        self.decider.install(self.spec.controller, 0.0)

    def begin(self, now_ms: float) -> None:
        """The first query arrived at ``now_ms``: the controller's clock starts (its time 0)."""
        if self.t0_ms is not None or self._closed:
            return
        self.t0_ms = now_ms
        self.gw.log.event("autoscale_started", interval_s=self.spec.controller.interval_s)
        self._schedule()

    def _schedule(self) -> None:
        assert self.t0_ms is not None and self.gw.loop is not None
        self.ticks += 1
        due = self.t0_ms + self.ticks * self.interval_ms
        self._timer = self.gw.loop.call_later(max(0.0, due - self.gw.now()) / 1000.0, self.tick)

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.decider is not None:
            await self.decider.close()

    def now_s(self, now_ms: float | None = None) -> float:
        """Seconds on the controller's clock (from the first query)."""
        now_ms = self.gw.now() if now_ms is None else now_ms
        return (now_ms - (self.t0_ms if self.t0_ms is not None else now_ms)) / 1000.0

    # ------------------------------------------------------------------ decisions
    def arrived(self) -> int:
        c = self.gw.counts
        return c["admitted"] + c["overload"]

    def tick(self) -> None:
        if self._closed or self.gw.stopping:
            return
        self._schedule()
        if self.pending:
            self.skipped += 1
            return
        now_s = self.now_s()
        arrived = self.arrived()
        arrivals = arrived - self.last_arrived
        self.last_arrived = arrived
        ready, starting = self.counts()
        self.pending = True
        assert self.decider is not None
        self.decider.decide(now_s, arrivals, ready, starting, lambda d: self.decided(now_s, arrivals, d), self._failed)

    def _failed(self, reason: str) -> None:
        """The decision was not made (the helper died or raised): install the controller
        again, counting from now, and go on at the next tick."""
        self.pending = False
        self.failures += 1
        self.gw.log.event("autoscale_decision_failed", level="warning", reason=reason)
        if not self._closed and self.decider is not None:
            self.decider.install(self.spec.controller, self.now_s())

    def decided(self, t_s: float, arrivals: int, d: Decision) -> None:
        """The decision made at ``t_s`` arrived: apply it now."""
        self.pending = False
        if self._closed or self.gw.stopping:
            return
        self.decisions += 1
        self.forecast_qps = d.forecast_qps
        self.plan_s = d.seconds
        for a in d.actions:
            self.apply(a, t_s)
        ready, starting = self.counts()
        self.timeline.append(
            {
                "t_s": round(t_s, 3),
                "arrivals": arrivals,
                "forecast_qps": round(d.forecast_qps, 3),
                "ready": ready,
                "starting": starting,
            }
        )

    def apply(self, a: Action, t_s: float) -> list[int]:
        """Carry out one action (as ElasticTimers._apply); returns the instances it touched."""
        gw = self.gw
        now_s = self.now_s()
        touched: list[int] = []
        if a.kind == "add":
            for _ in range(a.count):
                touched.append(gw.add_instance(a.instance_type, self.spec.startup_s.get(a.instance_type, 0.0)).index)
        elif a.kind == "drain":
            tid = gw.profile.type_index(a.instance_type)
            touched = [j for j in gw.dispatcher.least_loaded(tid, a.count) if gw.drain_instance(j)]
        else:
            raise ValueError(f"unknown action {a.kind!r}")
        self.touched[a.kind] += len(touched)
        ev: dict[str, Any] = {
            "t_s": round(t_s, 3),
            "applied_s": round(now_s, 3),
            "action": a.kind,
            "type": a.instance_type,
            "count": a.count,
            "instances": [gw.instance_names[j] for j in touched],
        }
        self.scale_events.append(ev)
        gw.log.event("scale", **ev, forecast_qps=round(self.forecast_qps, 3))
        return touched

    # ------------------------------------------------------------------ the pool and its cost
    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(ready, starting) instances per type, as the controller counts them (the Dispatcher's)."""
        names = self.gw.profile.types
        ready, starting = self.gw.dispatcher.counts()
        return {names[t]: k for t, k in ready.items()}, {names[t]: k for t, k in starting.items()}

    def pool(self) -> dict[str, dict[str, int]]:
        """Instances per type: ready, starting (or restarting) and draining."""
        out: dict[str, dict[str, int]] = {}
        for h in self.gw.workers:
            state = {"up": "ready", "starting": "starting", "down": "starting", "draining": "draining"}.get(h.state)
            if state is not None:
                row = out.setdefault(h.type_name, dict.fromkeys(STATES, 0))
                row[state] += 1
        return out

    def lifetimes(self) -> list[tuple[str, float, float]]:
        """(type, launched, stopped or now) of every instance spawned, in seconds of the
        gateway's clock."""
        gw = self.gw
        now = gw.now()
        return [
            (gw.instance_types[j], launched / 1000.0, (stop if stop is not None else now) / 1000.0)
            for j, (launched, stop) in enumerate(zip(gw.launched_ms, gw.stopped_ms))
            if launched is not None
        ]

    def cost_usd(self) -> float:
        """Dollars billed so far: every instance from its spawn to its stop (or now)."""
        p, rule = self.spec.prices, self.spec.billing
        return sum(instance_cost(a, b, p[t], rule) for t, a, b in self.lifetimes())

    def instance_seconds(self) -> float:
        return sum(b - a for _, a, b in self.lifetimes())

    def instances(self) -> list[dict]:
        """Every instance spawned: its type, state and times on the controller's clock
        (launch before the first query is negative)."""
        gw = self.gw
        t0 = self.t0_ms if self.t0_ms is not None else 0.0

        def s(ms):
            return None if ms is None else round((ms - t0) / 1000.0, 3)

        return [
            {
                "instance": gw.instance_names[j],
                "type": gw.instance_types[j],
                "state": gw.workers[j].state,
                "pid": gw.workers[j].pid,
                "launched_s": s(gw.launched_ms[j]),
                "ready_s": s(gw.ready_ms[j]),
                "stopped_s": s(gw.stopped_ms[j]),
            }
            for j in range(gw.n)
        ]

    def describe(self) -> dict:
        """The settings, the pool, its cost so far and every scale event (/v1/info)."""
        return {
            "settings": self.spec.settings,
            "startup_s": self.spec.startup_s,
            "interval_s": self.spec.controller.interval_s,
            "started": self.t0_ms is not None,
            "now_s": round(self.now_s(), 3),
            "pool": self.pool(),
            "forecast_qps": round(self.forecast_qps, 3),
            "decisions": self.decisions,
            "decisions_skipped": self.skipped,
            "decisions_failed": self.failures,
            "instances_launched": sum(1 for m in self.gw.launched_ms if m is not None),
            "instances_stopped": sum(1 for m in self.gw.stopped_ms if m is not None),
            "cost_usd": round(self.cost_usd(), 6),
            "instance_seconds": round(self.instance_seconds(), 3),
            "scale_ups": sum(1 for e in self.scale_events if e["action"] == "add"),
            "scale_downs": sum(1 for e in self.scale_events if e["action"] == "drain"),
            "scale_events": self.scale_events,
            "timeline": self.timeline,
            "instances": self.instances(),
            "decider_pid": self.decider.pid if self.decider is not None else None,
        }

    def final_figures(self) -> dict:
        """What the gateway's stop event reports of the elastic pool."""
        return {
            "cost_usd": round(self.cost_usd(), 6),
            "instance_seconds": round(self.instance_seconds(), 3),
            "scale_events": len(self.scale_events),
            "instances_launched": sum(1 for m in self.gw.launched_ms if m is not None),
        }


class ScalerCollector:
    """The elastic pool's figures at scrape time (registered by GatewayMetrics)."""

    def __init__(self, scaler: LiveScaler):
        self.s = scaler

    def collect(self):
        s, gw = self.s, self.s.gw
        pool = GaugeMetricFamily(
            "kairos_pool_instances",
            "Instances of the elastic pool by type and state (ready, starting or restarting, draining)",
            labels=["instance_type", "state"],
        )
        for t, row in sorted(s.pool().items()):
            for state in STATES:
                pool.add_metric([t, state], row[state])
        yield pool
        launched = CounterMetricFamily(
            "kairos_instances_launched",
            "Instances launched (workers spawned for a new instance of the pool), by type",
            labels=["instance_type"],
        )
        stopped = CounterMetricFamily(
            "kairos_instances_stopped", "Instances stopped after a drain, by type", labels=["instance_type"]
        )
        n_l: Counter[str] = Counter()
        n_s: Counter[str] = Counter()
        for j, t in enumerate(gw.instance_types):
            n_l[t] += gw.launched_ms[j] is not None
            n_s[t] += gw.stopped_ms[j] is not None
        for t in sorted(n_l):
            launched.add_metric([t], n_l[t])
            stopped.add_metric([t], n_s[t])
        yield launched
        yield stopped
        cost = CounterMetricFamily(
            "kairos_cost_dollars",
            "Dollars billed for the pool so far (each instance from "
            "launch to stop, per second, with the billing minimum)",
        )
        cost.add_metric([], s.cost_usd())
        yield cost
        isec = CounterMetricFamily("kairos_instance_seconds", "Instance-seconds rented so far (launch to stop)")
        isec.add_metric([], s.instance_seconds())
        yield isec
        ev = CounterMetricFamily(
            "kairos_scale_events", "The controller's actions applied, by action (add, drain)", labels=["action"]
        )
        inst = CounterMetricFamily(
            "kairos_scale_instances", "Instances added or drained by the controller", labels=["action"]
        )
        by_kind = Counter(e["action"] for e in s.scale_events)
        for kind in ("add", "drain"):
            ev.add_metric([kind], by_kind[kind])
            inst.add_metric([kind], s.touched[kind])
        yield ev
        yield inst
        fc = GaugeMetricFamily(
            "kairos_autoscale_forecast_qps", "The rate (q/s) the controller's last decision forecast, before headroom"
        )
        fc.add_metric([], s.forecast_qps)
        yield fc
        dec = CounterMetricFamily(
            "kairos_autoscale_decisions",
            "The controller's decisions, by outcome (made; "
            "skipped: a tick while the previous one was still being planned; failed)",
            labels=["outcome"],
        )
        dec.add_metric(["made"], s.decisions)
        dec.add_metric(["skipped"], s.skipped)
        dec.add_metric(["failed"], s.failures)
        yield dec
        ps = GaugeMetricFamily(
            "kairos_autoscale_decision_seconds",
            "How long the last decision took (planning included), in the process where the controller decides",
        )
        ps.add_metric([], s.plan_s)
        yield ps
