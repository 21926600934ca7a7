"""How long this machine takes to wake a process, with and without the CPUs kept awake.

Two processes play ping-pong over a socket pair, one byte each way, idling ``--gap-ms``
between rounds (as the gateway and a worker do between queries); the round trip's
percentiles are printed for the CPUs left to idle (on a virtual machine they halt,
and waking them goes through the hypervisor) and with
``awake.CpuSpinners`` (beside this script) running, alternating the two in blocks so
that both see the same machine.

    python3 investigations/vm/wakeup_latency.py [--rounds 3000] [--gap-ms 2,0.2] [--blocks 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from awake import CpuSpinners  # noqa: E402


def ping_pong(rounds: int, gap_s: float) -> np.ndarray:
    """Round-trip times (us) of ``rounds`` one-byte ping-pongs with ``gap_s`` of idling between them."""
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo process
        a.close()
        while True:
            d = b.recv(16)
            if not d:
                os._exit(0)
            b.send(d)
    b.close()
    out = np.empty(rounds)
    try:
        for i in range(rounds):
            t = time.perf_counter()
            a.send(b"x")
            a.recv(16)
            out[i] = time.perf_counter() - t
            time.sleep(gap_s)
    finally:
        a.close()
        os.waitpid(pid, 0)
    return out * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3000, help="ping-pongs per block")
    ap.add_argument("--gap-ms", default="2,0.2", help="idle time between rounds, ms (comma-separated)")
    ap.add_argument("--blocks", type=int, default=2, help="blocks per setting, alternating")
    a = ap.parse_args()
    rows = []
    print(
        f"round trip of a one-byte ping-pong between two processes, us ({os.cpu_count()} CPUs, "
        f"{a.rounds} rounds x {a.blocks} blocks per setting)"
    )
    print(f"{'gap ms':>7} {'CPUs':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>8}")
    for gap in (float(g) for g in a.gap_ms.split(",")):
        got = {"idle": [], "awake": []}
        for _ in range(a.blocks):
            got["idle"].append(ping_pong(a.rounds, gap / 1000.0))
            with CpuSpinners():
                time.sleep(0.2)  # the spinners are running
                got["awake"].append(ping_pong(a.rounds, gap / 1000.0))
        for mode, parts in got.items():
            r = np.concatenate(parts)
            p = {
                k: round(float(np.percentile(r, q)), 1)
                for k, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))
            }
            p["max"] = round(float(r.max()), 1)
            rows.append({"gap_ms": gap, "cpus": mode, **p})
            print(
                f"{gap:7g} {mode:>7} {p['p50']:7.0f} {p['p90']:7.0f} {p['p99']:7.0f} {p['p999']:7.0f} {p['max']:8.0f}"
            )
    print(json.dumps({"benchmark": "wakeup_latency", "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
