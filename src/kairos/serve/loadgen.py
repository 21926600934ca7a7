"""Open-loop load generator for the gateway (library behind ``kairos loadgen``).

Open loop: all send times are drawn in advance from a Poisson process (seeded, the
same unit-rate pattern scaled to every rate, as in the simulator) and each query is
sent at its time whatever happened to earlier ones, on an idle keep-alive connection (a
new one if none is idle), its answer recorded by a callback as it is read: a slow answer
never delays the next send (no coordinated omission). A query's latency is measured
from its *scheduled* send time, so a client that falls behind is charged for it
(``max_send_lag_ms`` reports how far behind it fell).

Accounting: ``sent`` = queries sent; ``completed`` = 200 answers; ``errors`` = any other
HTTP answer (503 overload, 4xx, 5xx) or a transport error; ``lost`` = sent - completed -
errors = queries with no answer at all when the run's drain timeout expired (must be 0).
``qos_met_fraction`` = completed within QoS / sent (errors and lost count as misses).

A rate file (:func:`run_rates`): the send times are a :class:`~kairos.elastic.rates.RateTrace`'s
Poisson arrivals (:meth:`~kairos.elastic.rates.RateTrace.arrivals_s`, the simulator's), each
step played in ``step_s`` seconds of real time (:meth:`kairos.elastic.rates.RateTrace.compressed`); the same figures, plus
per step the QoS-met fraction of the queries sent in it.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kairos.elastic.rates import RateTrace
from kairos.errors import KairosInputError
from kairos.serve.httpclient import HttpClient
from kairos.workload.arrivals import poisson_unit_times
from kairos.workload.sizes import SizeMix

QOS_TARGET_FRACTION = 0.99

_loads: Callable[[bytes], Any]
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    _loads = json.loads


def use_uvloop() -> None:
    """Run the generator on uvloop when installed (less CPU per request)."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


@dataclass
class LoadResult:
    url: str
    offered_qps: float
    duration_s: float
    qos_ms: float
    sent: int = 0
    completed: int = 0
    errors: int = 0
    lost: int = 0
    error_kinds: dict = field(default_factory=dict)
    achieved_qps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    qos_met_fraction: float = 0.0
    passed: bool = False
    max_send_lag_ms: float = 0.0
    client_overhead_p50_ms: float | None = None
    client_overhead_p99_ms: float | None = None
    gateway_overhead_p50_ms: float | None = None
    gateway_overhead_p99_ms: float | None = None
    # from an answer's arrival on this machine (its latency's end) to the generator reading
    # it, and the QoS-met fraction had latencies ended there (the measure before kernel
    # receive times; see kairos.serve.httpclient)
    read_lag_p50_ms: float | None = None
    read_lag_p99_ms: float | None = None
    qos_met_fraction_at_read: float = 0.0
    served_by: dict = field(default_factory=dict)
    # per-query arrays, for tests and benchmarks (not printed)
    records: dict = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("records")
        return d


def _pct(x: np.ndarray, p: float) -> float | None:
    return round(float(np.percentile(x, p, method="higher")), 3) if x.size else None


def _too_large(largest: int, max_size: int) -> KairosInputError:
    return KairosInputError(
        f"--workload: sizes up to {largest} exceed the gateway's largest size {max_size}; use sizes <= {max_size}"
    )


def check_mix_fits(mix: SizeMix, max_size: int | None, n: int = 200_000, seed: int = 12345) -> None:
    """A KairosInputError if ``mix`` has sizes above the gateway's ``max_size`` (which it would
    refuse): checked on a large fixed sample, so that the answer does not depend on the run's seed."""
    if max_size is None:
        return
    largest = int(mix.sample(n, seed).max())
    if largest > max_size:
        raise _too_large(largest, int(max_size))


def schedule(qps: float, duration_s: float, mix: SizeMix, seed: int, max_size: int | None = None):
    """Send times (s from the start) and sizes of an open-loop Poisson run; a KairosInputError
    if a size is above ``max_size`` (never capped: the run would not be the workload asked for)."""
    if not qps > 0:
        raise ValueError("qps must be > 0")
    rng = np.random.default_rng(seed)
    n = int(qps * duration_s * 1.3 + 20 + 6 * math.sqrt(qps * duration_s))
    t = poisson_unit_times(n, rng) / 1000.0 / qps
    t = t[t < duration_s]
    sizes = mix.sample(len(t), seed + 1)
    if max_size is not None and len(sizes) and sizes.max() > max_size:
        raise _too_large(int(sizes.max()), int(max_size))
    return t, sizes


def warm_connections(qps: float) -> int:
    """Connections opened before a run: 100 ms worth of arrivals, 8 to 256."""
    return int(min(256, max(8, math.ceil(0.1 * qps))))


async def fetch_info(client: HttpClient) -> dict:
    status, body = await client.request("GET", "/v1/info")
    if status != 200:
        raise ConnectionError(f"GET /v1/info answered {status}")
    return _loads(body)


async def run_load(
    url: str,
    qps: float,
    duration_s: float,
    mix: SizeMix,
    seed: int = 0,
    qos_ms: float | None = None,
    drain_timeout_s: float = 30.0,
    client: HttpClient | None = None,
    sizes=None,
    times=None,
) -> LoadResult:
    """One open-loop run at ``qps`` for ``duration_s`` seconds against a gateway at ``url``."""
    own = client is None
    if client is None:
        client = HttpClient(url)
    try:
        info = await fetch_info(client)
        qos = float(qos_ms if qos_ms is not None else info["qos_ms"])
        if times is None:
            check_mix_fits(mix, info.get("max_size"))
            times, sizes = schedule(qps, duration_s, mix, seed, info.get("max_size"))
        await client.warm(warm_connections(qps))
        return await _run(client, url, qps, duration_s, qos, times, sizes, drain_timeout_s)
    finally:
        if own:
            client.close()


async def _run(client, url, qps, duration_s, qos, times, sizes, drain_timeout_s) -> LoadResult:
    loop = asyncio.get_running_loop()
    # every timestamp from perf_counter: uvloop's loop.time() is in whole milliseconds,
    # read once per loop iteration, which would bias latencies low by up to a millisecond
    clock = time.perf_counter
    n = len(times)
    lat = np.full(n, np.nan)
    wait = np.full(n, np.nan)
    svc = np.full(n, np.nan)
    gw_lat = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.int32)
    inst = np.full(n, -1, dtype=np.int32)
    sent_at = np.full(n, np.nan)  # ms after the scheduled time that the request was written
    read_lag = np.full(n, np.nan)  # ms from the answer's arrival to the generator reading it
    attempts = np.zeros(n, dtype=np.int32)
    served: Counter[str] = Counter()
    kinds: Counter = Counter()
    bodies = [b'{"size":%d}' % int(s) for s in sizes]
    max_lag = 0.0

    pending = [0]  # requests sent and not yet answered
    drained = loop.create_future()  # set when the last answer is in after the last send
    scheduling = [True]
    counting = [True]  # False after the drain timeout: later answers change nothing

    def settle() -> None:
        pending[0] -= 1
        if not pending[0] and not scheduling[0] and not drained.done():
            drained.set_result(None)

    # answered from the client's protocol callbacks (no task, no future per query: the
    # generator's CPU per query is part of what it measures on a small machine)
    def answered(i: int, t_sched: float, t_send: float, st: int, data: bytes, t: float) -> None:
        # t: when the answer reached this machine (kernel receive time, see httpclient)
        if counting[0] and status[i] == 0:
            read_lag[i] = (clock() - t) * 1000.0
            if st == 200:
                try:
                    d = _loads(data)
                    wait[i], svc[i], gw_lat[i] = d["wait_ms"], d["service_ms"], d["gateway_latency_ms"]
                    name, inst[i], attempts[i] = d["instance"], d["instance_index"], d["attempts"]
                except (ValueError, KeyError, TypeError) as exc:  # not a gateway's answer: an error
                    status[i] = -1
                    kinds["bad answer: " + type(exc).__name__] += 1
                    settle()
                    return
                lat[i] = (t - min(t_sched, t_send)) * 1000.0  # a send a little early is not a head start
                served[name] += 1
            else:
                kinds[str(st)] += 1
            status[i] = st
            settle()

    def failed(i: int, exc: BaseException) -> None:  # connection refused/reset: an error, not a loss
        if counting[0] and status[i] == 0:
            status[i] = -1
            kinds[type(exc).__name__] += 1
            settle()

    def send(i: int, t_sched: float) -> None:
        t_send = clock()
        sent_at[i] = (t_send - t_sched) * 1000.0
        pending[0] += 1
        client.send(
            "POST",
            "/v1/infer",
            bodies[i],
            lambda st, data, t: answered(i, t_sched, t_send, st, data, t),
            lambda exc: failed(i, exc),
        )

    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way
    # and no collection during the run: the run's records pile up, and a full collection
    # over them stalls the loop for milliseconds -- a send lag and a latency spike on every
    # query in flight. Reference counting still frees all but cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    sent = 0
    try:
        start = clock() + 0.02
        for i in range(n):
            target = start + float(times[i])
            d = target - clock()
            while d > 0.0005:  # the loop's timers round to the millisecond: sleep again if woken early
                await asyncio.sleep(d)
                d = target - clock()
            lag = clock() - target
            if lag > max_lag:
                max_lag = lag
            send(i, target)
            sent += 1
        scheduling[0] = False
        if pending[0]:
            try:
                await asyncio.wait_for(asyncio.shield(drained), timeout=drain_timeout_s)
            except asyncio.TimeoutError:
                pass  # what is still unanswered counts as lost
        counting[0] = False
    finally:
        if was_enabled:
            gc.enable()
    end = clock()
    ok = status == 200
    completed = int(ok.sum())
    errors = int(((status != 200) & (status != 0)).sum())
    l_ok = lat[ok]
    finished = start + np.nanmax(np.where(ok, times + lat / 1000.0, np.nan)) if completed else end
    span = max(duration_s, float(finished - start)) if completed else duration_s
    met = int((l_ok <= qos).sum())
    met_read = int(((l_ok + read_lag[ok]) <= qos).sum())
    # per query, beyond waiting and service: from the actual send (the generator's lag is
    # not the gateway's) to the answer; and inside the gateway (dispatch, transport)
    client_all = lat - np.maximum(sent_at, 0.0) - wait - svc
    gw_all = gw_lat - wait - svc
    client_ovh, gw_ovh = client_all[ok], gw_all[ok]
    res = LoadResult(
        url=url,
        offered_qps=qps,
        duration_s=duration_s,
        qos_ms=qos,
        sent=sent,
        completed=completed,
        errors=errors,
        lost=sent - completed - errors,
        error_kinds=dict(kinds),
        achieved_qps=round(completed / span, 3),
        p50_ms=_pct(l_ok, 50),
        p99_ms=_pct(l_ok, 99),
        p999_ms=_pct(l_ok, 99.9),
        qos_met_fraction=round(met / sent, 5) if sent else 0.0,
        max_send_lag_ms=round(max_lag * 1000.0, 3),
        client_overhead_p50_ms=_pct(client_ovh, 50),
        client_overhead_p99_ms=_pct(client_ovh, 99),
        gateway_overhead_p50_ms=_pct(gw_ovh, 50),
        gateway_overhead_p99_ms=_pct(gw_ovh, 99),
        read_lag_p50_ms=_pct(read_lag[ok], 50),
        read_lag_p99_ms=_pct(read_lag[ok], 99),
        qos_met_fraction_at_read=round(met_read / sent, 5) if sent else 0.0,
        served_by=dict(sorted(served.items())),
        # start_s: time.perf_counter() at send_s = 0 (on Linux CLOCK_MONOTONIC, the same in
        # every process of the machine: lines up with other processes' timestamps)
        records={
            "start_s": start,
            "send_s": np.asarray(times),
            "latency_ms": lat,
            "wait_ms": wait,
            "service_ms": svc,
            "gateway_latency_ms": gw_lat,
            "status": status,
            "instance": inst,
            "attempts": attempts,
            "send_lag_ms": sent_at,
            "read_lag_ms": read_lag,
            "client_overhead_ms": client_all,
            "gateway_overhead_ms": gw_all,
        },
    )
    res.passed = res.lost == 0 and res.qos_met_fraction >= QOS_TARGET_FRACTION
    return res


def per_step(res: LoadResult, step_s: float, steps: int, rates=None) -> list[dict]:
    """Per step of a rate replay: the queries sent in it, answered, and the share of them
    within QoS (errors and lost count as misses; None for a step with nothing sent)."""
    r = res.records
    k = np.minimum((np.asarray(r["send_s"]) // step_s).astype(np.int64), steps - 1)
    ok = r["status"] == 200
    met = ok & (np.nan_to_num(r["latency_ms"], nan=np.inf) <= res.qos_ms)
    sent = np.bincount(k, minlength=steps)
    done = np.bincount(k, weights=ok, minlength=steps)
    within = np.bincount(k, weights=met, minlength=steps)
    out = []
    for i in range(steps):
        row = {
            "step": i,
            "sent": int(sent[i]),
            "completed": int(done[i]),
            "qos_met_fraction": round(float(within[i] / sent[i]), 5) if sent[i] else None,
        }
        if rates is not None:
            row["offered_qps"] = round(float(rates[i]), 3)
        out.append(row)
    return out


def step_summary(steps: list[dict]) -> dict:
    """The share of steps (with queries) at >= 99% within QoS, and the worst step's share."""
    fr = [s["qos_met_fraction"] for s in steps if s["qos_met_fraction"] is not None]
    return {
        "steps": len(steps),
        "steps_meeting_qos_fraction": round(sum(f >= QOS_TARGET_FRACTION for f in fr) / len(fr), 4) if fr else None,
        "worst_step_qos_met": min(fr) if fr else None,
    }


async def run_rates(
    url: str, trace: RateTrace, mix: SizeMix, seed: int = 0, qos_ms: float | None = None, drain_timeout_s: float = 30.0
) -> tuple[LoadResult, list[dict]]:
    """Replay ``trace`` (each step in ``trace.step_s`` seconds of real time; Poisson arrivals
    within a step, :meth:`RateTrace.arrivals_s` with ``seed``) against the gateway at ``url``:
    the run's figures (``offered_qps``: the mean rate) and :func:`per_step`'s rows."""
    times = trace.arrivals_s(seed)
    if times.size == 0:
        raise KairosInputError(
            "--rates: no requests in the steps replayed; choose other --start-minute/--minutes or a larger --peak-qps"
        )
    client = HttpClient(url)
    try:
        info = await fetch_info(client)
        check_mix_fits(mix, info.get("max_size"))
        sizes = mix.sample(len(times), seed + 1)
        await client.warm(warm_connections(float(trace.rates.max())))  # the busiest step's connections
        res = await run_load(
            url,
            round(times.size / trace.duration_s, 3),
            trace.duration_s,
            mix,
            seed,
            qos_ms,
            drain_timeout_s,
            client=client,
            sizes=sizes,
            times=times,
        )
    finally:
        client.close()
    return res, per_step(res, trace.step_s, len(trace.counts), trace.rates)


async def wait_idle(client: HttpClient, timeout_s: float = 60.0) -> None:
    """Wait until the gateway has nothing in flight (between probes)."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        info = await fetch_info(client)
        if info.get("in_flight", 0) == 0:
            return
        await asyncio.sleep(0.2)


@dataclass
class MaxQpsSearch:
    max_qps: float
    probes: list  # [summary dict of each probe]
    best: dict | None


async def max_qps_search(
    url: str,
    duration_s: float,
    mix: SizeMix,
    seed: int = 0,
    start_qps: float | None = None,
    rel_tol: float = 0.02,
    max_probes: int = 10,
    qos_ms: float | None = None,
    on_probe=None,
    drain_timeout_s: float = 30.0,
) -> MaxQpsSearch:
    """Highest rate whose run passes (>= 99% of sent queries within QoS, nothing lost).

    Starts at ``start_qps`` (default 0.85 x the gateway's fluid bound for the deeprecsys
    mix), steps up by 10% / down by 20% to bracket, then bisects to ``rel_tol``.
    """
    client = HttpClient(url)
    try:
        info = await fetch_info(client)
        if start_qps is None:
            start_qps = 0.85 * float(info.get("fluid_bound_qps_deeprecsys") or 100.0)
        probes: list = []
        best: dict = {}

        async def probe(rate: float) -> bool:
            await wait_idle(client)
            await asyncio.sleep(0.3)
            r = await run_load(url, rate, duration_s, mix, seed, qos_ms, drain_timeout_s, client=client)
            s = r.summary()
            probes.append(s)
            if on_probe:
                on_probe(s)
            if r.passed and rate >= best.get("offered_qps", -1):
                best.clear()
                best.update(s)
            return r.passed

        lo, hi = 0.0, math.inf
        if await probe(start_qps):
            lo = start_qps
        else:
            hi = start_qps
        while hi == math.inf and len(probes) < max_probes:
            r = lo * 1.1
            if await probe(r):
                lo = r
            else:
                hi = r
        while lo == 0.0 and len(probes) < max_probes:
            r = hi * 0.8
            if await probe(r):
                lo = r
            else:
                hi = r
        while lo > 0 and hi < math.inf and (hi - lo) > rel_tol * lo and len(probes) < max_probes:
            mid = 0.5 * (lo + hi)
            if await probe(mid):
                lo = mid
            else:
                hi = mid
        return MaxQpsSearch(lo, probes, best or None)
    finally:
        client.close()
