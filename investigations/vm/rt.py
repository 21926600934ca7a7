"""Real-time scheduling (SCHED_RR) for a gateway, its workers and a load generator on one small machine.

On a machine shared with batch jobs, a gateway and workers that wait for the CPU behind
them add milliseconds to every tail latency. ``SCHED_RR`` (as ``chrt -r``) lets them run as
soon as they are woken; they sleep or block between queries, and the kernel's real-time
throttling still leaves 5% of each CPU to everything else. Needs root or CAP_SYS_NICE.
A load generator on the same machine runs below the gateway (``GENERATOR_PRIORITY``), so
that it takes the CPU from neither and its own delays are charged to it, as latency from
each query's scheduled send time. What this changed on the project's 2-vCPU VM:
investigations/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

GATEWAY_PRIORITY = 20
GENERATOR_PRIORITY = 5

T = TypeVar("T")


def set_realtime(priority: int) -> None:
    """Switch the calling process to SCHED_RR at ``priority``; SystemExit with one line if not allowed."""
    if not hasattr(os, "sched_setscheduler"):
        raise SystemExit("real-time scheduling needs Linux (SCHED_RR)")
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except PermissionError:
        raise SystemExit("real-time scheduling needs root or CAP_SYS_NICE (SCHED_RR)") from None


def start_realtime(start: Callable[[], T]) -> T:
    """Call ``start()`` (which launches ``kairos serve``) at SCHED_RR ``GATEWAY_PRIORITY``, so that
    the gateway and the workers it spawns inherit it, then put this process at
    ``GENERATOR_PRIORITY``; returns what ``start()`` returned."""
    set_realtime(GATEWAY_PRIORITY)
    try:
        return start()
    finally:
        set_realtime(GENERATOR_PRIORITY)


def current_policy() -> str:
    try:
        return {os.SCHED_RR: "SCHED_RR", os.SCHED_FIFO: "SCHED_FIFO"}.get(os.sched_getscheduler(0), "SCHED_OTHER")
    except (AttributeError, OSError):
        return "unknown"
