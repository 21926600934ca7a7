"""One simulation experiment from user-level inputs: validate, build, run, report.

Shared by ``kairos simulate``, the planner's evaluator and ``kairos reproduce``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from kairos.dispatch.registry import make_policy
from kairos.errors import KairosInputError, require_positive
from kairos.plan.fluid import config_fluid_bound
from kairos.profiles.catalogue import Catalogue
from kairos.profiles.profile import Profile
from kairos.sim.engine import SimResult, simulate
from kairos.sim.search import max_qps
from kairos.workload.arrivals import RateSchedule
from kairos.workload.sizes import SizeMix
from kairos.workload.workload import Workload, make_workload


def validate_config(profile: Profile, config: dict[str, int], qos_ms: float) -> None:
    """Unknown types, empty configurations and a QoS no instance can meet -> KairosInputError."""
    if not config or sum(config.values()) <= 0:
        raise KairosInputError("the configuration is empty; give at least one instance (TYPE=COUNT)")
    for name, k in config.items():
        profile.type_index(name)
        if k < 0:
            raise KairosInputError(f"instance count for {name!r} must be >= 0")
    require_positive("--qos-ms", qos_ms)
    fastest = min(float(profile.mean_ms[profile.type_index(t)].min()) for t in config)
    if fastest > qos_ms:
        raise KairosInputError(
            f"QoS {qos_ms:g} ms cannot be met by any instance of this configuration (the fastest "
            f"query takes {fastest:.3g} ms); raise --qos-ms or add faster instance types"
        )


@dataclass
class Experiment:
    """A model's profile, a configuration, a QoS target and a workload, ready to simulate."""

    profile: Profile
    config: dict[str, int]
    qos_ms: float
    mix: SizeMix
    workload: Workload
    seed: int = 0

    @classmethod
    def build(
        cls,
        catalogue: Catalogue,
        model: str,
        config: dict[str, int],
        qos_ms: float,
        mix: SizeMix,
        queries: int = 20_000,
        seed: int = 0,
        trace_ms=None,
        schedule: RateSchedule | None = None,
        duration_s: float | None = None,
    ) -> Experiment:
        profile = catalogue.profile(model)
        validate_config(profile, config, qos_ms)
        if queries < 1:
            raise KairosInputError(f"--queries must be >= 1, got {queries}")
        wl = make_workload(profile, mix, queries, seed, trace_ms=trace_ms, schedule=schedule, duration_s=duration_s)
        return cls(profile, dict(config), float(qos_ms), mix, wl, seed)

    @classmethod
    def paper(cls, model: str, queries: int = 20_000, seed: int = 0) -> Experiment:
        """The paper's setting for ``model``: its pool and QoS target (:mod:`kairos.paper`), the
        built-in catalogue and the DeepRecSys size mix."""
        from kairos.paper import PAPER_CONFIGS, PAPER_QOS_MS
        from kairos.profiles.catalogue import builtin_catalogue
        from kairos.workload.sizes import parse_size_mix

        return cls.build(
            builtin_catalogue(),
            model,
            PAPER_CONFIGS[model],
            PAPER_QOS_MS[model],
            parse_size_mix("deeprecsys"),
            queries,
            seed,
        )

    @property
    def probs(self) -> np.ndarray:
        if getattr(self, "_probs", None) is None:
            self._probs = self.mix.bucket_probabilities(self.profile.batches)
        return self._probs

    def fluid_bound(self) -> float:
        return config_fluid_bound(self.profile, self.config, self.probs, self.qos_ms).qps

    def window_bound(
        self, rate: float | None, block_queries: int | None = None, slots_per_qos: int | None = None
    ) -> float:
        """Upper bound on how many of the workload's queries any dispatcher finishes within
        QoS at ``rate`` (None: the trace or schedule as it is); :func:`kairos.plan.window.window_bound`
        with time slots of QoS / ``slots_per_qos`` and blocks of about ``block_queries``
        queries' arrivals (defaults: the module's ``SLOTS_PER_QOS`` and ``BLOCK_QUERIES``).
        An LP: tens of seconds for 20,000 queries (docs/dispatch.md)."""
        from kairos.plan.window import BLOCK_QUERIES, SLOTS_PER_QOS, window_bound

        block_queries = BLOCK_QUERIES if block_queries is None else block_queries
        slots_per_qos = SLOTS_PER_QOS if slots_per_qos is None else slots_per_qos
        arrive = self.workload.arrivals_ms(rate)
        block_ms = None if rate is None else block_queries / rate * 1000.0  # None: from the trace's spacing
        types = [self.profile.type_index(t) for t in self.config]
        return window_bound(
            arrive,
            self.workload.service_ms[:, types],
            list(self.config.values()),
            self.qos_ms,
            block_ms=block_ms,
            slot_ms=self.qos_ms / slots_per_qos,
            block_queries=block_queries,
        )

    def run(self, policy: str, rate: float | None, params: dict | None = None, handoff_ms: float = 0.0) -> SimResult:
        return simulate(
            self.profile,
            self.config,
            make_policy(policy, **(params or {})),
            self.workload,
            self.qos_ms,
            rate=rate,
            seed=self.seed,
            size_probs=self.probs,
            handoff_ms=handoff_ms,
        )

    def max_qps(self, policy: str, params: dict | None = None, handoff_ms: float = 0.0):
        return max_qps(
            self.profile,
            self.config,
            policy,
            self.workload,
            self.qos_ms,
            self.probs,
            policy_params=params,
            seed=self.seed,
            handoff_ms=handoff_ms,
        )


def report(
    exp: Experiment,
    policy: str,
    res: SimResult,
    bound: float,
    prices: dict[str, float] | None,
    elapsed_s: float,
    search=None,
    params: dict | None = None,
) -> dict:
    """The JSON object ``kairos simulate --json`` prints."""
    out: dict[str, Any] = {
        "model": exp.profile.model,
        "config": exp.config,
        "policy": policy,
        "policy_params": {**make_policy(policy, **(params or {})).describe(), **(params or {})},
        "qos_ms": exp.qos_ms,
        "queries": exp.workload.n,
        "workload": exp.mix.name,
        "seed": exp.seed,
    }
    if search is not None:
        out["max_qps"] = round(search.max_qps, 3)
        out["probes"] = len(search.probes)
    else:
        out["qps"] = res.rate
    out["fluid_bound_qps"] = round(bound, 3)
    rate = out.get("max_qps", out.get("qps")) or 0.0
    out["fraction_of_bound"] = round(rate / bound, 4) if bound > 0 and rate else None
    if prices is not None and all(t in prices for t in exp.config):
        out["cost_per_hour"] = round(sum(prices[t] * k for t, k in exp.config.items()), 4)
    if res is not None:
        out.update(res.summary())
        util = res.utilisation
        names = [f"{t}#{i}" for t, k in exp.config.items() for i in range(k)]
        out["instances"] = [
            {"instance": nm, "utilisation": round(float(u), 4), "served": int(c), "max_held": int(h)}
            for nm, u, c, h in zip(names, util, res.served_count, res.max_held)
        ]
    else:
        out.update({"p50_ms": None, "p99_ms": None, "qos_met_fraction": None})
    out["elapsed_s"] = round(elapsed_s, 3)
    return out


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    r = fn(*a, **kw)
    return r, time.perf_counter() - t0
