"""Where each type's time goes, by query size: a simulated policy beside the fluid optimum.

The fluid bound (:mod:`kairos.plan.fluid`) routes each size bucket to the types that
serve it within QoS so that every instance is at most 100% busy; its optimum says which
sizes each type should spend its time on. :func:`time_split` runs a policy once at a rate
and gives, per range of query sizes: how many queries, how many missed QoS, and for each
type the milliseconds of instance time per second spent on those sizes -- in the
simulation (actual service times) and in the fluid optimum scaled to the same rate (mean
service times; one optimum where several tie). Time a policy spends on sizes the optimum
gives to another type, or on queries that miss anyway, is what the bound does not lose.
``benchmarks/time_split.py`` is its command line.
"""

from __future__ import annotations

import numpy as np

from kairos.plan.fluid import config_fluid_bound
from kairos.sim.engine import pool_type_ids
from kairos.sim.experiment import Experiment


def default_edges(exp: Experiment) -> list[int]:
    """Size edges every 100, plus the largest size each type of the pool serves within QoS (by its mean)."""
    sizes = exp.profile.batches
    edges = set(range(0, int(sizes[-1]) + 100, 100))
    for name in exp.config:
        ok = sizes[exp.profile.mean_ms[exp.profile.type_index(name)] <= exp.qos_ms]
        if ok.size and ok[-1] < sizes[-1]:
            edges.add(int(ok[-1]))
    return sorted(edges)


def time_split(exp: Experiment, policy: str, rate: float, edges: list[int]) -> dict:
    """One run of ``policy`` at ``rate``, split by the size ranges (lo, hi] between ``edges``:
    per range the queries, the misses and each type's ms of instance time per second,
    simulated (``sim_ms_per_s``) and in the fluid optimum (``fluid_ms_per_s``)."""
    prof, wl = exp.profile, exp.workload
    res = exp.run(policy, rate)
    sizes = prof.batches[np.asarray(wl.buckets)]
    lat = np.full(res.n, np.inf)
    lat[np.flatnonzero(res.served_by >= 0)] = res.latency_ms
    miss = lat > exp.qos_ms
    inst_type = np.asarray(pool_type_ids(prof, exp.config))
    served_type = np.where(res.served_by >= 0, inst_type[np.maximum(res.served_by, 0)], -1)
    span_s = len(sizes) / rate
    fb = config_fluid_bound(prof, exp.config, exp.probs, exp.qos_ms)
    fluid_ms = fb.routing * prof.mean_ms * (rate / fb.qps)  # [types, buckets] ms of instance time per s
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (sizes > lo) & (sizes <= hi)
        bsel = (prof.batches > lo) & (prof.batches <= hi)
        row = {"sizes": f"{lo + 1}-{hi}", "queries": int(sel.sum()), "misses": int((sel & miss).sum())}
        for name in exp.config:
            t = prof.type_index(name)
            on_t = sel & (served_type == t)
            row[name] = {
                "sim_ms_per_s": round(float(wl.service_ms[on_t, t].sum()) / span_s, 1),
                "fluid_ms_per_s": round(float(fluid_ms[t, bsel].sum()), 1),
            }
        rows.append(row)
    util = {name: round(float(res.utilisation[inst_type == prof.type_index(name)].mean()), 3) for name in exp.config}
    return {
        "policy": policy,
        "rate": rate,
        "fluid_bound_qps": round(fb.qps, 1),
        "qos_met_fraction": round(res.qos_met_fraction, 5),
        "misses": int(miss.sum()),
        "mean_utilisation": util,
        "capacity_ms_per_s": {k: 1000 * v for k, v in exp.config.items()},
        "rows": rows,
    }
