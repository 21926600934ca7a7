"""Prometheus metrics of the gateway (exposed at ``/metrics``).

- ``kairos_requests_total{code}``: HTTP answers to /v1/infer by status code, and the 404/405
  answers to unknown routes or methods;
- ``kairos_rejected_total{reason}``: queries refused (``overload``: bounded queue full,
  503; ``bad_request``: 4xx);
- ``kairos_queries_total{instance,qos}``: completed queries per instance, ``qos`` =
  ``met`` or ``missed`` (end-to-end latency in the gateway vs the QoS target);
- ``kairos_latency_seconds``, ``kairos_wait_seconds`` (histograms, gateway-side),
  ``kairos_service_seconds{instance_type}`` (as reported by the workers);
- ``kairos_queue_length`` (central queue), ``kairos_instance_queue_length{instance}``
  (queries held by an instance: running + local queue);
- ``kairos_instance_busy_seconds_total{instance}`` (rate() of it is utilisation) and
  ``kairos_instance_utilisation{instance}`` (busy fraction since the previous scrape);
- ``kairos_instance_up{instance}``, ``kairos_worker_restarts_total{instance}``,
  ``kairos_redispatched_total``, ``kairos_sent_ahead_total`` (queries sent to a busy
  instance's worker to start when it is free);
- ``kairos_event_loop_lag_seconds``: how late a 5 ms timer fires in the gateway's loop;
- with ``--autoscale`` (:class:`kairos.serve.autoscale.ScalerCollector`):
  ``kairos_pool_instances{instance_type,state}`` (ready, starting, draining),
  ``kairos_instances_launched_total{instance_type}``, ``kairos_instances_stopped_total{instance_type}``,
  ``kairos_cost_dollars_total`` (billed so far), ``kairos_instance_seconds_total``,
  ``kairos_scale_events_total{action}``, ``kairos_scale_instances_total{action}``,
  ``kairos_autoscale_forecast_qps``, ``kairos_autoscale_decisions_total{outcome}``,
  ``kairos_autoscale_decision_seconds``.

Instances added to an elastic pool get their series when they join; a stopped one keeps
its counters (``kairos_instance_up`` 0).
"""

from __future__ import annotations

import bisect
import time

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

LAG_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
LAT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.035,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.35,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)


class GatewayMetrics:
    def __init__(self, gateway):
        self.gw = gateway
        disable_created_metrics()  # no *_created series: less noise per scrape
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "kairos_requests",
            "HTTP answers to /v1/infer by status code (and 404/405 to unknown routes or methods)",
            ["code"],
            registry=r,
        )
        self.rejected = Counter("kairos_rejected", "Queries refused, by reason", ["reason"], registry=r)
        # hot-path histograms and QoS counters are plain Python lists, turned into Prometheus
        # families only at scrape time (prometheus_client's locking objects
        # cost more per query than the rest of the metrics)
        self.latency = _Hist()
        self.wait = _Hist()
        self.service = {t: _Hist() for t in dict.fromkeys(gateway.instance_types)}
        self.qos_counts = [[0, 0] for _ in gateway.instance_names]  # [met, missed] per instance
        self.loop_lag = _Hist(LAG_BUCKETS)
        self.redispatched = Counter("kairos_redispatched", "Queries re-dispatched after a worker failed", registry=r)
        names = gateway.instance_names
        self._svc = [self.service[t] for t in gateway.instance_types]
        self._codes: dict[int, Counter] = {}
        self._last = (time.perf_counter(), [0.0] * len(names))
        r.register(_StateCollector(self))
        if gateway.scaler is not None:
            from kairos.serve.autoscale import ScalerCollector

            r.register(ScalerCollector(gateway.scaler))

    def add_instance(self, j: int) -> None:
        """Instance ``j`` joined the pool (an elastic pool grows)."""
        t = self.gw.instance_types[j]
        if t not in self.service:
            self.service[t] = _Hist()
        self.qos_counts.append([0, 0])
        self._svc.append(self.service[t])

    def code(self, status: int) -> None:
        c = self._codes.get(status)
        if c is None:
            c = self._codes[status] = self.requests.labels(str(status))
        c.inc()

    def completed(self, j: int, latency_ms: float, wait_ms: float, service_ms: float, met: bool) -> None:
        self.qos_counts[j][0 if met else 1] += 1
        self.latency.observe(latency_ms / 1000.0)
        self.wait.observe(wait_ms / 1000.0)
        self._svc[j].observe(service_ms / 1000.0)


class _Hist:
    """Cumulative-bucket histogram without locks (the gateway is one event loop)."""

    __slots__ = ("counts", "total", "n", "buckets")

    def __init__(self, buckets=LAT_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, x: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, x)] += 1
        self.total += x
        self.n += 1

    def family(self, name: str, doc: str, labels=None):
        fam = HistogramMetricFamily(name, doc, labels=list(labels or {}))
        cum, acc = [], 0
        for le, c in zip([*map(str, self.buckets), "+Inf"], self.counts):
            acc += c
            cum.append((le, acc))
        fam.add_metric(list((labels or {}).values()), cum, self.total)
        return fam


class _StateCollector:
    """Gauges computed from the gateway's state at scrape time."""

    def __init__(self, m: GatewayMetrics):
        self.m = m

    def collect(self):
        gw = self.m.gw
        names = gw.instance_names
        busy = gw.busy_seconds()
        now = time.perf_counter()
        t_prev, b_prev = self.m._last
        dt = max(now - t_prev, 1e-9)
        self.m._last = (now, busy)
        q = GaugeMetricFamily("kairos_queue_length", "Queries waiting in the central queue")
        q.add_metric([], len(gw.queue))
        yield q
        iq = GaugeMetricFamily(
            "kairos_instance_queue_length", "Queries held by an instance (running + local)", labels=["instance"]
        )
        up = GaugeMetricFamily("kairos_instance_up", "1 if the instance's worker is up", labels=["instance"])
        util = GaugeMetricFamily(
            "kairos_instance_utilisation", "Busy fraction since the previous scrape", labels=["instance"]
        )
        bs = CounterMetricFamily(
            "kairos_instance_busy_seconds", "Seconds the instance spent serving", labels=["instance"]
        )
        rs = CounterMetricFamily("kairos_worker_restarts", "Worker restarts after a death or hang", labels=["instance"])
        for j, nm in enumerate(names):
            iq.add_metric([nm], gw.pool.held[j] if gw.pool.up[j] else 0)
            up.add_metric([nm], 1 if gw.pool.up[j] else 0)
            util.add_metric([nm], min(1.0, max(0.0, (busy[j] - (b_prev[j] if j < len(b_prev) else 0.0)) / dt)))
            bs.add_metric([nm], busy[j])
            rs.add_metric([nm], gw.workers[j].restarts)
        yield from (iq, up, util, bs, rs)
        qc = CounterMetricFamily(
            "kairos_queries", "Completed queries per instance and QoS outcome", labels=["instance", "qos"]
        )
        for nm, (met, missed) in zip(names, self.m.qos_counts):
            qc.add_metric([nm, "met"], met)
            qc.add_metric([nm, "missed"], missed)
        yield qc
        ahead = CounterMetricFamily(
            "kairos_sent_ahead",
            "Queries sent to a busy instance's worker, to start the "
            "moment it is free (no gateway round trip in between)",
        )
        ahead.add_metric([], gw.counts["sent_ahead"])
        yield ahead
        yield self.m.latency.family(
            "kairos_latency_seconds", "End-to-end latency in the gateway (wait + service + transport)"
        )
        yield self.m.wait.family("kairos_wait_seconds", "Queueing wait in the gateway")
        yield self.m.loop_lag.family(
            "kairos_event_loop_lag_seconds",
            "How late a 5 ms timer fires in the gateway's event loop (a busy or starved loop delays every query)",
        )
        svc = None
        for t, h in self.m.service.items():
            f = h.family("kairos_service_seconds", "Service time reported by workers", {"instance_type": t})
            if svc is None:
                svc = f
            else:
                svc.samples.extend(f.samples)
        if svc is not None:
            yield svc
