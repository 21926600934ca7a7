"""Helpers shared by the serving benchmarks: the server launcher (shared with the tests), CPU
time of a process, the load average."""

from __future__ import annotations

import os

from kairos.serve.launcher import ServeProcess, free_port  # noqa: F401


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        p = f.read().split(") ", 1)[1].split()
    return (int(p[11]) + int(p[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
