"""Is this machine running at full speed right now? A fixed-work probe on every CPU, every few milliseconds.

One process per CPU, pinned to it at ``SCHED_FIFO`` 99 (above everything we run, so
it is never kept waiting by our own processes), wakes every ``--period-ms`` (5) and times the
same small piece of Python work (some 10-25 us). A sample more
than ``SLOW`` times the CPU's median means that CPU ran *everything* that much slower
at that moment; when every CPU is that slow at once, the host is slowing the virtual
machine (other tenants, the hypervisor), and nothing a process inside can do about it.
A CPU taken away entirely shows up instead as a late wake-up (``vcpu_stalls.py``).

What it found on the project's 2-vCPU development VM: investigations/README.md.

Costs about 0.3% of each CPU at 5 ms (a 1 ms period disturbed a 2,000 q/s run
visibly). Needs SCHED_FIFO (root or CAP_SYS_NICE); without it
the probe runs at normal priority and says so (its samples then include waiting for
our processes, so a busy machine looks slow).

    python3 investigations/vm/host_speed.py [--seconds 10]    # this machine, with nothing of ours running

``gateway_host_speed.py`` (beside it) runs the probe during gateway-overhead runs and
reports the added latency of the queries that were *not* in flight during a slow
episode, and as a control the same for slow moments shifted by half the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SLOW = 2.0  # a sample this many times the CPU's median work time is slow

PROBE = r"""
import json, os, sys, time
cpu, out, period = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
os.sched_setaffinity(0, {cpu})
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
    fifo = True
except (PermissionError, OSError, AttributeError):
    fifo = False
clock = time.perf_counter
def work():
    s = 0
    for i in range(200):
        s += i * i
    return s
res = []
stop = out + ".stop"
while not os.path.exists(stop):
    for _ in range(20):
        time.sleep(period)
        a = clock(); work(); b = clock()
        res.append((a, b - a))
with open(out, "w") as f:
    json.dump({"fifo": fifo, "samples": res}, f)
"""


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


class HostSpeed:
    """``with HostSpeed() as h: ...``; afterwards ``h.slow_times()`` (when every CPU was slow),
    ``h.summary()`` and ``h.in_slowdown(starts, ends)``. Times are ``time.perf_counter()``."""

    def __init__(self, period_ms: float = 5.0):
        self.period_s = period_ms / 1000.0
        self.cpus = usable_cpus()
        self.dir = tempfile.mkdtemp(prefix="kairos-speed-")
        self.files = [os.path.join(self.dir, f"cpu{c}.json") for c in self.cpus]

    def __enter__(self):
        self.procs = [
            subprocess.Popen([sys.executable, "-c", PROBE, str(c), f, str(self.period_s)])
            for c, f in zip(self.cpus, self.files)
        ]
        return self

    def __exit__(self, *exc):
        for f in self.files:
            open(f + ".stop", "w").close()
        for p in self.procs:
            p.wait(timeout=30)
        data = []
        for f in self.files:
            with open(f) as fh:
                data.append(json.load(fh))
            os.unlink(f)
            os.unlink(f + ".stop")
        os.rmdir(self.dir)
        self.fifo = all(d["fifo"] for d in data)
        self.samples = [np.asarray(d["samples"], dtype=float).reshape(-1, 2) for d in data]
        self.median_us = [float(np.median(s[:, 1])) * 1e6 for s in self.samples]
        return False

    def slow_times(self) -> np.ndarray:
        """Sample times of the first CPU at which every CPU's nearest sample was slow."""
        base = self.samples[0]
        slow = base[:, 1] > SLOW * self.median_us[0] / 1e6
        for s, med in zip(self.samples[1:], self.median_us[1:]):
            k = np.clip(np.searchsorted(s[:, 0], base[:, 0]), 1, len(s) - 1)
            near = np.where(np.abs(s[k - 1, 0] - base[:, 0]) < np.abs(s[k, 0] - base[:, 0]), k - 1, k)
            slow &= s[near, 1] > SLOW * med / 1e6
        return base[slow, 0]

    def summary(self) -> dict:
        n = len(self.samples[0])
        t = self.slow_times()
        episodes = int(np.sum(np.diff(t) > 2.5 * self.period_s)) + 1 if len(t) else 0  # runs of slow samples
        return {
            "fifo": self.fifo,
            "samples_per_cpu": n,
            "median_work_us": [round(m, 2) for m in self.median_us],
            "slow_fraction": round(len(t) / max(n, 1), 4),
            "slow_episodes": episodes,
        }

    def in_slowdown(self, starts, ends, shift_s: float = 0.0) -> np.ndarray:
        """For intervals [start, end] (perf_counter seconds): whether a slow moment of every
        CPU falls inside the interval or within one probe period of it. ``shift_s``: the
        slow moments moved that far, wrapping round within the probe's run (a control: the
        same share of time, at moments unrelated to the intervals)."""
        t = self.slow_times()
        if shift_s:
            t0, t1 = self.samples[0][0, 0], self.samples[0][-1, 0]
            t = np.sort(t0 + (t - t0 + shift_s) % (t1 - t0))
        margin_s = self.period_s
        starts, ends = np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)
        return np.searchsorted(t, ends, side="right") > np.searchsorted(t, starts - margin_s, side="left")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--period-ms", type=float, default=5.0, help="one timed piece of work per CPU this often")
    a = ap.parse_args()
    import time

    with HostSpeed(a.period_ms) as h:
        time.sleep(a.seconds)
    s = h.summary()
    print(
        f"{a.seconds:g} s, probe at {'SCHED_FIFO 99' if s['fifo'] else 'normal priority'}: every CPU more than "
        f"{SLOW:g}x slower in {100 * s['slow_fraction']:.1f}% of samples ({s['slow_episodes']} episodes); "
        f"median work {s['median_work_us']} us"
    )
    print(
        json.dumps(
            {"benchmark": "host_speed", "seconds": a.seconds, "period_ms": a.period_ms, "slow_factor": SLOW, **s}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
