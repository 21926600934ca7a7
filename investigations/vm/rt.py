"""Optional real-time scheduling for the latency-critical processes (``--realtime``).

On a machine shared with batch jobs, a gateway and workers that wait for the CPU
behind them add milliseconds to every tail latency. ``SCHED_RR`` (as ``chrt -r``)
lets them run as soon as they are woken; they sleep or block between queries, and
the kernel's real-time throttling still leaves 5% of each CPU to everything else.
Needs root or CAP_SYS_NICE. The gateway gets priority 20, the workers 10 (so the
dispatcher is never queued behind a worker), and ``kairos loadgen --realtime`` 5: a load
generator on the same machine (the benchmarks) then takes the CPU from neither; its own
delays are charged to it, as latency from each query's scheduled send time. Measured
(benchmarks/gateway_overhead.py --realtime --keep-cpus-awake, two runs each, 2026-11-29):
gateway-view p99 at 2,000 q/s 4.8 / 5.6 ms with the generator at 5, 6.9 / 7.9 ms at 20.
"""

from __future__ import annotations

import os

from kairos.errors import KairosInputError

GATEWAY_PRIORITY = 20
WORKER_PRIORITY = 10
GENERATOR_PRIORITY = 5


def set_realtime(priority: int) -> None:
    """Switch the calling process to SCHED_RR at ``priority``; KairosInputError if not allowed."""
    if not hasattr(os, "sched_setscheduler"):
        raise KairosInputError("--realtime needs Linux (SCHED_RR)")
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except PermissionError:
        raise KairosInputError("--realtime needs root or CAP_SYS_NICE (SCHED_RR); run without it") from None


def current_policy() -> str:
    try:
        return {os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO"}.get(os.sched_getscheduler(0), "SCHED_OTHER")
    except (AttributeError, OSError):
        return "unknown"
