"""A helper process for a dispatch policy's slow computations (``policy.offload``).

A learning ``kairos`` policy re-solves its coefficients' LP now and then (a few ms of
HiGHS). The simulator solves it in place; a gateway that did the same would stall its
event loop, and every query in flight would wait it out (measured: 6-10 ms stalls in
the first seconds of a live DIEN run, each a burst of QoS misses). The gateway hands
such work to one helper process instead (a thread would not do: the solver holds the
GIL) and applies the result on its event loop when it arrives; decisions in between
use the previous coefficients.

The helper runs at normal priority even under ``--realtime`` (it must never delay a
worker) and dies with the gateway.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def _init_helper() -> None:
    from kairos.serve.worker import die_with_parent

    die_with_parent()
    try:  # inherited SCHED_RR from a --realtime gateway: back to normal scheduling
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def _warm() -> int:
    import kairos.dispatch.kairos  # noqa: F401  (numpy, scipy's LP solver)

    return os.getpid()


class Offloader:
    """``offloader(fn, args, done)``: run ``fn(*args)`` in the helper, then ``done(result)``
    on the event loop. Failures are logged and dropped (the policy keeps what it had)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log=None):
        self.loop = loop
        self.log = log
        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_helper)
        self.pid: int | None = None
        self.done_count = 0
        self.closed = False

    async def warm(self) -> None:
        """Start the helper and import the solver now, not in the middle of serving."""
        self.pid = await asyncio.wrap_future(self.pool.submit(_warm), loop=self.loop)

    def __call__(self, fn, args, done) -> None:
        if self.closed:
            return
        fut = asyncio.wrap_future(self.pool.submit(fn, *args), loop=self.loop)
        fut.add_done_callback(lambda f: self._finished(f, fn, done))

    def _finished(self, f: asyncio.Future, fn, done) -> None:
        if self.closed or f.cancelled():
            return
        exc = f.exception()
        if exc is not None:
            if self.log is not None:
                self.log.event("offload_failed", level="warning", task=fn.__name__, error=repr(exc))
            return
        self.done_count += 1
        done(f.result())
        if self.log is not None:
            self.log.event("offload_done", task=fn.__name__, count=self.done_count)

    def close(self) -> None:
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)
