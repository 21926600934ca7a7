"""Does this machine stop running our code now and then? A probe per CPU, and fresh memory's cost.

1. **Stalls.** One thread per CPU, pinned to it at ``SCHED_FIFO`` 99 (above everything
   we run, the gateway's SCHED_RR included), sleeps 1 ms at a time and records every
   wake-up more than ``--gap-ms`` late, with the CPU's steal time. Such a gap means
   the CPU ran nothing of ours for that long: the hypervisor had taken the virtual CPU
   (or the kernel ran with preemption off). Run alone (``--idle-s``) and, with
   ``--serve-rate R``, during a live DIEN run at R q/s (paper pool, emulated workers,
   ``kairos-online``, under SCHED_RR and with a spinner per CPU: rt.py, awake.py), whose
   misses are then listed with the nearest gap.
2. **Fresh memory.** Time to write 512 MiB never touched before, the same again at once,
   and again after ``--rest-s`` seconds: a VM that hands free memory back to its host
   (virtio-balloon free page reporting) pays a host page fault on every first touch.

Needs root (SCHED_FIFO). Prints a summary and one JSON line.

    python3 investigations/vm/vcpu_stalls.py [--idle-s 20] [--serve-rate 540 --duration 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(os.path.dirname(os.path.dirname(_HERE)), "benchmarks"), _HERE]  # _serve_common; rt, awake

from _serve_common import ServeProcess  # noqa: E402
from awake import CpuSpinners  # noqa: E402
from rt import start_realtime  # noqa: E402

from kairos.paper import PAPER_CONFIGS, PAPER_QOS_MS  # noqa: E402
from kairos.serve.loadgen import run_load, use_uvloop  # noqa: E402
from kairos.workload import parse_size_mix  # noqa: E402


def steal_ticks() -> dict[int, int]:
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                p = line.split()
                out[int(p[0][3:])] = int(p[8])
    return out


PROBE = """
import os, sys, time, json
cpu, gap = int(sys.argv[1]), float(sys.argv[2])
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
out = []
prev = time.monotonic()
while True:
    time.sleep(0.001)
    now = time.monotonic()
    if now - prev > gap + 0.001:
        out.append((now, (now - prev - 0.001) * 1000.0))
    prev = now
    if os.path.exists(sys.argv[3]):
        break
print(json.dumps(out))
"""


class Probes:
    """One process per CPU, pinned, at SCHED_FIFO 99, recording late wake-ups (monotonic
    time, ms late). Processes, not threads: a thread would wait for the GIL, not the CPU."""

    def __init__(self, gap_ms: float):
        self.gap = gap_ms / 1000.0
        self.cpus = sorted(os.sched_getaffinity(0))
        self.flag = os.path.join(tempfile.mkdtemp(), "stop")

    def __enter__(self):
        self.steal0 = steal_ticks()
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", PROBE, str(c), str(self.gap), self.flag], stdout=subprocess.PIPE, text=True
            )
            for c in self.cpus
        ]
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        open(self.flag, "w").close()
        self.gaps = {
            c: [tuple(g) for g in json.loads(p.communicate()[0] or "[]")] for c, p in zip(self.cpus, self.procs)
        }
        os.unlink(self.flag)
        s1 = steal_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        self.steal_ms = {c: (s1[c] - self.steal0[c]) * 1000.0 / hz for c in self.cpus}


def summary(p: Probes, t0: float) -> dict:
    return {
        f"cpu{c}": {
            "steal_ms": round(p.steal_ms[c], 1),
            "gaps": [[round(t - t0, 3), round(g, 1)] for t, g in p.gaps[c]],
        }
        for c in p.cpus
    }


def fresh_memory(mib: int, rest_s: float) -> dict:
    n = mib * 1024 * 1024 // 8

    def touch() -> float:
        t = time.perf_counter()
        a = np.ones(n)
        d = time.perf_counter() - t
        del a
        return round(d * 1000.0, 1)

    first = touch()
    again = touch()
    time.sleep(rest_s)
    rested = touch()
    pages = mib * 256
    return {
        "mib": mib,
        "first_ms": first,
        "again_ms": again,
        f"after_{rest_s:g}s_ms": rested,
        "first_us_per_page": round(first * 1000.0 / pages, 2),
        "again_us_per_page": round(again * 1000.0 / pages, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-s", type=float, default=20.0, help="probe with nothing of ours running")
    ap.add_argument("--serve-rate", type=float, default=0.0, help="also probe during a live DIEN run at this rate")
    ap.add_argument("--duration", type=float, default=15.0, help="live run length, s")
    ap.add_argument("--gap-ms", type=float, default=3.0, help="report wake-ups later than this")
    ap.add_argument("--memory-mib", type=int, default=512)
    ap.add_argument("--rest-s", type=float, default=6.0)
    a = ap.parse_args()
    out = {"benchmark": "vcpu_stalls", "cpus": os.cpu_count()}
    t0 = time.monotonic()
    with Probes(a.gap_ms) as p:
        time.sleep(a.idle_s)
    out["idle"] = {"seconds": a.idle_s, **summary(p, t0)}
    print(
        f"idle {a.idle_s:g} s: "
        + "; ".join(
            f"{k} steal {v['steal_ms']} ms, gaps > {a.gap_ms:g} ms [t s, ms]: {v['gaps']}"
            for k, v in out["idle"].items()
            if k != "seconds"
        )
    )
    if a.serve_rate > 0:
        use_uvloop()
        cfg = ",".join(f"{k}={v}" for k, v in PAPER_CONFIGS["dien"].items())
        srv = start_realtime(
            lambda: ServeProcess(
                "--model",
                "dien",
                "--config",
                cfg,
                "--qos-ms",
                str(PAPER_QOS_MS["dien"]),
                "--policy",
                "kairos-online",
                quiet=True,
                start_timeout=60,
            )
        )
        try:
            with CpuSpinners(), Probes(a.gap_ms) as p:
                t_run = time.monotonic()
                r = asyncio.run(run_load(srv.url, a.serve_rate, a.duration, parse_size_mix("deeprecsys"), 0))
        finally:
            srv.stop()
        rec = r.records
        miss = np.flatnonzero(~(rec["latency_ms"] <= r.qos_ms))
        miss_t = (rec["send_s"][miss] + 0.02).round(3).tolist()  # the run starts 20 ms after t_run
        live = summary(p, t_run)
        all_gaps = sorted(g for c in live.values() for g in c["gaps"])
        near = sum(1 for t in miss_t if any(g[0] - 0.2 <= t <= g[0] + 0.05 for g in all_gaps))
        out["live"] = {
            "rate": a.serve_rate,
            "duration_s": a.duration,
            "qos_met_fraction": r.qos_met_fraction,
            "misses": len(miss),
            "misses_sent_within_200ms_before_a_gap": near,
            **live,
        }
        print(
            f"live dien {a.serve_rate:g} q/s for {a.duration:g} s: qos_met {r.qos_met_fraction}, {len(miss)} misses, "
            f"{near} of them sent in the 200 ms before a gap; "
            + "; ".join(f"{k} steal {v['steal_ms']} ms, gaps [t s, ms]: {v['gaps']}" for k, v in live.items())
        )
    out["fresh_memory"] = fresh_memory(a.memory_mib, a.rest_s)
    m = out["fresh_memory"]
    print(
        f"writing {m['mib']} MiB: first touch {m['first_ms']} ms ({m['first_us_per_page']} us/page), again at once "
        f"{m['again_ms']} ms ({m['again_us_per_page']} us/page), after {a.rest_s:g} s {m[f'after_{a.rest_s:g}s_ms']} ms"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
