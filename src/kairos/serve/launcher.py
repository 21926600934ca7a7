"""Start and stop a ``kairos serve`` subprocess on a free loopback port.

For the tests and the serving benchmarks (and anyone scripting a local gateway): the
server's output goes to a temporary log file (``logs()``, ``events()`` for the
structured log lines); ``stop()`` sends SIGTERM, waits, and kills any worker process
it ever saw that is still alive, so a failed test leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class ServeProcess:
    """``python -m kairos.cli.main serve --port P ARGS...`` until :meth:`stop`; the
    constructor returns once ``/healthz`` reports every worker up."""

    def __init__(self, *args: str, start_timeout: float = 45.0, quiet: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "kairos.cli.main",
            "serve",
            "--port",
            str(self.port),
            *(["--quiet"] if quiet else []),
            *args,
        ]
        self.log_path = os.path.join(tempfile.gettempdir(), f"kairos-serve-{os.getpid()}-{self.port}.log")
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.seen_pids: set[int] = set()  # every worker process seen, restarted ones included
        t_end = time.monotonic() + start_timeout
        while time.monotonic() < t_end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kairos serve exited with {self.proc.returncode}: {self.logs()}")
            try:
                h = self.health()
                if h["workers_up"] == len(h["workers"]):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        text = self.logs()  # before stop(), which deletes the log
        self.stop()
        raise RuntimeError(f"kairos serve did not become healthy within {start_timeout:g} s: {text}")

    def health(self) -> dict:
        """``/healthz`` (also when it answers 503: some worker down)."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
                h = json.loads(r.read())
        except urllib.error.HTTPError as e:
            h = json.loads(e.read())
        self.seen_pids.update(w["pid"] for w in h["workers"] if w["pid"])
        return h

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.health()["workers"]]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return r.read().decode()

    def logs(self) -> str:
        """The server's output so far ("" once :meth:`stop` has deleted the log)."""
        if self.log.closed:
            return ""
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def events(self) -> list[dict]:
        """The structured (JSON) log lines."""
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in self.seen_pids:  # never leave anything behind, even if a test failed
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not self.log.closed:
            self.log.close()
            try:
                os.unlink(self.log_path)
            except FileNotFoundError:
                pass
        return self.proc.returncode
