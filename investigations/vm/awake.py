"""Keep the CPUs from halting while serving: one lowest-priority spinner per CPU.

On a virtual machine an idle CPU halts, and waking it for the next packet or timer
goes through the hypervisor. Every query wakes four processes in turn (client, gateway,
worker, gateway again), so those wake-ups weigh on the serving path's tail latency
(``wakeup_latency.py`` beside this file measures them; what it found on the project's
2-vCPU VM: investigations/README.md).

The usual cures are kernel settings (``idle=poll``, the haltpoll cpuidle driver,
limiting C-states as cloud providers advise for latency-sensitive instances). This is
the same effect without root: one process per CPU that spins at ``SCHED_IDLE``, the
lowest scheduling class Linux has, so any other runnable task takes the CPU from it at
once. It costs power (and CPU credits on burstable instance types), not throughput.

    with CpuSpinners():
        ...   # serve, or run a load
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class CpuSpinners:
    """One ``SCHED_IDLE`` spinner process per usable CPU, from :meth:`start` to :meth:`stop`.

    The spinners die with the process that started them (``PR_SET_PDEATHSIG``), so
    even a gateway killed with SIGKILL leaves none behind. Where the platform refuses
    SCHED_IDLE (some container sandboxes), a spinner runs at nice 19 instead.
    """

    def __init__(self, cpus: list[int] | None = None):
        self.cpus = list(cpus) if cpus is not None else usable_cpus()
        self.procs: list[subprocess.Popen] = []
        self.modes: list[str] = []

    def start(self, timeout_s: float = 10.0) -> CpuSpinners:
        """Start the spinners; returns once every one runs at its lowest priority
        (``modes``: "idle" for SCHED_IDLE, "nice" where the platform refused it and the
        spinner fell back to nice 19)."""
        if not hasattr(os, "sched_setaffinity"):
            raise SystemExit("the CPU spinners need Linux (sched_setaffinity)")
        for cpu in self.cpus:
            # -S -c: no site packages, no kairos import: the spinner is at its priority a few ms after exec
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-S", "-c", SPINNER, str(cpu)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    start_new_session=True,
                )
            )
        t_end = time.monotonic() + timeout_s
        self.modes = []
        for p in self.procs:
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, t_end - time.monotonic()))
            line = p.stdout.readline().decode().strip() if ready else ""
            if line not in ("idle", "nice"):
                self.stop()
                raise RuntimeError("the CPU spinners did not start")
            self.modes.append(line)
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        self.procs.clear()

    def __enter__(self) -> CpuSpinners:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# The spinner process's body: lowest priority first -- SCHED_IDLE, and, as it runs in
# its own session, nice 19 for its session's scheduling group (with autogroup on, as on
# most desktops and VMs, CFS shares the CPU between sessions before it looks at a
# task's class, and a spinner in a normal-weight group would get half of a busy CPU) --
# then die with the parent (PR_SET_PDEATHSIG = 1), stay on one CPU, say which priority
# it got, and spin.
SPINNER = """
import os, sys, signal
try:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    mode = "idle"
except (AttributeError, OSError):
    os.nice(19)
    mode = "nice"
try:
    with open("/proc/self/autogroup", "w") as f:
        f.write("19")
except OSError:
    pass
try:
    import ctypes
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
except Exception:
    pass
if os.getppid() == 1:
    sys.exit(0)
try:
    os.sched_setaffinity(0, {int(sys.argv[1])})
except OSError:
    pass
sys.stdout.write(mode + "\\n")
sys.stdout.flush()
while True:
    pass
"""
