"""Worker supervision, gateway side: spawn worker processes, accept their connections,
route frames to the gateway, kill and restart them.

Each instance ``j`` of the pool has one :class:`WorkerHandle`; a restart spawns a new
process for the same ``j`` (a new *generation*). Frames from a connection that no
longer belongs to the current generation are ignored, so a late answer from a worker
that was declared hung can never complete a query twice.

A :class:`Supervisor` is how a gateway's workers are started: :class:`LocalSupervisor`
(a process per instance on this machine) or
:class:`~kairos.serve.ray_backend.RaySupervisor` (a Ray actor per instance). It is built
by the caller and handed to the :class:`~kairos.serve.gateway.Gateway`, which gives
itself to :meth:`Supervisor.listen`: from then on the workers' connections report their
HELLO, their results and their loss to it (``on_hello``, ``on_result``,
``on_worker_lost``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import TYPE_CHECKING

from kairos.serve import transport as tp

if TYPE_CHECKING:
    from kairos.serve.gateway import Gateway


class WorkerHandle:
    """One instance's worker process and its connection."""

    def __init__(self, index: int, type_name: str, name: str):
        self.index = index
        self.type_name = type_name
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self.conn: WorkerConnection | None = None
        self.pid: int | None = None
        self.generation = 0
        self.restarts = 0
        self.state = "starting"  # starting | up | down | draining | stopped
        self.info: dict = {}
        # time.monotonic() before which its worker does not say HELLO (an emulated start-up
        # delay of an instance the autoscaler launched); None: as soon as it is up
        self.ready_at: float | None = None

    def send(self, frame: bytes) -> None:
        assert self.conn is not None  # queries go only to a connected worker
        self.conn.transport.write(frame)

    def describe(self) -> dict:
        return {
            "instance": self.name,
            "index": self.index,
            "type": self.type_name,
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "mode": self.info.get("mode"),
        }


def request_shutdown(handles: list[WorkerHandle]) -> list[WorkerHandle]:
    """Mark every worker stopped and send SHUTDOWN to the connected ones (returned)."""
    sent = []
    for h in handles:
        h.state = "stopped"
        if h.conn is not None:
            try:
                h.send(tp.encode_shutdown())
            except Exception:
                pass
            sent.append(h)
    return sent


class WorkerConnection(asyncio.Protocol):
    """A worker's TCP connection; parses frames and calls the gateway."""

    def __init__(self, gateway):
        self.gw = gateway
        self.dec = tp.FrameDecoder()
        self.transport = None
        self.handle: WorkerHandle | None = None
        self.generation = -1

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.dec.feed(data)
        except ValueError:
            self.transport.close()
            return
        for kind, body in frames:
            if kind == tp.RESULT:
                qid, svc, ok, queued = tp.RESULT_BODY.unpack_from(body)
                if self.handle is not None and self.handle.conn is self:
                    self.gw.on_result(self.handle.index, qid, svc, bool(ok), body[tp.RESULT_BODY.size :], queued)
            elif kind == tp.HELLO:
                index, pid = tp.HELLO_BODY.unpack_from(body)
                try:
                    info = json.loads(body[tp.HELLO_BODY.size :] or b"{}")
                except ValueError:
                    info = {}
                self.gw.on_hello(self, index, pid, info)

    def connection_lost(self, exc) -> None:
        h = self.handle
        if h is not None and h.conn is self:
            self.gw.on_worker_lost(h.index, "connection closed (worker exited)")


class Supervisor:
    """Starts, tracks and stops the workers of a gateway (one per instance of its pool)."""

    gw: Gateway  # the gateway the workers report to, from listen() on

    async def listen(self, gateway: Gateway) -> None:
        """Accept the workers' connections from now on, reporting their frames and their
        loss to ``gateway``."""
        raise NotImplementedError

    async def spawn(self, h: WorkerHandle, seed: int) -> None:
        """Start a new worker (the next generation) for instance ``h``; it says HELLO once up,
        and not before ``h.ready_at`` when that is set."""
        raise NotImplementedError

    def kill(self, h: WorkerHandle) -> None:
        """Stop ``h``'s worker at once and close its connection (it failed or hung)."""
        raise NotImplementedError

    async def retire(self, h: WorkerHandle, timeout_s: float = 5.0) -> None:
        """Instance ``h`` was drained and holds no query: stop its worker for good (it is
        marked stopped and sent SHUTDOWN; this default then kills it at once, which loses
        nothing, since it holds nothing)."""
        request_shutdown([h])
        self.kill(h)

    async def stop_all(self, handles: list[WorkerHandle], timeout_s: float = 5.0) -> None:
        """SHUTDOWN every worker, wait for them, stop what is left, stop listening."""
        raise NotImplementedError


class LocalSupervisor(Supervisor):
    """One worker process per instance, on this machine."""

    def __init__(self, worker_args: list[str], mode: str, transport: str = "unix", host: str = "127.0.0.1"):
        if transport not in ("unix", "tcp"):
            raise ValueError(f"worker transport must be 'unix' or 'tcp', got {transport!r}")
        self.worker_args = worker_args
        self.mode = mode
        # a Unix domain socket where the platform has them: the same frames without the
        # loopback TCP/IP stack (less CPU per frame, and a lower tail, docs/serving.md)
        self.transport = transport if hasattr(socket, "AF_UNIX") else "tcp"
        self.server: asyncio.base_events.Server | None = None
        self.unix_server: asyncio.base_events.Server | None = None
        self.unix_dir: str | None = None
        self.host = host  # the TCP listener's address
        self.port = 0
        self._reapers: set[asyncio.Task] = set()

    @classmethod
    def for_gateway(cls, cfg, transport: str = "unix", host: str = "127.0.0.1") -> LocalSupervisor:
        """The workers of a gateway configured by ``cfg`` (a GatewayConfig): its model, mode
        and catalogue files."""
        args = ["--model", cfg.model]
        if cfg.profile_path:
            args += ["--profile", cfg.profile_path]
        if cfg.prices_path:
            args += ["--prices", cfg.prices_path]
        return cls(args, cfg.mode, transport, host)

    async def listen(self, gateway: Gateway) -> None:
        self.gw = gateway
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: WorkerConnection(gateway), self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        if self.transport == "unix":  # in a directory of our own (mode 0700): only we can connect
            self.unix_dir = tempfile.mkdtemp(prefix="kairos-gw-")
            try:
                self.unix_server = await loop.create_unix_server(lambda: WorkerConnection(gateway), self.unix_path)
            except OSError as exc:  # e.g. a temporary directory too deep for a socket's path: TCP it is
                shutil.rmtree(self.unix_dir, ignore_errors=True)
                self.unix_dir = None
                self.transport = "tcp"
                self.gw.log.event(
                    "worker_transport_fallback", level="warning", to="tcp", reason=f"{type(exc).__name__}: {exc}"
                )

    @property
    def unix_path(self) -> str | None:
        return os.path.join(self.unix_dir, "workers.sock") if self.unix_dir else None

    @property
    def connect_address(self) -> str:
        """What a local worker is given as ``--connect``: ``unix:PATH`` or ``HOST:PORT``."""
        return f"unix:{self.unix_path}" if self.unix_server is not None else f"{self.host}:{self.port}"

    async def spawn(self, h: WorkerHandle, seed: int) -> None:
        h.generation += 1
        h.state = "starting"
        h.conn = None
        h.proc = None  # the old process's reaper must not see this instance as its own
        args = [
            sys.executable,
            "-m",
            "kairos.serve.worker",
            "--connect",
            self.connect_address,
            "--index",
            str(h.index),
            "--type",
            h.type_name,
            "--mode",
            self.mode,
            "--seed",
            str(seed * 1009 + h.generation),
            "--generation",
            str(h.generation),
            *self.worker_args,
        ]
        if h.ready_at is not None:  # CLOCK_MONOTONIC: the same clock in every process of this machine
            args += ["--ready-at", repr(h.ready_at)]
        # own session: a Ctrl-C or SIGTERM sent to the gateway's process group does not
        # kill workers while in-flight queries are still being finished
        h.proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        h.pid = h.proc.pid
        proc = h.proc
        t = asyncio.get_running_loop().create_task(self._reap(h, proc))
        self._reapers.add(t)
        t.add_done_callback(self._reapers.discard)

    async def _reap(self, h: WorkerHandle, proc) -> None:
        rc = await proc.wait()
        if h.proc is proc and h.state in ("starting", "up"):
            # exited (e.g. crashed before connecting): the gateway handles it like a death
            self.gw.on_worker_lost(h.index, f"process exited with code {rc}")

    def kill(self, h: WorkerHandle) -> None:
        if h.proc is not None and h.proc.returncode is None:
            try:
                h.proc.kill()
            except ProcessLookupError:
                pass
        if h.conn is not None:
            conn, h.conn = h.conn, None
            conn.transport.close()

    async def retire(self, h: WorkerHandle, timeout_s: float = 5.0) -> None:
        """SHUTDOWN ``h``'s worker, wait for its process to exit (killed after ``timeout_s``)."""
        request_shutdown([h])
        proc = h.proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        self.kill(h)  # what is left of it, and its connection
        if proc is not None and proc.returncode is None:
            await proc.wait()

    async def stop_all(self, handles: list[WorkerHandle], timeout_s: float = 5.0) -> None:
        """SHUTDOWN every worker, wait for them, kill what is left; close the listener."""
        request_shutdown(handles)
        procs = [h.proc for h in handles if h.proc is not None]
        if procs:
            done, pending = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=timeout_s)
            for p in procs:
                if p.returncode is None:
                    try:
                        os.kill(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if pending:
                await asyncio.wait(pending, timeout=timeout_s)
        for h in handles:
            if h.conn is not None:
                h.conn.transport.close()
                h.conn = None
        if self.server is not None:
            self.server.close()
        if self.unix_server is not None:
            self.unix_server.close()
            self.unix_server = None
        if self.unix_dir is not None:
            shutil.rmtree(self.unix_dir, ignore_errors=True)
            self.unix_dir = None
        for t in list(self._reapers):
            t.cancel()
