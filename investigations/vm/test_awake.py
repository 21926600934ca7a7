"""--keep-cpus-awake: one lowest-priority spinner per CPU, gone when its owner stops or dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from serve_helpers import Server, pid_alive

from kairos.serve.awake import CpuSpinners, usable_cpus

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
    code = ("import sys, time\nfrom kairos.serve.awake import CpuSpinners\ns = CpuSpinners().start()\n"
            "print(' '.join(map(str, s.pids)), flush=True)\ntime.sleep(60)\n")
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


def test_serve_keeps_cpus_awake_until_sigterm():
    s = Server("--model", "rm2", "--config", "g4dn.xlarge=1", "--qos-ms", "350", "--keep-cpus-awake")
    try:
        ev = {e["event"]: e for e in s.events()}
        assert ev["gateway_listen"]["keep_cpus_awake"] is True
        pids = ev["cpus_kept_awake"]["pids"]
        assert len(pids) == len(usable_cpus()) and all(pid_alive(p) for p in pids)
        assert s.health()["status"] == "ok"
    finally:
        s.stop()
    assert _gone(pids)


def test_loadgen_keep_cpus_awake_leaves_no_spinner_on_error():
    before = set(_spinner_pids())
    p = subprocess.run([sys.executable, "-m", "kairos.cli.main", "loadgen", "--url", "http://127.0.0.1:9",
                        "--qps", "10", "--duration", "1", "--keep-cpus-awake"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "cannot reach the gateway" in p.stderr and "Traceback" not in p.stderr
    assert _gone(set(_spinner_pids()) - before)


def _spinner_pids() -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if b"SCHED_IDLE" in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out
