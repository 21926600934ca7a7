#!/usr/bin/env python3
"""Time per dispatch call of the `kairos` policy against an earlier version of it, on the
same decisions: record every dispatch call of a simulation near max QPS (time, queue,
instance states), then replay the calls through both versions, alternating blocks of
500 calls so that the machine's speed changes hit both alike, and check that both
versions return the same pairs on every call.

    python investigations/dispatch_replay.py --rev 9134724 [--models wnd,ncf,rm2] [--rounds 5]

``--rev``: a git revision whose ``src/kairos/dispatch/kairos.py`` is the baseline (it is
loaded from ``git show``; it must fit the current base classes).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kairos.dispatch import DispatchContext
from kairos.dispatch import kairos as current
from kairos.dispatch.pool import ArrayQueries, Pool
from kairos.paper import PAPER_CONFIGS, PAPER_QOS_MS
from kairos.profiles import builtin_catalogue
from kairos.sim.engine import pool_type_ids
from kairos.sim.experiment import Experiment
from kairos.workload import parse_size_mix

RATES = {"wnd": 1482.5, "ncf": 6609.5, "rm2": 116.0, "dien": 647.4, "mtwnd": 981.2}  # kairos's max QPS
REPO = Path(__file__).resolve().parent.parent


def load_rev(rev: str):
    src = subprocess.run(
        ["git", "show", f"{rev}:src/kairos/dispatch/kairos.py"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "kairos_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("kairos_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def record(exp: Experiment, rate: float):
    """Every dispatch call of one run: (now, queue, free_at, busy, n_idle)."""
    calls = []
    inner = current.KairosPolicy.dispatch

    def spy(self, now, queue, pool):
        calls.append((now, list(queue), list(pool.free_at), list(pool.busy), pool.n_idle))
        return inner(self, now, queue, pool)

    current.KairosPolicy.dispatch = spy
    try:
        exp.run("kairos", rate)
    finally:
        current.KairosPolicy.dispatch = inner
    return calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="git revision of the baseline dispatch/kairos.py")
    ap.add_argument("--models", default="wnd,ncf,rm2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--queries", type=int, default=20000)
    a = ap.parse_args()
    base = load_rev(a.rev)
    cat = builtin_catalogue()
    print(f"kairos dispatch, current vs {a.rev}: microseconds per call, replayed calls of one run near max QPS")
    for model in a.models.split(","):
        rate = RATES[model]
        exp = Experiment.build(
            cat, model, PAPER_CONFIGS[model], PAPER_QOS_MS[model], parse_size_mix("deeprecsys"), a.queries, 0
        )
        calls = record(exp, rate)
        type_of = pool_type_ids(exp.profile, exp.config)
        ctx = DispatchContext(exp.profile, type_of, exp.qos_ms, 0, exp.probs)
        pols = {"current": current.KairosPolicy(), "baseline": base.KairosPolicy()}
        for p in pols.values():
            p.bind(ctx)
        arr = exp.workload.arrivals_ms(rate)
        pools = []
        for _now, _q, free_at, busy, n_idle in calls:
            pool = Pool(type_of, exp.profile.mean_ms.tolist(), ArrayQueries(exp.workload.buckets, arr))
            pool.free_at, pool.busy, pool.n_idle = free_at, busy, n_idle
            pools.append(pool)
        same = all(
            sorted(pols["current"].dispatch(c[0], c[1], p)) == sorted(pols["baseline"].dispatch(c[0], c[1], p))
            for c, p in zip(calls, pools)
        )
        total = dict.fromkeys(pols, 0.0)
        block = 500
        for rnd in range(a.rounds):
            for s in range(0, len(calls), block):
                order = ("current", "baseline") if (s // block + rnd) % 2 == 0 else ("baseline", "current")
                for name in order:
                    d = pols[name].dispatch
                    t0 = time.perf_counter()
                    for k in range(s, min(s + block, len(calls))):
                        c = calls[k]
                        d(c[0], c[1], pools[k])
                    total[name] += time.perf_counter() - t0
        n = len(calls) * a.rounds
        cur, old = total["current"] / n * 1e6, total["baseline"] / n * 1e6
        print(
            f"  {model:6} {len(calls):6} calls  current {cur:6.2f}  baseline {old:6.2f}  current/baseline {cur / old:.3f}"
            f"  same decisions: {same}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
