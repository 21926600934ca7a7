"""A helper process for a dispatch policy's slow computations (``policy.offload``).

A learning ``kairos`` policy re-solves its coefficients' LP now and then (a few ms of
HiGHS). The simulator solves it in place; a gateway that did the same would stall its
event loop, and every query in flight would wait it out (a stall of several ms at each
re-solve, each a burst of QoS misses; docs/serving.md). The gateway hands
such work to one helper process instead (a thread would not do: the solver holds the
GIL) and applies the result on its event loop when it arrives; decisions in between
use the previous coefficients.

The helper is ``python -m kairos.serve.offload``: calls and results are pickled frames
on its stdin and stdout (``<u32 length><pickle>``), so it shares no file descriptor
with the gateway and does not re-import the gateway's main module, as
``multiprocessing`` would. It runs at normal priority even when the gateway was started
under real-time scheduling (it must never delay a worker), dies with the gateway, and is
started again if it dies.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys

_LEN = struct.Struct("<I")


def _frame(obj) -> bytes:
    b = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(b)) + b


def _stdin(proc: asyncio.subprocess.Process) -> asyncio.StreamWriter:
    """The helper's stdin (a pipe: the helper is started with ``stdin=PIPE``)."""
    assert proc.stdin is not None
    return proc.stdin


def warm() -> int:
    """Import the solver (numpy, scipy's LP) now, not in the middle of serving."""
    import kairos.dispatch.kairos  # noqa: F401

    return os.getpid()


class Offloader:
    """``offloader(fn, args, done, failed=None)``: run ``fn(*args)`` in the helper, then
    ``done(result)`` on the event loop. ``fn`` must be importable by name (a module-level
    function). Failures are logged and dropped (the policy keeps what it had), and
    ``failed(error)`` is called when given; a helper that died is started again, and calls
    made meanwhile fail (logged). The helper is one process: calls run one at a time, in
    the order made, and what a call leaves in the helper's module state is there for the
    next (until the helper is restarted). ``log_done``: log an event for every call done."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log=None, log_done: bool = True):
        self.loop = loop
        self.log = log
        self.log_done = log_done
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.pending: dict[int, tuple] = {}  # call id -> (fn name, done callback, failed callback or None)
        self.next_id = 0
        self.done_count = 0
        self.restarts = 0
        self.closed = False
        self._reader: asyncio.Task | None = None
        self._starting: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the helper and wait until it has imported the solver."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kairos.serve.offload",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        ready = self.loop.create_future()
        self.pending[-1] = ("warm", ready.set_result, None)
        self._reader = self.loop.create_task(self._read(self.proc))
        _stdin(self.proc).write(_frame((-1, warm, ())))
        await ready

    def __call__(self, fn, args, done, failed=None) -> None:
        if self.closed:
            return
        if self.proc is None or self.proc.returncode is not None or _stdin(self.proc).is_closing():
            self._failed(fn.__name__, "the helper is restarting", failed)
            return
        cid = self.next_id
        self.next_id += 1
        self.pending[cid] = (fn.__name__, done, failed)
        _stdin(self.proc).write(_frame((cid, fn, args)))

    async def _read(self, proc) -> None:
        out = proc.stdout
        try:
            while True:
                n = _LEN.unpack(await out.readexactly(_LEN.size))[0]
                cid, ok, value = pickle.loads(await out.readexactly(n))
                name, done, failed = self.pending.pop(cid, (None, None, None))
                if done is None or self.closed:
                    continue
                if not ok:
                    self._failed(name, value, failed)
                    continue
                done(value)
                if cid >= 0:
                    self.done_count += 1
                    if self.log is not None and self.log_done:
                        self.log.event("offload_done", task=name, count=self.done_count)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the helper exited
        if self.closed:
            return
        await proc.wait()
        for name, _, failed in self.pending.values():
            self._failed(name, "the helper exited", failed)
        self.pending.clear()
        self.restarts += 1
        if self.log is not None:
            self.log.event("offload_helper_restarted", level="warning", restarts=self.restarts)
        self._starting = self.loop.create_task(self.start())

    def _failed(self, name, error, failed=None) -> None:
        if self.log is not None:
            self.log.event("offload_failed", level="warning", task=name, error=str(error))
        if failed is not None:
            failed(str(error))

    async def close(self) -> None:
        """Stop the helper (EOF on its stdin, then SIGKILL) and reap it."""
        self.closed = True
        for t in (self._reader, self._starting):
            if t is not None:
                t.cancel()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            _stdin(proc).close()  # the helper exits on EOF
            try:
                await asyncio.wait_for(proc.wait(), 1.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


def main() -> int:
    from kairos.serve.worker import die_with_parent

    die_with_parent()
    try:  # real-time scheduling inherited from the gateway: back to normal
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return 0  # the gateway closed our stdin: done
        cid, fn, args = pickle.loads(inp.read(_LEN.unpack(head)[0]))
        try:
            reply = (cid, True, fn(*args))
        except Exception as exc:  # reported to the gateway, which logs it
            reply = (cid, False, f"{type(exc).__name__}: {exc}")
        out.write(_frame(reply))
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
