"""CpuSpinners: one lowest-priority spinner per CPU, gone when its owner stops or dies.

python -m pytest -q investigations/vm/test_awake.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from awake import CpuSpinners, usable_cpus  # noqa: E402

from kairos.serve.launcher import pid_alive  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU spinners are Linux-only")


def _gone(pids, timeout=10.0) -> bool:
    t_end = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < t_end:
        time.sleep(0.05)
    return not any(pid_alive(p) for p in pids)


def test_one_idle_class_spinner_per_cpu_and_none_after_stop():
    with CpuSpinners() as s:
        pids = s.pids
        assert len(pids) == len(usable_cpus())
        assert len(s.modes) == len(pids) and set(s.modes) <= {"idle", "nice"}
        for pid, cpu, mode in zip(pids, s.cpus, s.modes):
            if mode == "idle":
                assert os.sched_getscheduler(pid) == os.SCHED_IDLE
            else:  # the platform refused SCHED_IDLE: nice 19 instead
                assert os.getpriority(os.PRIO_PROCESS, pid) == 19
            t_end = time.monotonic() + 5
            while os.sched_getaffinity(pid) != {cpu} and time.monotonic() < t_end:
                time.sleep(0.01)
            assert os.sched_getaffinity(pid) == {cpu}
            if os.path.exists(f"/proc/{pid}/autogroup"):  # its own session's group at the lowest weight
                assert open(f"/proc/{pid}/autogroup").read().split()[-1] == "19"
    assert _gone(pids)


def test_spinners_die_with_their_owner_even_on_sigkill():
    code = (
        f"import sys, time\nsys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from awake import CpuSpinners\ns = CpuSpinners().start()\n"
        "print(' '.join(map(str, s.pids)), flush=True)\ntime.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in p.stdout.readline().split()]
        assert pids and all(pid_alive(x) for x in pids)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        assert _gone(pids)
    finally:
        if p.poll() is None:
            p.kill()
