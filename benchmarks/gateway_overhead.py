"""Gateway overhead: latency the gateway adds to a query, at 500 and 2,000 queries/s.

Pool: the paper's NCF pool (1 g4dn.xlarge + 13 r5n.large, emulated workers, QoS 5 ms),
whose capacity (~4,000 q/s in the simulator) leaves room for 2,000 q/s. For every
completed query:

- added (client view)   = (answer received - request written, by the load generator)
                          - wait_ms - service_ms (both reported in the answer).
  Included: the load generator's HTTP client, loopback TCP both ways, uvicorn's HTTP
  parsing and response writing, request validation, queueing structures, the dispatch
  policy call, the gateway<->worker frames both ways and the worker's wake-up.
  Excluded: the service time (measured by the worker around its timed sleep) and the
  queueing wait (time spent waiting for a free instance, which is the policy's doing,
  not overhead).
- added (gateway view)  = gateway_latency_ms - wait_ms - service_ms: the same from the
  moment the gateway has parsed the request to the moment the answer is ready
  (dispatch + transport + worker wake-up), without HTTP.

Also reports CPU microseconds per query of the gateway, the workers and the load
generator, and the load average (other jobs on the machine inflate every tail).

    python benchmarks/gateway_overhead.py [--duration 10] [--rates 500,2000]
        [--http-fast-path on|off|both] [--ab SERVE-ARGS] [--rounds N]

``--ab "--dispatch-per-event"`` alternates a server with the default settings ("default")
and one with those extra ``kairos serve`` arguments, as ``--http-fast-path both`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _serve_common import ServeProcess, cpu_seconds, loadavg  # noqa: E402

from kairos.serve.loadgen import run_load, use_uvloop  # noqa: E402
from kairos.workload.sizes import parse_size_mix  # noqa: E402


def pct(x, p):
    return round(float(np.percentile(x, p)), 3) if len(x) else None


def measure(srv, rate: float, duration: float) -> dict:
    """One open-loop run at ``rate`` against ``srv``: added latency and CPU per query."""
    wpids = srv.worker_pids()
    n_events = len(srv.events())
    la0 = loadavg()
    g0, w0, me0 = cpu_seconds(srv.proc.pid), sum(cpu_seconds(p) for p in wpids), os.times()
    r = asyncio.run(run_load(srv.url, rate, duration, parse_size_mix("deeprecsys"), seed=0))
    g1, w1, me1 = cpu_seconds(srv.proc.pid), sum(cpu_seconds(p) for p in wpids), os.times()
    warnings = collections.Counter(
        e.get("event", "?") for e in srv.events()[n_events:] if e.get("level") in ("warning", "error")
    )
    R = r.records
    ok = R["status"] == 200
    client, gw = R["client_overhead_ms"][ok], R["gateway_overhead_ms"][ok]
    n = max(r.sent, 1)
    return {
        "rate_qps": rate,
        "sent": r.sent,
        "completed": r.completed,
        "errors": r.errors,
        "lost": r.lost,
        "error_kinds": r.error_kinds,
        "server_warnings": dict(warnings),
        "achieved_qps": r.achieved_qps,
        "added_client_p50_ms": pct(client, 50),
        "added_client_p99_ms": pct(client, 99),
        "added_gateway_p50_ms": pct(gw, 50),
        "added_gateway_p99_ms": pct(gw, 99),
        "send_lag_p99_ms": pct(R["send_lag_ms"][ok], 99),
        "cpu_us_per_query": {
            "gateway": round(1e6 * (g1 - g0) / n),
            "workers": round(1e6 * (w1 - w0) / n),
            "loadgen": round(1e6 * ((me1.user + me1.system) - (me0.user + me0.system)) / n),
        },
        "loadavg_before": la0,
        "loadavg_after": loadavg(),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument(
        "--http-fast-path",
        choices=["on", "off", "both"],
        default="on",
        help="kairos serve --http-fast-path / --no-http-fast-path; both: alternate them, "
        "--rounds times each, a fresh server per run",
    )
    ap.add_argument(
        "--ab",
        default=None,
        metavar="SERVE-ARGS",
        help="alternate the default server with one given these extra kairos serve arguments",
    )
    ap.add_argument("--rounds", type=int, default=1, help="repetitions (of each variant when alternating)")
    a = ap.parse_args()
    use_uvloop()
    if a.ab:
        variants = {"default": [], a.ab: a.ab.split()}
    else:
        variants = {"on": ["--http-fast-path"], "off": ["--no-http-fast-path"]}
    order = list(variants) if a.ab or a.http_fast_path == "both" else [a.http_fast_path]
    rows = []
    for rnd in range(a.rounds):
        for variant in order:  # alternating, so that the machine's drift hits both alike
            srv = ServeProcess(
                "--model",
                "ncf",
                "--config",
                "g4dn.xlarge=1,r5n.large=13",
                "--qos-ms",
                "5",
                *variants[variant],
                quiet=True,
                start_timeout=60.0,
            )
            try:
                for rate in [float(r) for r in a.rates.split(",")]:
                    rows.append({"variant": variant, "round": rnd, **measure(srv, rate, a.duration)})
            finally:
                srv.stop()
    print(
        f"gateway overhead, ncf pool g4dn.xlarge=1,r5n.large=13 (emulated), {a.duration:g} s per rate, "
        f"{os.cpu_count()} CPUs"
    )
    print("variant: " + ", ".join(f"{v} = kairos serve {' '.join(variants[v]) or '(defaults)'}" for v in order))
    print(
        "variant  rate    sent    lost  achieved  client p50/p99 ms   gateway p50/p99 ms   cpu us/q gw/workers/gen  loadavg"
    )
    for x in rows:
        c = x["cpu_us_per_query"]
        print(
            f"{x['variant'][:8]:<8} {x['rate_qps']:<7g} {x['sent']:<7d} {x['lost']:<5d} {x['achieved_qps']:<9.1f} "
            f"{x['added_client_p50_ms']:>6} / {x['added_client_p99_ms']:<10} {x['added_gateway_p50_ms']:>6} / "
            f"{x['added_gateway_p99_ms']:<12} {c['gateway']}/{c['workers']}/{c['loadgen']:<14} {x['loadavg_before']}"
        )
        if x["errors"] or x["server_warnings"]:
            print(f"         errors {x['errors']} {x['error_kinds']}; server warnings {x['server_warnings']}")
    if len(order) == 2:  # medians over the rounds, side by side
        va, vb = order
        print(f"medians over rounds ({va} / {vb}): rate  gateway p99 ms   client p99 ms   gateway cpu us/q")

        def med(rate, variant, key, sub=None):
            v = [x[key][sub] if sub else x[key] for x in rows if x["rate_qps"] == rate and x["variant"] == variant]
            return round(float(np.median(v)), 3)

        for rate in sorted({x["rate_qps"] for x in rows}):
            print(
                f"  {rate:<7g} {med(rate, va, 'added_gateway_p99_ms')} / {med(rate, vb, 'added_gateway_p99_ms')}"
                f"   {med(rate, va, 'added_client_p99_ms')} / {med(rate, vb, 'added_client_p99_ms')}"
                f"   {med(rate, va, 'cpu_us_per_query', 'gateway')} / {med(rate, vb, 'cpu_us_per_query', 'gateway')}"
            )
    print(json.dumps({"benchmark": "gateway_overhead", "variants": {v: variants[v] for v in order}, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
