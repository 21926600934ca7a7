"""Test helpers for the serving tests: a Prometheus metric lookup, a worker run in a thread
with the gateway's end of its connection, a supervisor that starts nothing, and the server
launcher (:mod:`kairos.serve.launcher`, shared with the serving benchmarks)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from kairos.serve import transport as tp
from kairos.serve.launcher import ServeProcess as Server  # noqa: F401
from kairos.serve.launcher import pid_alive  # noqa: F401
from kairos.serve.workers import Supervisor, WorkerHandle, request_shutdown


class FakeSupervisor(Supervisor):
    """Starts no worker: records which instances it was asked to (re)start and kill. A test
    plays the worker by calling the gateway's ``on_hello``/``on_result`` itself."""

    def __init__(self):
        self.gateway = None
        self.spawned: list[int] = []  # instance index per spawn, in order
        self.killed: list[int] = []
        self.retired: list[int] = []  # drained instances whose worker was stopped, in order

    async def listen(self, gateway) -> None:
        self.gateway = gateway

    async def spawn(self, h: WorkerHandle, seed: int) -> None:
        h.generation += 1
        h.state = "starting"
        h.conn = None
        self.spawned.append(h.index)

    def kill(self, h: WorkerHandle) -> None:
        self.killed.append(h.index)
        h.conn = None

    async def retire(self, h: WorkerHandle, timeout_s: float = 5.0) -> None:
        request_shutdown([h])
        self.retired.append(h.index)
        h.conn = None

    async def stop_all(self, handles: list[WorkerHandle], timeout_s: float = 5.0) -> None:
        request_shutdown(handles)


class WorkerPeer:
    """The gateway's end of one worker's connection (an accepted socket), for tests that
    run :func:`kairos.serve.worker.run` directly: HELLO, then queries out, results in."""

    def __init__(self, conn):
        self.conn = conn
        self.dec = tp.FrameDecoder()
        self.results = []  # RESULT bodies unpacked: (qid, service ms, ok, queued ms)

    def hello(self) -> None:
        frames = []
        while not frames:
            frames += self.dec.feed(self.conn.recv(4096))
        assert frames[0][0] == tp.HELLO

    def results_until(self, n: int) -> list:
        while len(self.results) < n:
            self.results += [
                tp.RESULT_BODY.unpack_from(b) for k, b in self.dec.feed(self.conn.recv(4096)) if k == tp.RESULT
            ]
        return self.results


class SleepBackend:
    """A worker backend whose every query takes ``seconds`` (a timed sleep)."""

    label = "test"

    def __init__(self, seconds: float):
        self.seconds = seconds

    def serve(self, size, bucket, payload):
        time.sleep(self.seconds)
        return True, b""


@contextmanager
def worker_peer(listener, address: str, backend):
    """Run :func:`kairos.serve.worker.run` (``address``, instance 0, ``backend``) in a thread,
    accept its connection on ``listener`` and take its HELLO: yields the gateway's end
    (:class:`WorkerPeer`); the connection is closed and the thread joined on exit."""
    from kairos.serve.worker import run

    th = threading.Thread(target=run, args=(address, 0, backend), daemon=True)
    th.start()
    conn, _ = listener.accept()
    try:
        peer = WorkerPeer(conn)
        peer.hello()
        yield peer
    finally:
        conn.close()
        th.join(5)


def metric(text: str, name: str, labels: str = "") -> float:
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(key)
