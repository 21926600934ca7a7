#!/usr/bin/env python3
"""The gateway's added latency with and without the moments the host slows every CPU.

Runs ``benchmarks/gateway_overhead.py``'s setting (the paper's NCF pool, 1 g4dn.xlarge +
13 r5n.large, emulated workers, QoS 5 ms; open-loop runs of ``--duration`` s at each of
``--rates``) with ``host_speed.py``'s probe (a SCHED_FIFO process per CPU timing a fixed
piece of work every 5 ms) running, and reports for each run the share of samples in which
every CPU ran more than 2x slower, and the gateway-view and client-view p99 of the added
latency over all queries and over the queries that were *not* in flight during such a
moment; as a control, the same with those moments shifted by half the run (the same share
of time, at unrelated moments).

    python3 investigations/vm/gateway_host_speed.py [--duration 10] [--rates 500,2000] [--rounds 2]
                                                    [--realtime] [--keep-cpus-awake]

``--realtime``: gateway, workers and this load generator under SCHED_RR (rt.py; root or
CAP_SYS_NICE); ``--keep-cpus-awake``: a SCHED_IDLE spinner per CPU during the runs (awake.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(os.path.dirname(_HERE)), "benchmarks"), _HERE]  # _serve_common; probes

from _serve_common import ServeProcess  # noqa: E402
from awake import CpuSpinners  # noqa: E402
from host_speed import HostSpeed  # noqa: E402
from rt import start_realtime  # noqa: E402

from kairos.serve.loadgen import run_load, use_uvloop  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402


def p99(x) -> float | None:
    return round(float(np.percentile(x, 99)), 3) if len(x) else None


def measure(url: str, rate: float, duration: float) -> dict:
    with HostSpeed() as probe:
        r = asyncio.run(run_load(url, rate, duration, parse_size_mix("deeprecsys"), seed=0))
    R = r.records
    ok = R["status"] == 200
    client, gw = R["client_overhead_ms"][ok], R["gateway_overhead_ms"][ok]
    t0 = (R["start_s"] + R["send_s"] + R["send_lag_ms"] / 1000.0)[ok]  # sent, on this machine's clock
    t1 = t0 + R["latency_ms"][ok] / 1000.0  # answered
    slow = probe.in_slowdown(t0, t1)
    ctl = probe.in_slowdown(t0, t1, shift_s=duration / 2)
    return {
        "rate_qps": rate,
        "sent": r.sent,
        "lost": r.lost,
        "errors": r.errors,
        **probe.summary(),
        "queries_in_slowdown": round(float(slow.mean()), 4),
        "gateway_p99_ms": p99(gw),
        "gateway_p99_ms_outside_slowdowns": p99(gw[~slow]),
        "client_p99_ms": p99(client),
        "client_p99_ms_outside_slowdowns": p99(client[~slow]),
        "control_queries_excluded": round(float(ctl.mean()), 4),
        "control_gateway_p99_ms": p99(gw[~ctl]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--realtime", action="store_true", help="SCHED_RR for gateway, workers and this generator")
    ap.add_argument("--keep-cpus-awake", action="store_true", help="a SCHED_IDLE spinner per CPU during the runs")
    a = ap.parse_args()
    use_uvloop()
    rows = []
    for rnd in range(a.rounds):

        def start():
            return ServeProcess(
                "--model",
                "ncf",
                "--config",
                "g4dn.xlarge=1,r5n.large=13",
                "--qos-ms",
                "5",
                quiet=True,
                start_timeout=60.0,
            )

        srv = start_realtime(start) if a.realtime else start()
        try:
            with CpuSpinners() if a.keep_cpus_awake else contextlib.nullcontext():
                for rate in (float(x) for x in a.rates.split(",")):
                    x = {"round": rnd, **measure(srv.url, rate, a.duration)}
                    rows.append(x)
                    print(
                        f"round {rnd} {rate:g} q/s: every CPU >2x slower in {100 * x['slow_fraction']:.1f}% of samples "
                        f"({x['slow_episodes']} episodes), {100 * x['queries_in_slowdown']:.1f}% of queries in flight "
                        f"then; gateway p99 {x['gateway_p99_ms']} ms, outside {x['gateway_p99_ms_outside_slowdowns']}"
                        f" ms, control {x['control_gateway_p99_ms']} ms; client p99 {x['client_p99_ms']} ms, outside "
                        f"{x['client_p99_ms_outside_slowdowns']} ms; lost {x['lost']}",
                        flush=True,
                    )
        finally:
            srv.stop()
    print(
        json.dumps(
            {
                "benchmark": "gateway_host_speed",
                "realtime": a.realtime,
                "keep_cpus_awake": a.keep_cpus_awake,
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
