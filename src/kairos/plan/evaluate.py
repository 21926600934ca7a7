"""The planners' evaluator: a configuration's simulated QoS-throughput (max QPS), cached.

One evaluation = one :meth:`kairos.sim.experiment.Experiment.max_qps` search (the same
as ``kairos simulate --max-qps``). Results are cached in memory by (policy, config)
and, if ``cache_path`` is given, in a JSON-lines file keyed by everything that
determines the result (model, QoS, mix, queries, seed, the policy with its settings --
``policy_fingerprint``, so a change of its defaults is not served old results -- and
config), so that long benchmarks can be interrupted and resumed. ``workers > 1`` evaluates batches in
parallel processes.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kairos.dispatch.registry import policy_fingerprint
from kairos.profiles.catalogue import Catalogue
from kairos.sim.experiment import Experiment
from kairos.workload.sizes import SizeMix


def _key(model, qos_ms, mix_name, queries, seed, policy, config) -> str:
    cfg = ",".join(f"{t}={k}" for t, k in sorted(config.items()) if k)
    return f"{model}|{qos_ms:g}|{mix_name}|{queries}|{seed}|{policy}|{cfg}"


def _simulate(args) -> float:
    catalogue, model, config, qos_ms, mix, queries, seed, policy = args
    exp = Experiment.build(catalogue, model, config, qos_ms, mix, queries, seed)
    return float(exp.max_qps(policy).max_qps)


class Evaluator:
    def __init__(
        self,
        catalogue: Catalogue,
        model: str,
        qos_ms: float,
        mix: SizeMix,
        queries: int = 20_000,
        seed: int = 0,
        cache_path=None,
        workers: int = 1,
    ):
        self.catalogue, self.model, self.qos_ms, self.mix = catalogue, model, float(qos_ms), mix
        self.queries, self.seed, self.workers = int(queries), int(seed), int(workers)
        self.cache: dict[str, float] = {}
        self.cache_path = Path(cache_path) if cache_path else None
        self.simulated = 0  # simulations actually run (cache misses)
        self._prints: dict[str, str] = {}  # policy name -> fingerprint
        if self.cache_path and self.cache_path.exists():
            for line in self.cache_path.read_text().splitlines():
                try:
                    row = json.loads(line)
                    self.cache[row["key"]] = float(row["max_qps"])
                except (ValueError, KeyError):
                    continue  # a line cut by an interrupted run

    def key(self, config: dict[str, int], policy: str) -> str:
        fp = self._prints.get(policy)
        if fp is None:
            fp = self._prints[policy] = policy_fingerprint(policy)
        return _key(self.model, self.qos_ms, self.mix.name, self.queries, self.seed, fp, config)

    def _store(self, key: str, value: float) -> None:
        self.cache[key] = value
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_path, "a") as fh:
                fh.write(json.dumps({"key": key, "max_qps": value}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def cached(self, config: dict[str, int], policy: str = "kairos") -> float | None:
        return self.cache.get(self.key(config, policy))

    def __call__(self, config: dict[str, int], policy: str = "kairos") -> float:
        return self.many([config], policy)[0]

    def many(self, configs: list[dict[str, int]], policy: str = "kairos") -> list[float]:
        keys = [self.key(c, policy) for c in configs]
        todo = [(k, c) for k, c in dict(zip(keys, configs)).items() if k not in self.cache]
        jobs = [
            (self.catalogue, self.model, c, self.qos_ms, self.mix, self.queries, self.seed, policy) for _, c in todo
        ]
        if self.workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=min(self.workers, len(jobs))) as ex:
                vals = list(ex.map(_simulate, jobs))
        else:
            vals = [_simulate(j) for j in jobs]
        for (k, _), v in zip(todo, vals):
            self.simulated += 1
            self._store(k, v)
        return [self.cache[k] for k in keys]
